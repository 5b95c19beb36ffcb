"""Test support: databases, a real in-process server, and real `gochat serve` processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from gochat.app import create_app
from gochat.config import Settings
from gochat.realtime.wsproto import GochatWebSocketProtocol
from gochat.security.passwords import PasswordHasher

REDIS_URL = os.environ.get("GOCHAT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MYSQL_URL = os.environ.get("GOCHAT_TEST_MYSQL_URL", "mysql+asyncmy://root@127.0.0.1:3306/test")
REQUIRE_SERVICES = os.environ.get("GOCHAT_REQUIRE_SERVICES") == "1"
TEST_SECRET = "test-secret-" + "x7Qp9vZ2" * 5
# Cheap argon2 for speed in-process; the e2e processes use the real parameters.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost_kib=1024)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_missing(name: str, reason: str) -> None:
    """Fail in CI (GOCHAT_REQUIRE_SERVICES=1), skip on a laptop without the service."""
    message = f"{name} is not available: {reason}"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


async def create_mysql_database() -> str:
    """A fresh, uniquely named database on the test MariaDB; returns its URL."""
    base = make_url(MYSQL_URL)
    name = f"gochat_t_{secrets.token_hex(4)}"
    engine = create_async_engine(base, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    except Exception as exc:
        service_missing("MariaDB", repr(exc))
    finally:
        await engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


async def drop_mysql_database(url: str) -> None:
    target = make_url(url)
    engine = create_async_engine(target.set(database="test"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {target.database}")
    finally:
        await engine.dispose()


async def wipe_database(url: str) -> None:
    """Delete every row of every GoChat table (the schema stays): a clean, migrated database."""
    from gochat.storage.tables import metadata

    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                await conn.execute(table.delete())
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def database_url(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'gochat.db'}"
        return
    url = await create_mysql_database()
    try:
        yield url
    finally:
        await drop_mysql_database(url)


def make_settings(db_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": db_url,
        "secret_key": TEST_SECRET,
        "log_json": True,
        "log_level": "warning",
        "rate_limits_enabled": False,
        "ws_ping_interval_s": 20.0,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class LiveServer:
    """A real uvicorn server (with GoChat's WebSocket protocol) in this test's event loop."""

    base_url: str
    ws_url: str
    app: Any
    server: uvicorn.Server
    task: asyncio.Task[None]
    http: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=10)

    async def stop(self) -> None:
        await self.http.aclose()
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 15)


@contextlib.asynccontextmanager
async def live_server(settings: Settings, **app_kwargs: Any) -> AsyncIterator[LiveServer]:
    app = create_app(settings, hasher=app_kwargs.pop("hasher", FAST_HASHER), auto_migrate=True, **app_kwargs)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="none",
        ws=GochatWebSocketProtocol,
        ws_max_size=settings.ws_max_frame_bytes,
        ws_ping_interval=settings.ws_ping_interval_s,
        ws_ping_timeout=settings.ws_ping_timeout_s,
        ws_per_message_deflate=False,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 15
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            await task
            raise RuntimeError("server did not start")
        await asyncio.sleep(0.01)
    live = LiveServer(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws", app, server, task)
    try:
        yield live
    finally:
        await live.stop()


@dataclass
class ServeProcess:
    """A real `gochat serve` child process on a free loopback port."""

    port: int
    data_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 30) -> None:
        self.log_path = self.data_dir.parent / f"serve-{self.port}.log"
        log = self.log_path.open("ab")
        cmd = [
            sys.executable,
            "-m",
            "gochat",
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
        ]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"gochat serve exited: {self.logs()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + "/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"gochat serve not ready in {timeout}s: {self.logs()[-3000:]}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self, sig: int = 15, timeout: float = 15) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)


@contextlib.contextmanager
def serve_process(tmp_path: Path, db_url: str | None = None, **env_overrides: str) -> Iterator[ServeProcess]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOCHAT_")}
    env.update({"GOCHAT_SECRET_KEY": TEST_SECRET, "GOCHAT_LOG_LEVEL": "warning"})
    if db_url:
        env["GOCHAT_DATABASE_URL"] = db_url
    env.update(env_overrides)
    data_dir = tmp_path / f"node-{secrets.token_hex(3)}"
    server = ServeProcess(free_port(), data_dir, env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def require_redis() -> str:
    """The test Redis URL, after checking it answers (fail in CI, skip elsewhere)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        service_missing("Redis", repr(exc))
    finally:
        await client.aclose()
    return REDIS_URL
