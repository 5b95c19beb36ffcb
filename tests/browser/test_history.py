"""History pages in as you scroll up (before_seq), and the view stays put while it does."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.sync_api import expect

from tests.browser import ui
from tests.browser.conftest import api_register, assert_clean, rest, unique
from tests.support import ServeProcess


def test_scrolling_up_loads_older_messages(open_tab: Any, server: ServeProcess) -> None:
    reader = api_register(server, unique("rita"), "Rita Reader")
    writer = api_register(server, unique("walt"), "Walt Writer")
    conv = rest(server, writer, "POST", "/conversations", json={"kind": "direct", "member_ids": [reader.id]})
    headers = {"Authorization": f"Bearer {writer.token}"}
    with httpx.Client(base_url=server.base_url + "/api/v1", headers=headers, timeout=10) as client:
        for i in range(1, 121):
            body = {"client_msg_id": f"m{i}", "body": f"line {i:03d}"}
            assert client.post(f"/conversations/{conv['id']}/messages", json=body).status_code == 201

    page = open_tab().page
    ui.login(page, reader)
    ui.open_conversation(page, "Walt Writer")
    expect(ui.message(page, "line 120")).to_be_visible()
    expect(page.get_by_test_id("message")).to_have_count(50)
    listing = page.get_by_test_id("message-list")
    for expected in (100, 120):
        listing.evaluate("el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")
        expect(page.get_by_test_id("message")).to_have_count(expected)
    expect(ui.message(page, "line 001")).to_be_attached()
    expect(page.get_by_text("This is the beginning of the conversation.")).to_be_attached()
    assert_clean(page)
