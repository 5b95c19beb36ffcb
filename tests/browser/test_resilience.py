"""The server restarts under an open tab: banner, reconnect, sync, offline sends, token rotation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.browser import ui
from tests.browser.conftest import api_register, assert_clean, rest, unique
from tests.support import serve_process

RECOVERY_MS = 30_000  # reconnect backoff is capped at 8 s; the server takes a few to start


def stored_refresh_token(page: Any) -> str:
    return str(page.evaluate("JSON.parse(localStorage.getItem('gochat.session')).refresh_token"))


def test_restart_banner_recovery_and_offline_send(open_tab: Any, tmp_path: Path) -> None:
    # A 30 s access token: the tab must rotate its tokens during the test and keep working.
    with serve_process(
        tmp_path, GOCHAT_RATE_LIMITS_ENABLED="false", GOCHAT_ACCESS_TOKEN_TTL_S="30"
    ) as server:
        alice = api_register(server, unique("alice"), "Alice")
        bob = api_register(server, unique("bob"), "Bob")
        conv = rest(server, bob, "POST", "/conversations", json={"kind": "direct", "member_ids": [alice.id]})
        page = open_tab(on=server).page
        ui.login(page, alice)
        first_refresh = stored_refresh_token(page)
        ui.open_conversation(page, "Bob")
        ui.send(page, "before the restart")

        server.stop()
        banner = page.get_by_test_id("connection-banner")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("Reconnecting")

        # Typed while offline: shown at once, marked pending.
        ui.composer(page).fill("typed while offline")
        ui.composer(page).press("Enter")
        pending = ui.message(page, "typed while offline")
        expect(pending).to_have_attribute("data-status", "pending")

        server.start()
        # Bob writes (over REST) while Alice's tab is still reconnecting.
        bob.token = httpx.post(
            server.base_url + "/api/v1/auth/login",
            json={"username": bob.username, "password": "correct horse battery"},
        ).json()["access_token"]
        rest(
            server,
            bob,
            "POST",
            f"/conversations/{conv['id']}/messages",
            json={"client_msg_id": "b1", "body": "sent meanwhile"},
        )

        expect(banner).to_be_hidden(timeout=RECOVERY_MS)
        expect(ui.message(page, "sent meanwhile")).to_be_visible()
        expect(ui.message(page, "typed while offline")).to_have_attribute("data-status", "sent")

        history = rest(server, bob, "GET", f"/conversations/{conv['id']}/messages?limit=50")["messages"]
        bodies = [m["body"] for m in history]
        assert bodies.count("typed while offline") == 1, bodies
        assert bodies.count("before the restart") == 1, bodies

        # The refresh token rotates before the 30 s access token runs out; the socket lives on.
        page.wait_for_function(
            "old => JSON.parse(localStorage.getItem('gochat.session')).refresh_token !== old",
            arg=first_refresh,
            timeout=40_000,
        )
        rest(
            server,
            bob,
            "POST",
            f"/conversations/{conv['id']}/messages",
            json={"client_msg_id": "b2", "body": "after rotation"},
        )
        expect(ui.message(page, "after rotation")).to_be_visible()
        ui.send(page, "still here")
        expect(ui.message(page, "still here")).to_have_attribute("data-status", "sent")

        # A reload keeps one copy of everything (the outbox is empty, history is the truth).
        page.reload()
        expect(ui.message(page, "typed while offline")).to_have_count(1)
        expect(page.locator("[data-testid=message]:not([data-status=sent])")).to_have_count(0)
        assert_clean(page)


def test_revoked_session_returns_to_sign_in(open_tab: Any, server: Any) -> None:
    carol = api_register(server, unique("carol"), "Carol")
    page = open_tab().page
    ui.login(page, carol)
    refresh = stored_refresh_token(page)
    # Signing out elsewhere revokes the session: the socket closes with 4001, the refresh fails.
    assert (
        httpx.post(server.base_url + "/api/v1/auth/logout", json={"refresh_token": refresh}).status_code
        == 204
    )
    expect(page.get_by_role("heading", name="Sign in to GoChat")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("session has ended")
