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
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import TEST_SECRET, ServeProcess, database_url, free_port

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


@pytest.fixture
async def mysql_url(tmp_path: Path) -> AsyncIterator[str]:
    async with database_url("mysql", tmp_path) as url:
        yield url


@pytest.mark.mysql
def test_account_journey_on_mariadb_in_production(tmp_path: Path, mysql_url: str) -> None:
    """The cluster shape: MariaDB, production mode with a proper secret."""
    env = base_env(
        GOCHAT_DATABASE_URL=mysql_url, GOCHAT_SECRET_KEY=TEST_SECRET, GOCHAT_ENVIRONMENT="production"
    )
    # A cluster database is migrated by the operator, never implicitly by a node.
    done = gochat("migrate", env=env)
    assert done.returncode == 0, done.stderr
    with serving(tmp_path / "data", env) as node:
        journey(node.base_url)
        # In production the CDN-loaded interactive docs are off; the spec itself stays.
        assert httpx.get(node.base_url + "/docs", timeout=10).status_code == 404
        assert httpx.get(node.base_url + "/redoc", timeout=10).status_code == 404
        assert httpx.get(node.base_url + "/openapi.json", timeout=10).status_code == 200
    assert not (tmp_path / "data" / "gochat.db").exists()
    assert not (tmp_path / "data" / "secret.key").exists()  # the configured secret, not a file


def operational_endpoints(base_url: str) -> None:
    """/healthz, /readyz, /metrics, /openapi.json and /docs, as a load balancer or operator sees them."""
    with httpx.Client(base_url=base_url, timeout=10) as http:
        r = http.get("/healthz")
        assert r.status_code == 200 and r.json() == {"status": "ok"}
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])
        r = http.get("/healthz", headers={"X-Request-ID": "trace-42"})
        assert r.headers["x-request-id"] == "trace-42"
        r = http.get("/readyz")
        assert r.status_code == 200
        assert r.json()["status"] == "ok" and all(r.json()["checks"].values()), r.json()

        def logins_counted() -> float:
            r = http.get("/metrics")
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/plain")
            assert "# TYPE gochat_http_requests_total counter" in r.text
            # the route label is the route's template (bounded cardinality), not the raw path
            login = (
                r'gochat_http_requests_total\{method="POST",route="(?:/api/v1)?/auth/login",status="200"\}'
            )
            found = re.search(rf"^{login} (\S+)$", r.text, re.M)
            return float(found.group(1)) if found else 0.0

        before = logins_counted()
        register_and_login(http, "metered")
        assert logins_counted() == before + 1

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


def test_embedded_default_serves_and_keeps_its_data_and_secret_across_restarts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"  # does not exist yet
    env = base_env()  # no secret, no database, no settings at all: the embedded default
    with serving(data_dir, env) as node:
        journey(node.base_url)
        operational_endpoints(node.base_url)
        with httpx.Client(base_url=node.base_url, timeout=10) as http:
            tokens = register_and_login(http, "bob")
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
        assert r.json()["username"] == "bob"
        r = http.post(f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 200, r.text
        r = http.post(f"{API}/auth/login", json={"username": "Alice", "password": PASSWORD})
        assert r.status_code == 200, r.text
    assert secret_file.read_text() == secret


BAD_SECRETS = {
    "missing": (None, "required"),
    "short": ("0123456789abcdefXYZ", "at least 32"),
    "placeholder": ("changeme", "placeholder"),
    "low-entropy": ("x" * 48, "placeholder"),
}


def test_production_refuses_to_start_with_a_bad_secret(tmp_path: Path) -> None:
    # The four processes run side by side: each one imports the whole server before it refuses.
    procs = {}
    for case, (secret, _) in BAD_SECRETS.items():
        env = base_env(GOCHAT_ENVIRONMENT="production")
        if secret is not None:
            env["GOCHAT_SECRET_KEY"] = secret
        cmd = [
            sys.executable,
            "-m",
            "gochat",
            "serve",
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path / case),
        ]
        procs[case] = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    for case, proc in procs.items():
        secret, complaint = BAD_SECRETS[case]
        try:
            _, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()
        assert proc.returncode not in (0, None), (case, stderr)
        assert "GOCHAT_SECRET_KEY" in stderr and complaint in stderr, (case, stderr)
        assert "Traceback" not in stderr, (case, stderr)
        assert len(stderr.strip().splitlines()) <= 3, (case, stderr)  # a message, not a dump
        if secret:
            assert secret not in stderr, case  # a refused secret is not echoed to the logs
        assert not (tmp_path / case / "secret.key").exists(), case  # no fallback to a generated key
