"""Processes and clients for the cluster tests: a dedicated Redis, a dedicated MariaDB, a
``LocalCluster`` on free ports, and a client whose socket starts on a chosen node and moves
to the load balancer after any disconnect.

Everything here is bounded in time and every process it starts is stopped by its owner's
``finally`` (the async context managers below).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

from gochat.client import GoChatClient, ReconnectPolicy
from gochat.cluster import LocalCluster, Node
from tests.support import MYSQL_URL, create_mysql_database, drop_mysql_database, free_port, service_missing

Json = dict[str, Any]
PASSWORD = "correct horse battery"
FAST_RECONNECT = ReconnectPolicy(initial_delay=0.05, max_delay=0.5)


def free_port_block(count: int) -> int:
    """A port P such that P .. P+count-1 are free now (LocalCluster numbers nodes that way)."""
    for _ in range(200):
        base = free_port()
        if base + count > 65535:
            continue
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no block of free ports")


def _wait_tcp(port: int, timeout: float, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")


def _stop(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# --------------------------------------------------------------------------- Redis


@dataclass
class RedisServer:
    """A throw-away ``redis-server`` on its own port: no persistence, like the cluster's."""

    work_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            service_missing("redis-server", "binary not found")
        assert binary is not None
        self.work_dir.mkdir(parents=True, exist_ok=True)
        log = self.work_dir / "redis.log"
        cmd = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        cmd += ["--daemonize", "no", "--dir", str(self.work_dir)]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _wait_tcp(self.port, timeout, self.proc, "redis-server", log)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        _stop(self.proc, sig)


@contextlib.contextmanager
def redis_server(work_dir: Path) -> Any:
    server = RedisServer(work_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop(signal.SIGKILL)


# --------------------------------------------------------------------------- MariaDB


@dataclass
class MariaDBServer:
    """A dedicated ``mariadbd`` with its own datadir: it can be killed and restarted."""

    datadir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        return f"mysql+asyncmy://root@127.0.0.1:{self.port}/{database}"

    def install(self) -> None:
        binary = shutil.which("mariadb-install-db")
        if binary is None or (shutil.which("mariadbd") is None and not Path("/usr/sbin/mariadbd").exists()):
            service_missing("mariadbd", "binaries not found")
        assert binary is not None
        cmd = [binary, "--no-defaults", f"--datadir={self.datadir}", "--user=root"]
        cmd += ["--auth-root-authentication-method=normal", "--skip-test-db"]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def start(self, timeout: float = 30) -> None:
        binary = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        log = self.datadir.parent / "mariadbd.log"
        cmd = [
            binary,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.datadir}/mysqld.sock",
            f"--pid-file={self.datadir}/mysqld.pid",
            "--user=root",
            "--skip-name-resolve",
            # Durability: a commit (and so an ack) survives the kill -9 this server gets.
            "--innodb-flush-log-at-trx-commit=1",
            "--innodb-buffer-pool-size=64M",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_bin",
            "--max-connections=300",
        ]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _wait_tcp(self.port, timeout, self.proc, "mariadbd", log)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        _stop(self.proc, sig, timeout=30)

    async def create_database(self, name: str) -> str:
        import asyncmy

        deadline = time.monotonic() + 20
        while True:
            try:
                conn = await asyncmy.connect(host="127.0.0.1", port=self.port, user="root", password="")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        try:
            async with conn.cursor() as cur:
                await cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        finally:
            conn.close()
        return self.url(name)


@contextlib.asynccontextmanager
async def mariadb_server(work_dir: Path) -> AsyncIterator[MariaDBServer]:
    server = MariaDBServer(work_dir / "mariadb" / "data")
    server.datadir.parent.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(server.install)
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop, signal.SIGKILL)


@contextlib.asynccontextmanager
async def shared_mysql_database() -> AsyncIterator[str]:
    """A fresh database on the machine's MariaDB (tests.support), dropped afterwards."""
    url = await create_mysql_database()
    try:
        yield url
    finally:
        await drop_mysql_database(url)


# --------------------------------------------------------------------------- the cluster


def require_haproxy() -> None:
    if shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists():
        service_missing("haproxy", "binary not found (Debian package haproxy)")


def new_cluster(
    work_dir: Path, database_url: str, broker_url: str, nodes: int, env: dict[str, str]
) -> LocalCluster:
    """N nodes + HAProxy on free loopback ports, not started yet."""
    require_haproxy()
    extra = {"GOCHAT_RATE_LIMITS_ENABLED": "false", "GOCHAT_LOG_LEVEL": "warning", **env}
    return LocalCluster(
        work_dir,
        database_url,
        broker_url,
        nodes_count=nodes,
        port=free_port(),
        first_node_port=free_port_block(nodes),
        extra_env=extra,
    )


@contextlib.asynccontextmanager
async def local_cluster(
    work_dir: Path, database_url: str, broker_url: str, nodes: int = 3, **env: str
) -> AsyncIterator[LocalCluster]:
    """N nodes + HAProxy on free loopback ports; always stopped (and logs kept in work_dir)."""
    cluster = new_cluster(work_dir, database_url, broker_url, nodes, env)
    try:
        await asyncio.to_thread(cluster.start, 90)
        yield cluster
    finally:
        await asyncio.to_thread(cluster.stop)


