"""Black box: a real `gochat serve` process on a free port, driven over HTTP as a user would.

The account journey, the operational endpoints, the embedded default (data dir, SQLite,
a private secret.key reused across restarts) and production's refusal of a bad secret.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import TEST_SECRET, ServeProcess, free_port

pytestmark = pytest.mark.e2e

API = "/api/v1"
PASSWORD = "correct horse battery"


def base_env(**overrides: str) -> dict[str, str]:
    """The test runner's environment without any GOCHAT_* setting, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOCHAT_")}
    env["GOCHAT_LOG_LEVEL"] = "warning"
    env.update(overrides)
    return env


@contextmanager
def serving(data_dir: Path, env: dict[str, str]) -> Iterator[ServeProcess]:
    node = ServeProcess(free_port(), data_dir, env)
    node.start()
    try:
        yield node
    finally:
        node.stop()


def gochat(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gochat", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(r: httpx.Response) -> str:
    code: str = r.json()["error"]["code"]
    return code


def register_and_login(http: httpx.Client, name: str) -> dict[str, Any]:
    r = http.post(f"{API}/auth/register", json={"username": name, "password": PASSWORD})
    assert r.status_code == 201, r.text
    r = http.post(f"{API}/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    tokens: dict[str, Any] = r.json()
    return tokens


def journey(base_url: str) -> None:
    """register -> login -> me -> refresh -> old refresh rejected -> logout -> refresh rejected."""
    with httpx.Client(base_url=base_url, timeout=10) as http:
        r = http.post(f"{API}/auth/register", json={"username": "Alice", "password": PASSWORD})
        assert r.status_code == 201, r.text
        user = r.json()
        r = http.post(f"{API}/auth/login", json={"username": "alice", "password": PASSWORD})
        assert r.status_code == 200, r.text
        first = r.json()
        assert first["token_type"] == "bearer" and first["user_id"] == user["id"]

        r = http.get(f"{API}/users/me", headers=auth(first["access_token"]))
        assert r.status_code == 200, r.text
        assert r.json()["username"] == "Alice" and r.json()["id"] == user["id"]

        r = http.post(f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert r.status_code == 200, r.text
        second = r.json()
        assert second["refresh_token"] != first["refresh_token"]
        assert http.get(f"{API}/users/me", headers=auth(second["access_token"])).status_code == 200

        # The spent refresh token is refused, and its reuse burns the session it belonged to.
        r = http.post(f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert r.status_code == 401 and error_code(r) == "invalid_token"
        r = http.post(f"{API}/auth/refresh", json={"refresh_token": second["refresh_token"]})
        assert r.status_code == 401
        assert http.get(f"{API}/users/me", headers=auth(second["access_token"])).status_code == 401

        # A fresh login, then logout: its refresh token and access token stop working.
        r = http.post(f"{API}/auth/login", json={"username": "Alice", "password": PASSWORD})
        third = r.json()
        r = http.post(f"{API}/auth/logout", json={"refresh_token": third["refresh_token"]})
        assert r.status_code == 204, r.text
        r = http.post(f"{API}/auth/refresh", json={"refresh_token": third["refresh_token"]})
        assert r.status_code == 401 and error_code(r) == "invalid_token"
        r = http.get(f"{API}/users/me", headers=auth(third["access_token"]))
        assert r.status_code == 401 and error_code(r) == "invalid_token"


def test_account_journey_on_the_embedded_default(tmp_path: Path) -> None:
    with serving(tmp_path / "data", base_env()) as node:
        journey(node.base_url)


@pytest.mark.mysql
def test_account_journey_on_mariadb(tmp_path: Path, db_url: str, db_kind: str) -> None:
    if db_kind != "mysql":
        pytest.skip("the SQLite journey is the embedded default above")
    env = base_env(GOCHAT_DATABASE_URL=db_url, GOCHAT_SECRET_KEY=TEST_SECRET)
    # A cluster database is migrated by the operator, never implicitly by a node.
    done = gochat("migrate", env=env)
    assert done.returncode == 0, done.stderr
    with serving(tmp_path / "data", env) as node:
        journey(node.base_url)
        assert not (tmp_path / "data" / "gochat.db").exists()


def test_operational_endpoints(tmp_path: Path) -> None:
    env = base_env(GOCHAT_SECRET_KEY=TEST_SECRET)
    with serving(tmp_path / "data", env) as node, httpx.Client(base_url=node.base_url, timeout=10) as http:
        r = http.get("/healthz")
        assert r.status_code == 200 and r.json() == {"status": "ok"}
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])
        r = http.get("/healthz", headers={"X-Request-ID": "trace-42"})
        assert r.headers["x-request-id"] == "trace-42"
        r = http.get("/readyz")
        assert r.status_code == 200
        assert r.json()["status"] == "ok" and all(r.json()["checks"].values()), r.json()

        register_and_login(http, "metered")
        r = http.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        assert "# TYPE gochat_http_requests_total counter" in r.text
        # the route label is the route's template (bounded cardinality), not the raw path
        login = r'gochat_http_requests_total\{method="POST",route="(?:/api/v1)?/auth/login",status="200"\}'
        login_line = re.search(rf"^{login} (\S+)$", r.text, re.M)
        assert login_line and float(login_line.group(1)) == 1.0, r.text[:2000]

        r = http.get("/openapi.json")
        assert r.status_code == 200
        spec = r.json()
        assert spec["info"]["title"] == "GoChat"
        for path in (
            "/api/v1/auth/register",
            "/api/v1/auth/login",
            "/api/v1/auth/refresh",
            "/api/v1/auth/logout",
            "/api/v1/users/me",
            "/api/v1/users/{user_id}",
            "/api/v1/users",
        ):
            assert path in spec["paths"], path
        r = http.get("/docs")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "swagger-ui" in r.text and "/openapi.json" in r.text

        r = http.get(f"{API}/no/such/route")
        assert r.status_code == 404 and error_code(r) == "not_found"


def test_embedded_default_keeps_its_data_and_secret_across_restarts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"  # does not exist yet
    env = base_env()  # no secret, no database: the embedded default
    with serving(data_dir, env) as node:
        with httpx.Client(base_url=node.base_url, timeout=10) as http:
            tokens = register_and_login(http, "alice")
        # SIGTERM is a graceful shutdown (uvicorn re-raises the signal once done): not a SIGKILL
        assert node.stop() in (0, -15), node.logs()[-2000:]

    secret_file = data_dir / "secret.key"
    assert (data_dir / "gochat.db").is_file()
    assert secret_file.is_file()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text()
    assert len(secret.strip()) >= 32

    with serving(data_dir, env) as node, httpx.Client(base_url=node.base_url, timeout=10) as http:
        # Issued before the restart, still valid after it: same key, same database.
        r = http.get(f"{API}/users/me", headers=auth(tokens["access_token"]))
        assert r.status_code == 200, r.text
        assert r.json()["username"] == "alice"
        r = http.post(f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 200, r.text
        r = http.post(f"{API}/auth/login", json={"username": "alice", "password": PASSWORD})
        assert r.status_code == 200, r.text
    assert secret_file.read_text() == secret


@pytest.mark.parametrize(
    ("secret", "complaint"),
    [
        (None, "required"),
        ("0123456789abcdefXYZ", "at least 32"),
        ("changeme", "placeholder"),
        ("x" * 48, "placeholder"),
    ],
    ids=["missing", "short", "placeholder", "low-entropy"],
)
def test_production_refuses_to_start_with_a_bad_secret(
    tmp_path: Path, secret: str | None, complaint: str
) -> None:
    env = base_env(GOCHAT_ENVIRONMENT="production")
    if secret is not None:
        env["GOCHAT_SECRET_KEY"] = secret
    port = free_port()
    done = gochat("serve", "--port", str(port), "--data-dir", str(tmp_path / "data"), env=env, timeout=30)
    assert done.returncode != 0
    assert "GOCHAT_SECRET_KEY" in done.stderr and complaint in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) <= 3, done.stderr  # a message, not a dump
    if secret:
        assert secret not in done.stderr  # a refused secret is not echoed to the logs
    assert not (tmp_path / "data" / "secret.key").exists()  # no fallback to a generated key


def test_production_starts_with_a_good_secret(tmp_path: Path) -> None:
    env = base_env(GOCHAT_ENVIRONMENT="production", GOCHAT_SECRET_KEY=TEST_SECRET)
    with serving(tmp_path / "data", env) as node, httpx.Client(base_url=node.base_url, timeout=10) as http:
        register_and_login(http, "alice")
    assert not (tmp_path / "data" / "secret.key").exists()
