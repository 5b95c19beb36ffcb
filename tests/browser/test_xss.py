"""Hostile text in messages, display names and group titles renders as text and runs nothing."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.browser import ui
from tests.browser.conftest import api_register, assert_clean, rest, screenshot, unique
from tests.support import ServeProcess

PAYLOADS = [
    "<script>window.__xss.push('script')</script>",
    "<img src=x onerror=\"window.__xss.push('img')\">",
    "<svg onload=\"window.__xss.push('svg')\"></svg>",
    "<svg><script>window.__xss.push('svg-script')</script></svg>",
    "<svg><a xlink:href=\"javascript:window.__xss.push('svg-link')\"><text>x</text></a></svg>",
    "javascript:window.__xss.push('js-scheme')",
    "JaVaScRiPt:alert('mixed-case')",
    "<a href=\"javascript:alert('anchor')\">click me</a>",
    "[markdown](javascript:alert('md'))",
    "<iframe src=\"javascript:alert('iframe')\"></iframe>",
    "\"><script>alert('attribute-break')</script>",
    "<body onload=alert('body')>",
    "<details open ontoggle=alert('details')>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert('mxss')>",
    "{{constructor.constructor('alert(1)')()}}",
    "https://example.com/\"onmouseover=\"alert('quote')",
    "data:text/html,<script>alert('data')</script>",
    "<style>*{display:none}</style>",
]
NAME = "<img src=x onerror=alert('name')>"
TITLE = "<svg onload=alert('title')>"


def test_hostile_text_renders_as_text(open_tab: Any, server: ServeProcess) -> None:
    victim = api_register(server, unique("vic"), "Victim")
    mallory = api_register(server, unique("mal"), NAME)
    direct = rest(
        server, mallory, "POST", "/conversations", json={"kind": "direct", "member_ids": [victim.id]}
    )
    group = rest(
        server,
        mallory,
        "POST",
        "/conversations",
        json={"kind": "group", "title": TITLE, "member_ids": [victim.id]},
    )
    for conv in (direct, group):
        for i, payload in enumerate(PAYLOADS):
            rest(
                server,
                mallory,
                "POST",
                f"/conversations/{conv['id']}/messages",
                json={"client_msg_id": f"{conv['id']}-{i}", "body": payload},
            )

    tab = open_tab()
    page = tab.page
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    ui.login(page, victim)

    expect(ui.conversation(page, NAME)).to_be_visible()
    expect(ui.conversation(page, TITLE)).to_be_visible()
    ui.open_conversation(page, TITLE)
    expect(page.get_by_test_id("message-body").last).to_have_text(PAYLOADS[-1])
    ui.open_conversation(page, NAME)
    bodies = page.get_by_test_id("message-body")
    expect(bodies).to_have_count(len(PAYLOADS))
    expect(bodies).to_have_text(PAYLOADS)
    screenshot(page, "desktop-xss")

    # Only http(s) URLs became links, and they are safe ones.
    links = page.get_by_test_id("message-list").get_by_role("link")
    for href in links.evaluate_all("els => els.map(e => e.getAttribute('href'))"):
        assert href.startswith(("https://", "http://", "#msg-")), href
    hover_and_click_everything(page)

    # Nothing the payloads describe exists as an element, and nothing ran.
    message_list = page.get_by_test_id("message-list")
    for selector in (
        "script",
        "img[src=x]",
        "svg[onload]",
        "iframe",
        "details",
        "math",
        "style",
        "a[href^=javascript]",
    ):
        assert message_list.locator(selector).count() == 0, selector
    assert page.locator("script:not([src])").count() == 0
    assert dialogs == []
    assert_clean(page)


def hover_and_click_everything(page: Any) -> None:
    """Move over every message (onmouseover payloads) and follow each link without leaving."""
    for message in page.get_by_test_id("message").all():
        message.hover()
    with page.context.expect_page(timeout=5_000) as popup:
        page.get_by_test_id("message-list").get_by_role("link").first.click()
    popup.value.close()