@contextlib.contextmanager
def running_cluster(work_dir: Path, database_url: str, broker_url: str, nodes: int = 3, **env: str) -> Any:
    """The synchronous twin of :func:`local_cluster`, for class-scoped fixtures."""
    cluster = new_cluster(work_dir, database_url, broker_url, nodes, env)
    try:
        cluster.start(90)
        yield cluster
    finally:
        cluster.stop()


def node_log_tail(cluster: LocalCluster, chars: int = 3000) -> str:
    parts = []
    for node in cluster.nodes:
        if node.log_path.exists():
            parts.append(f"--- {node.name}\n{node.log_path.read_text(errors='replace')[-chars:]}")
    return "\n".join(parts)


def ws_url(http_url: str) -> str:
    return "ws://" + http_url.removeprefix("http://") + "/ws"


async def readyz(url: str, timeout: float = 2.0) -> int | None:
    """/readyz's status, or None if nothing answered."""
    try:
        async with httpx.AsyncClient(timeout=timeout) as http:
            return (await http.get(url + "/readyz")).status_code
    except httpx.HTTPError:
        return None


async def metric(url: str, name: str, default: float | None = None) -> float:
    """One sample of a node's /metrics (Prometheus text; counters end in _total).

    ``name`` may carry labels exactly as exposed; a labelled series not created yet is ``default``.
    """
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(url + "/metrics")).text
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        if key in (name, name + "_total"):
            return float(value)
    if default is not None:
        return default
    raise AssertionError(f"{name} not in /metrics of {url}")


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


async def until_async(probe: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    """Poll ``probe`` until it holds; returns how long it took."""
    started = time.monotonic()
    while not await probe():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


# --------------------------------------------------------------------------- clients


class ClusterClient(GoChatClient):
    """A device whose REST goes through the balancer and whose socket starts on one node.

    After the first disconnect (or a failed connect) the socket goes through the balancer,
    as a real client would after its node died. It also counts what the chaos tests report:
    every ``message.send`` frame written (so re-sends of one ``client_msg_id``) and every
    ``unavailable`` error reply.
    """

    def __init__(self, balancer_url: str, node_url: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("reconnect", FAST_RECONNECT)
        kwargs.setdefault("request_timeout", 5.0)
        super().__init__(balancer_url, **kwargs)
        self.fallback_ws_url = self.ws_url
        if node_url is not None:
            self.ws_url = ws_url(node_url)
        self.send_frames: Counter[str] = Counter()
        self.unavailable_replies = 0

    @property
    def resent(self) -> int:
        """How many sends needed more than one frame."""
        return sum(1 for n in self.send_frames.values() if n > 1)

    @property
    def reconnects(self) -> int:
        return max(0, self.connect_count - 1)

    async def _open(self) -> Any:
        try:
            return await super()._open()
        except Exception:
            self.ws_url = self.fallback_ws_url
            raise

    async def _after_close(self, code: int | None, reason: str) -> None:
        self.ws_url = self.fallback_ws_url
        await super()._after_close(code, reason)

    async def _request_on(self, ws: ClientConnection, frame: Json, timeout: float) -> Json:
        if frame.get("type") == "message.send":
            self.send_frames[str(frame["client_msg_id"])] += 1
        reply = await super()._request_on(ws, frame, timeout)
        if reply.get("type") == "error" and reply.get("code") == "unavailable":
            self.unavailable_replies += 1
        return reply


async def make_user(
    stack: contextlib.AsyncExitStack, cluster: LocalCluster, name: str, node: Node | None = None, **kw: Any
) -> ClusterClient:
    client = ClusterClient(cluster.url, node.url if node else None, **kw)
    stack.push_async_callback(client.close)
    await client.register(name, PASSWORD)
    await client.login(name, PASSWORD)
    return client


async def device(
    stack: contextlib.AsyncExitStack, cluster: LocalCluster, name: str, node: Node | None = None, **kw: Any
) -> ClusterClient:
    client = ClusterClient(cluster.url, node.url if node else None, **kw)
    stack.push_async_callback(client.close)
    await client.login(name, PASSWORD)
    return client


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(3)}"


def summary(messages: list[Json]) -> list[tuple[Any, ...]]:
    return [(m["seq"], m["id"], m["sender_id"], m["client_msg_id"], m["body"]) for m in messages]


def assert_gapless(messages: list[Json], count: int) -> None:
    assert [m["seq"] for m in messages] == list(range(1, count + 1)), "seq is not 1..N"
    assert len({m["id"] for m in messages}) == count, "duplicate message ids"
    assert len({(m["sender_id"], m["client_msg_id"]) for m in messages}) == count, "duplicate client_msg_ids"


def has_all(client: GoChatClient, conv_id: str, count: int) -> bool:
    view = client.views.get(conv_id)
    return view is not None and view.contiguous_seq >= count


__all__ = [
    "MYSQL_URL",
    "PASSWORD",
    "ClusterClient",
    "MariaDBServer",
    "RedisServer",
    "assert_gapless",
    "device",
    "has_all",
    "local_cluster",
    "make_user",
    "mariadb_server",
    "metric",
    "node_log_tail",
    "readyz",
    "redis_server",
    "shared_mysql_database",
    "summary",
    "unique",
    "until",
    "until_async",
]
