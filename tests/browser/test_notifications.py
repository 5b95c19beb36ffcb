"""A hidden tab: desktop notifications and a "(N) GoChat" title; muted conversations stay quiet."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.browser import ui
from tests.browser.conftest import api_register, assert_clean, rest, unique
from tests.support import ServeProcess

# A recording stand-in for the Notification API (headless Chromium shows none).
NOTIFICATIONS = """
window.__notes = [];
window.Notification = class {
  static permission = 'granted';
  static requestPermission() { return Promise.resolve('granted'); }
  constructor(title, options) { window.__notes.push({title, body: (options || {}).body}); }
  close() {}
};
"""
HIDE = """() => {
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
  document.dispatchEvent(new Event('visibilitychange'));
}"""
SHOW = """() => {
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'visible'});
  document.dispatchEvent(new Event('visibilitychange'));
}"""


def test_hidden_tab_notifies_unless_muted(open_tab: Any, server: ServeProcess) -> None:
    ann = api_register(server, unique("ann"), "Ann")
    ben = api_register(server, unique("ben"), "Ben")
    direct = rest(server, ben, "POST", "/conversations", json={"kind": "direct", "member_ids": [ann.id]})
    noisy = rest(
        server,
        ben,
        "POST",
        "/conversations",
        json={"kind": "group", "title": "Noisy", "member_ids": [ann.id]},
    )
    tab = open_tab()
    tab.context.add_init_script(NOTIFICATIONS)
    page = tab.page
    ui.login(page, ann)

    ui.open_conversation(page, "Noisy")
    page.get_by_role("button", name="Mute").click()
    expect(page.get_by_role("button", name="Unmute")).to_be_visible()
    ui.open_conversation(page, "Ben")
    page.evaluate(HIDE)

    rest(
        server,
        ben,
        "POST",
        f"/conversations/{noisy['id']}/messages",
        json={"client_msg_id": "n1", "body": "muted chatter"},
    )
    rest(
        server,
        ben,
        "POST",
        f"/conversations/{direct['id']}/messages",
        json={"client_msg_id": "d1", "body": "ping while hidden"},
    )
    expect(page).to_have_title("(1) GoChat")
    assert page.evaluate("window.__notes") == [{"title": "Ben", "body": "ping while hidden"}]
    # The open conversation was not marked read while nobody could see it.
    expect(ui.message(page, "ping while hidden")).to_be_visible()
    assert rest(server, ann, "GET", f"/conversations/{direct['id']}")["unread_count"] == 1

    page.evaluate(SHOW)
    expect(page).to_have_title("GoChat")
    expect(ui.conversation(page, "Ben").get_by_test_id("unread-badge")).to_have_count(0)
    assert_clean(page)
