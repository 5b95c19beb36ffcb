"""Transport security: `gochat serve --tls-cert --tls-key` serves https and wss, and HSTS.

A throwaway CA (trustme) issues the server's certificate; clients trust only that CA. The
transport does not depend on the database, so the TLS process runs embedded (SQLite); the
HSTS rules run in process on SQLite and MariaDB.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import trustme
from websockets.sync.client import connect as ws_connect_sync

from tests.security.helpers import API, PASSWORD
from tests.support import TEST_SECRET, free_port, live_server, make_settings

HSTS = "max-age=31536000; includeSubDomains"


class TlsServer:
    def __init__(self, port: int, ctx: ssl.SSLContext, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.port, self.ctx, self.proc, self.log = port, ctx, proc, log
        self.base_url = f"https://127.0.0.1:{port}"
        self.ws_url = f"wss://127.0.0.1:{port}/ws"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, verify=self.ctx, timeout=10)


@contextlib.contextmanager
def tls_serve(tmp_path: Path) -> Iterator[TlsServer]:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOCHAT_")}
    env.update({"GOCHAT_SECRET_KEY": TEST_SECRET, "GOCHAT_LOG_LEVEL": "warning"})
    port = free_port()
    cmd = [
        sys.executable, "-m", "gochat", "serve", "--port", str(port), "--data-dir", str(tmp_path / "data"),
        "--tls-cert", str(cert), "--tls-key", str(key),
    ]  # fmt: skip
    log = tmp_path / "serve-tls.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = TlsServer(port, ctx, proc, log)
    try:
        deadline = time.monotonic() + 30
        with server.client() as http:
            while True:
                assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
                with contextlib.suppress(httpx.HTTPError):
                    if http.get("/readyz").status_code == 200:
                        break
                assert time.monotonic() < deadline, "gochat serve (TLS) did not become ready"
                time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_serve_with_tls_speaks_https_and_wss_only(tmp_path: Path) -> None:
    with tls_serve(tmp_path) as server, server.client() as http:
        # REST over https, with HSTS on every answer (success, error, operations).
        r = http.post(f"{API}/auth/register", json={"username": "alice", "password": PASSWORD})
        assert r.status_code == 201, r.text
        r = http.post(f"{API}/auth/login", json={"username": "alice", "password": PASSWORD})
        assert r.status_code == 200 and r.headers["strict-transport-security"] == HSTS
        token = r.json()["access_token"]
        me = http.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.json()["username"] == "alice"
        for response in (me, http.get(f"{API}/users/me"), http.get("/healthz"), http.get("/")):
            assert response.headers.get("strict-transport-security") == HSTS, response.url

        # wss: auth frame and Bearer upgrade header both reach `ready`.
        with ws_connect_sync(server.ws_url, ssl=server.ctx, open_timeout=5) as ws:
            ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
            ready = orjson.loads(ws.recv(timeout=5))
            assert ready["type"] == "ready" and ready["user_id"] == r.json()["user_id"]
            ws.send('{"type":"ping","id":"tls"}')
            assert orjson.loads(ws.recv(timeout=5)) == {"type": "pong", "id": "tls"}
        headers = {"Authorization": f"Bearer {token}"}
        with ws_connect_sync(server.ws_url, ssl=server.ctx, additional_headers=headers, open_timeout=5) as ws:
            assert orjson.loads(ws.recv(timeout=5))["type"] == "ready"

        # The certificate is what makes it trusted: a client without the CA refuses it...
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(server.base_url + "/healthz", timeout=5)
        with pytest.raises(ssl.SSLCertVerificationError):
            ws_connect_sync(server.ws_url, ssl=ssl.create_default_context(), open_timeout=5)
        # ...and there is no plaintext fallback on the same port.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
        assert server.proc.poll() is None


async def test_hsts_only_with_tls_or_when_configured(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with live_server(make_settings(db_url, tmp_path)) as plain:
        for r in (await plain.http.get("/healthz"), await plain.http.get(f"{API}/users/me")):
            assert "strict-transport-security" not in r.headers, r.url
    # Behind a TLS-terminating proxy: GOCHAT_HSTS=true, read from the environment.
    monkeypatch.setenv("GOCHAT_HSTS", "true")
    async with live_server(make_settings(db_url, tmp_path)) as proxied:
        for r in (await proxied.http.get("/healthz"), await proxied.http.get(f"{API}/users/me")):
            assert r.headers.get("strict-transport-security") == HSTS, r.url
