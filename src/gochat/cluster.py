"""A local cluster for development and tests: N `gochat serve` nodes behind HAProxy.

Every node shares one MySQL/MariaDB database, one Redis and one media store, and the load
balancer spreads HTTP and WebSocket connections with no stickiness. ``LocalCluster`` is
what ``gochat cluster`` runs and what the cluster tests drive (kill a node, restart it).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HAPROXY_CONFIG = """\
global
    # Two file descriptors per proxied connection; stay under common `ulimit -n` values.
    maxconn 9000

defaults
    mode http
    option http-server-close
    # The client's address for per-IP rate limits (uvicorn trusts X-Forwarded-For from
    # 127.0.0.1 by default; set FORWARDED_ALLOW_IPS on the nodes for a remote balancer).
    option forwardfor
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # WebSockets: once upgraded, the connection is a tunnel with its own idle timeout.
    timeout tunnel 1h
    retries 2
    option redispatch

frontend gochat
    bind {host}:{port}
    # Ready nodes (/readyz: database and broker reachable) get the traffic. When none is -
    # a shared dependency is down for all of them - the live ones get it anyway: without
    # Redis they still commit messages, and without the database they answer "unavailable"
    # (retryable), which beats the balancer's own 503 for everyone.
    use_backend nodes if {{ nbsrv(nodes) gt 0 }}
    default_backend live_nodes

backend nodes
    balance leastconn
    option httpchk GET /readyz
    http-check expect status 200
    # A node busy with traffic may answer its checks slowly: that is not being down. (With
    # the default, a 500 ms check timeout, loaded nodes flapped.) A dead node refuses the
    # connection and is out after 3 checks, 1.5 s. Not being ready does not cut the
    # sockets a node carries: they still work (without Redis) or get "unavailable".
    timeout check 3s
    default-server inter 500ms fall 3 rise 1
{servers}

backend live_nodes
    balance leastconn
    option httpchk GET /healthz
    http-check expect status 200
    timeout check 3s
    # A node that is not even alive loses its sockets, so their clients reconnect elsewhere.
    default-server inter 500ms fall 3 rise 1 on-marked-down shutdown-sessions
{servers}
"""


@dataclass
class Node:
    name: str
    port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class LocalCluster:
    work_dir: Path
    database_url: str
    broker_url: str
    nodes_count: int = 3
    host: str = "127.0.0.1"
    port: int = 8000
    first_node_port: int = 8101
    extra_env: dict[str, str] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    haproxy: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOCHAT_")}
        env.update(
            GOCHAT_DATABASE_URL=self.database_url,
            GOCHAT_BROKER_URL=self.broker_url,
            GOCHAT_SECRET_KEY=self._secret(),
            GOCHAT_MEDIA_URL=(self.work_dir / "media").resolve().as_uri(),
        )
        env.update(self.extra_env)
        return env

    def _secret(self) -> str:
        path = self.work_dir / "secret.key"
        if not path.exists():
            self.work_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()

    def start(self, timeout: float = 60) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.migrate()
        self.nodes = [self._node(i) for i in range(self.nodes_count)]
        for node in self.nodes:
            self.start_node(node, wait=False)
        for node in self.nodes:
            wait_ready(node.url, timeout, node)
        self._start_haproxy()
        wait_ready(self.url, timeout)

    def migrate(self) -> None:
        cmd = [sys.executable, "-m", "gochat", "migrate"]
        subprocess.run(cmd, env=self.env(), check=True, capture_output=True, timeout=120)

    def _node(self, index: int) -> Node:
        name = f"node{index + 1}"
        return Node(
            name, self.first_node_port + index, self.work_dir / name, self.work_dir / f"{name}.log"
        )

    def start_node(self, node: Node, *, wait: bool = True, timeout: float = 60) -> None:
        cmd = [sys.executable, "-m", "gochat", "serve", "--host", "127.0.0.1", "--port", str(node.port)]
        cmd += ["--data-dir", str(node.data_dir)]
        with node.log_path.open("ab") as log:
            node.proc = subprocess.Popen(cmd, env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        if wait:
            wait_ready(node.url, timeout, node)

    def stop_node(self, node: Node, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if node.proc is None or node.proc.poll() is not None:
            return
        node.proc.send_signal(sig)
        try:
            node.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait(5)

    def _start_haproxy(self) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        config = self.work_dir / "haproxy.cfg"
        servers = "\n".join(f"    server {n.name} 127.0.0.1:{n.port} check" for n in self.nodes)
        config.write_text(HAPROXY_CONFIG.format(host=self.host, port=self.port, servers=servers))
        log_path = self.work_dir / "haproxy.log"
        with log_path.open("ab") as log:
            self.haproxy = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=log, stderr=log)
        time.sleep(0.2)
        if self.haproxy.poll() is not None:
            raise RuntimeError(f"haproxy exited: {log_path.read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.terminate()
            self.haproxy.wait(10)
        for node in self.nodes:
            self.stop_node(node)


def wait_ready(url: str, timeout: float, node: Node | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node is not None and not node.alive():
            tail = node.log_path.read_text(errors="replace")[-2000:] if node.log_path.exists() else ""
            raise RuntimeError(f"{node.name} exited during start-up:\n{tail}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} was not ready within {timeout}s")
