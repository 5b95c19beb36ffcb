"""The committed bundle (src/gochat/web) is exactly what web/ builds, and it is served safely.

The build is committed so that `gochat serve` needs no Node.js; this test rebuilds it from
the sources and the lock file and compares every file's hash, so a source change without a
rebuild (or a hand edit of the bundle) fails here.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from gochat.api.web import WEB_DIR, content_security_policy, media_origins
from gochat.app import create_app
from tests.support import make_settings, service_missing

ROOT = Path(__file__).resolve().parents[2]
WEB_SRC = ROOT / "web"
# Ways to turn a string into markup or code; user content must only ever become text.
SINKS = re.compile(
    r"innerHTML|outerHTML|dangerouslySetInnerHTML|v-html|insertAdjacentHTML|document\.write|"
    r"\beval\(|new Function\(|srcdoc|createContextualFragment"
)


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def npm() -> str:
    found = shutil.which("npm")
    if found is None:
        service_missing("Node.js/npm", "npm is not on PATH (Node 20 builds the web client)")
    return str(found)


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """web/node_modules from the lock file (npm ci), installed once if missing."""
    command = npm()
    modules = WEB_SRC / "node_modules"
    if not (modules / ".bin" / "vite").exists():
        subprocess.run([command, "ci", "--no-audit", "--no-fund"], cwd=WEB_SRC, check=True, timeout=300)
    return modules


def test_no_html_injection_sinks_in_web_sources() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in sorted((WEB_SRC / "src").rglob("*"))
        if path.suffix in (".ts", ".tsx", ".js", ".jsx", ".vue", ".html")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if SINKS.search(line)
    ]
    assert offenders == []
    assert "<script>" not in (WEB_SRC / "index.html").read_text()


def test_committed_bundle_matches_sources(node_modules: Path, tmp_path: Path) -> None:
    out = tmp_path / "build"
    env = {**os.environ, "NODE_ENV": "production"}
    subprocess.run(
        [
            str(node_modules / ".bin" / "vite"),
            "build",
            "--outDir",
            str(out),
            "--emptyOutDir",
            "--logLevel",
            "warn",
        ],
        cwd=WEB_SRC,
        check=True,
        timeout=180,
        env=env,
    )
    fresh, committed = tree_hashes(out), tree_hashes(WEB_DIR)
    assert fresh == committed, "src/gochat/web is stale: run `npm run build` in web/ and commit the result"


def test_typescript_is_strict_and_clean(node_modules: Path) -> None:
    config = (WEB_SRC / "tsconfig.json").read_text()
    assert '"strict": true' in config
    result = subprocess.run(
        [str(node_modules / ".bin" / "tsc"), "--noEmit", "-p", "tsconfig.json"],
        cwd=WEB_SRC,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_built_html_has_no_inline_code() -> None:
    html = (WEB_DIR / "index.html").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert "<style" not in html and " style=" not in html
    assert re.findall(r"\son[a-z]+\s*=", html) == []


# --- serving ---------------------------------------------------------------------------------


class InProcess:
    """The real app over ASGI, driven from a worker thread: Playwright's sync API owns the
    event loop of the main thread, so these tests cannot be `async def` in this directory."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, path: str) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                return await client.request(method, path)

        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, go()).result(timeout=30)

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(self, path: str) -> httpx.Response:
        return self.request("POST", path)


@pytest.fixture
def web(tmp_path: Path) -> InProcess:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'g.db'}", tmp_path)
    return InProcess(create_app(settings, auto_migrate=False))


def test_index_and_client_routes_get_the_app_with_a_strict_csp(web: InProcess) -> None:
    for path in ("/", "/login", "/c/12345", "/profile"):
        response = web.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert '<div id="root">' in response.text
        csp = response.headers["content-security-policy"]
        for directive in (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' blob: data:",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "object-src 'none'",
        ):
            assert directive in csp, (directive, csp)
        assert "unsafe" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"


def test_assets_are_immutable_and_misses_are_404(web: InProcess) -> None:
    asset = next((WEB_DIR / "assets").glob("*.js")).name
    found = web.get(f"/assets/{asset}")
    assert found.status_code == 200
    assert "immutable" in found.headers["cache-control"]
    assert "javascript" in found.headers["content-type"]
    for path in (
        "/assets/nope.js",
        "/missing.png",
        "/assets/../../config.py",
        "/assets/%2e%2e/%2e%2e/app.py",
    ):
        assert (web.get(path)).status_code == 404, path


def test_server_paths_keep_their_own_errors(web: InProcess) -> None:
    missing = web.get("/api/v1/no-such-route")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert (web.post("/api/v1/no-such-route")).status_code == 404
    assert (web.post("/login")).status_code in (404, 405)
    assert (web.get("/healthz")).json() == {"status": "ok"}
    assert "text/html" not in (web.get("/api/v1/users/me")).headers.get("content-type", "")


def test_media_origins_from_settings_and_s3_endpoint() -> None:
    origins = media_origins(
        "s3://bucket?endpoint=http://127.0.0.1:8333&region=us-east-1", ["https://cdn.example"]
    )
    assert origins == ["https://cdn.example", "http://127.0.0.1:8333"]
    csp = content_security_policy(origins)
    assert "img-src 'self' blob: data: http://127.0.0.1:8333 https://cdn.example" in csp
    assert media_origins("file:///tmp/media", []) == []
    assert "img-src 'self' blob: data:;" in content_security_policy([])
