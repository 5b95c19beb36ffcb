"""Browser tests: Playwright driving Debian's Chromium against a real `gochat serve`.

Playwright never downloads a browser here: it launches /usr/bin/chromium. Every wait is on
DOM state (locators and `expect` with timeouts), never a fixed sleep.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import ServeProcess, serve_process, service_missing

CHROMIUM = os.environ.get("GOCHAT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PASSWORD = "correct horse battery"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TIMEOUT_MS = 10_000
EXTERNAL = re.compile(r"^(?!https?://127\.0\.0\.1[:/])[a-z]+://")

# Runs before any page script: records CSP violations and anything an XSS payload would do.
MONITOR = """
window.__xss = [];
window.__csp = [];
window.alert = (m) => window.__xss.push('alert:' + m);
window.confirm = (m) => { window.__xss.push('confirm:' + m); return false; };
window.prompt = (m) => { window.__xss.push('prompt:' + m); return null; };
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == here:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        service_missing("Chromium", f"{CHROMIUM} is missing (scripts/services.sh browser installs it)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as exc:
        service_missing("Playwright", repr(exc))
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One server for the browser tests (starting one takes seconds); tests use unique names.

    A test that stops or reconfigures its server makes its own with ``serve_process``.
    """
    with serve_process(tmp_path_factory.mktemp("browser"), GOCHAT_RATE_LIMITS_ENABLED="false") as live:
        yield live


@dataclass
class User:
    username: str
    display_name: str
    id: str = ""
    token: str = ""


@dataclass
class Tab:
    """One browser context (one person's device) with its page."""

    context: Any
    page: Any

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_tab(browser: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., Tab]]:
    """Open a tab on the suite's server, or on ``on=`` another one."""
    tabs: list[Tab] = []

    def make(viewport: dict[str, int] | None = None, on: ServeProcess | None = None, **options: Any) -> Tab:
        target = on or request.getfixturevalue("server")
        context = browser.new_context(
            base_url=target.base_url,
            viewport=viewport or DESKTOP,
            service_workers="block",
            **options,
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(MONITOR)
        # Nothing leaves the machine: links that tests follow open a page that fails fast.
        context.route(EXTERNAL, lambda route: route.abort())
        page = context.new_page()
        tab = Tab(context, page)
        tabs.append(tab)
        return tab

    yield make
    for tab in tabs:
        tab.close()


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(3)}"


def api_register(server: ServeProcess, username: str, display_name: str | None = None) -> User:
    """A user made over REST (fast set-up for tests that are not about registering)."""
    body: dict[str, str] = {"username": username, "password": PASSWORD}
    if display_name is not None:
        body["display_name"] = display_name
    created = httpx.post(server.base_url + "/api/v1/auth/register", json=body, timeout=10)
    assert created.status_code == 201, created.text
    tokens = httpx.post(
        server.base_url + "/api/v1/auth/login", json={"username": username, "password": PASSWORD}, timeout=10
    ).json()
    user = created.json()
    return User(username, user["display_name"], user["id"], tokens["access_token"])


def rest(server: ServeProcess, user: User, method: str, path: str, **kwargs: Any) -> Any:
    response = httpx.request(
        method,
        server.base_url + "/api/v1" + path,
        headers={"Authorization": f"Bearer {user.token}"},
        timeout=10,
        **kwargs,
    )
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


def assert_clean(page: Any) -> None:
    """No script ran from user content, no CSP violation, no uncaught error."""
    assert page.evaluate("window.__xss") == []
    assert page.evaluate("window.__csp") == []


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
