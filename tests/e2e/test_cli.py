"""The command line as an operator runs it: `gochat migrate | create-user | demo` as real
subprocesses configured by GOCHAT_* variables and a temporary --data-dir, on the embedded
SQLite database and on MariaDB. What they wrote is then checked through the REST API.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from gochat.admin import DEMO_MESSAGES
from gochat.storage.database import create_engine
from gochat.storage.tables import metadata
from tests.support import LiveServer, database_url, live_server, make_settings

pytestmark = pytest.mark.e2e

API = "/api/v1"
DEMO_PASSWORD = "gochat-demo"


@dataclass
class Target:
    """Where the CLI writes: the embedded default in a data dir, or MariaDB."""

    kind: str
    data_dir: Path
    db_url: str  # what the commands end up using
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "gochat", *args, "--data-dir", str(self.data_dir)]
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOCHAT_")}
    env["GOCHAT_LOG_LEVEL"] = "warning"
    data_dir = tmp_path / "data"
    if request.param == "sqlite":
        yield Target("sqlite", data_dir, f"sqlite+aiosqlite:///{data_dir / 'gochat.db'}", env)
        return
    async with database_url("mysql", tmp_path) as url:
        yield Target("mysql", data_dir, url, {**env, "GOCHAT_DATABASE_URL": url})


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from gochat.storage.migrate import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1
    return str(heads[0])


async def app_tables(db_url: str) -> set[str]:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            names: list[str] = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await engine.dispose()
    return set(names) & set(metadata.tables)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return done.stdout


def refused(done: subprocess.CompletedProcess[str], message: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert message in done.stderr, output
    assert "Traceback" not in output and "argon2" not in output and "INSERT" not in output, output


async def login(server: LiveServer, name: str, password: str) -> dict[str, str]:
    r = await server.http.post(f"{API}/auth/login", json={"username": name, "password": password})
    assert r.status_code == 200, (name, r.text)
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def get(server: LiveServer, path: str, headers: dict[str, str]) -> Any:
    r = await server.http.get(f"{API}{path}", headers=headers)
    assert r.status_code == 200, (path, r.text)
    return r.json()


def run_together(target: Target, *commands: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
    """Independent commands side by side (each process imports the whole server first)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "gochat", *args, "--data-dir", str(target.data_dir)],
            env=target.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=90)
        finally:
            proc.kill()
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


async def test_migrate_create_user_and_demo_then_use_them_over_rest(target: Target, tmp_path: Path) -> None:
    head = head_revision()
    assert ok(target.run("migrate")).strip() == f"database at revision {head}"
    if target.kind == "sqlite":
        assert (target.data_dir / "gochat.db").is_file()
    assert await app_tables(target.db_url) == set(metadata.tables)
    assert ok(target.run("migrate", "--down")).strip() == "database at revision None"
    assert await app_tables(target.db_url) == set()

    # create-user migrates the (now empty) database by itself, and bypasses registration limits
    out = ok(
        target.run("create-user", "Dinah", "--password", "whiskers-and-cream", "--display-name", "Dinah")
    )
    created = re.fullmatch(r"created user Dinah with id (\d+)\n", out)
    assert created, out
    assert await app_tables(target.db_url) == set(metadata.tables)
    assert (target.data_dir / "secret.key").is_file()  # no secret configured: one was generated
    duplicate, bad_name, bad_password = run_together(
        target,
        ("create-user", "DINAH", "--password", "another-password"),
        ("create-user", "bad name", "--password", "another-password"),
        ("create-user", "shorty", "--password", "short"),
    )
    refused(duplicate, "username is taken")
    refused(bad_name, "letters, digits")
    refused(bad_password, "8-256 characters")

    out = ok(target.run("demo"))
    for name in ("alice", "bob", "carol"):
        assert f"user {name}" in out, out
    assert re.search(r"group 'Welcome' \(\d+\) with 3 messages", out), out

    settings = make_settings(target.db_url, tmp_path, data_dir=tmp_path / "server")
    async with live_server(settings) as server:
        dinah = await login(server, "dinah", "whiskers-and-cream")
        me = await get(server, "/users/me", dinah)
        assert (me["id"], me["username"], me["display_name"]) == (created.group(1), "Dinah", "Dinah")
        bad = await server.http.post(
            f"{API}/auth/login", json={"username": "Dinah", "password": "another-password"}
        )
        assert bad.status_code == 401

        ids_by_name: dict[str, str] = {}
        for name in ("alice", "bob", "carol"):
            headers = await login(server, name, DEMO_PASSWORD)
            ids_by_name[name] = (await get(server, "/users/me", headers))["id"]
            listing = await get(server, "/conversations", headers)
            welcome = [c for c in listing["conversations"] if c["title"] == "Welcome"]
            assert len(welcome) == 1, listing
            assert welcome[0]["kind"] == "group" and welcome[0]["last_seq"] == 3
            history = await get(server, f"/conversations/{welcome[0]['id']}/messages", headers)
            messages = history["messages"]
            assert [m["seq"] for m in messages] == [1, 2, 3]
            assert [m["body"] for m in messages] == [text for _, text in DEMO_MESSAGES]
            detail = await get(server, f"/conversations/{welcome[0]['id']}", headers)
            roles = {m["user_id"]: m["role"] for m in detail["members"]}
            assert len(roles) == 3
        assert roles == {
            ids_by_name["alice"]: "owner",
            ids_by_name["bob"]: "member",
            ids_by_name["carol"]: "member",
        }
        senders = [m["sender_id"] for m in messages]
        assert senders == [ids_by_name[s] for s, _ in DEMO_MESSAGES]

        # Dinah is not in the demo group: she cannot see it
        r = await server.http.get(f"{API}/conversations/{welcome[0]['id']}/messages", headers=dinah)
        assert r.status_code == 404
