"""Two people, two browser contexts: register, chat both ways, typing, receipts, badges."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.browser import ui
from tests.browser.conftest import PHONE, api_register, assert_clean, screenshot, unique
from tests.support import ServeProcess


def test_alice_and_bob_chat(open_tab: Any, server: ServeProcess) -> None:
    alice, bob = open_tab().page, open_tab().page
    alice_name, bob_name = unique("alice"), unique("bob")
    ui.register(alice, alice_name, "Alice Liddell")
    screenshot(alice, "desktop-empty")
    ui.register(bob, bob_name, "Bob Builder")

    ui.start_direct(alice, bob_name, "Bob Builder")
    ui.send(alice, "Hi Bob! https://example.com/docs?x=1")
    link = ui.message(alice, "https://example.com/docs?x=1").get_by_role("link")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(link).to_have_attribute("target", "_blank")

    # Bob sees the new conversation with an unread badge, which clears when he opens it.
    row = ui.conversation(bob, "Alice Liddell")
    expect(row.get_by_test_id("unread-badge")).to_have_text("1")
    ui.open_conversation(bob, "Alice Liddell")
    expect(row.get_by_test_id("unread-badge")).to_have_count(0)
    expect(ui.message(bob, "https://example.com/docs?x=1")).to_contain_text("Hi Bob!")

    # Alice sees that Bob read it; both see each other online.
    expect(alice.get_by_test_id("seen")).to_be_visible()
    expect(ui.conversation(alice, "Bob Builder").get_by_test_id("presence-dot")).to_have_attribute(
        "data-online", "true"
    )

    # Typing shows on the other side.
    ui.composer(bob).press_sequentially("typing so")
    expect(alice.get_by_test_id("typing")).to_have_text("Bob Builder is typing…")
    ui.composer(bob).fill("")

    # Bob answers with a reply (Shift+Enter makes a new line); Alice gets it live.
    ui.message(bob, "https://example.com/docs?x=1").hover()
    ui.message(bob, "https://example.com/docs?x=1").get_by_role("button", name="Reply").click()
    box = ui.composer(bob)
    box.fill("Hello Alice")
    box.press("Shift+Enter")
    box.press_sequentially("second line")
    box.press("Enter")
    reply = alice.get_by_test_id("message").filter(has_text="second line")
    expect(reply.get_by_test_id("message-body")).to_have_text("Hello Alice\nsecond line")
    expect(reply.get_by_test_id("reply-quote")).to_contain_text("Alice Liddell")
    expect(alice.get_by_test_id("typing")).to_have_text("")

    # Reactions, edits and deletes reach the other side.
    first = ui.message(alice, "https://example.com/docs?x=1")
    first.hover()
    first.get_by_role("button", name="React").click()
    first.get_by_role("button", name="React 👍").click()
    expect(ui.message(bob, "https://example.com/docs?x=1").get_by_test_id("reaction")).to_have_text("👍 1")

    mine = ui.message(alice, "https://example.com/docs?x=1")
    mine.hover()
    mine.get_by_role("button", name="Edit").click()
    ui.composer(alice).fill("Hi Bob, edited")
    ui.composer(alice).press("Enter")
    expect(ui.message(bob, "Hi Bob, edited")).to_contain_text("(edited)")

    ui.send(alice, "oops, wrong chat")
    expect(ui.message(bob, "oops, wrong chat")).to_be_visible()
    oops = ui.message(alice, "oops, wrong chat")
    oops.hover()
    oops.get_by_role("button", name="Delete").click()
    alice.get_by_role("button", name="Yes, delete").click()
    expect(bob.get_by_text("oops, wrong chat")).to_have_count(0)
    expect(bob.get_by_text("This message was deleted")).to_be_visible()

    # Unread badge while Bob looks elsewhere, cleared on open.
    bob.goto("/")
    ui.send(alice, "are you there?")
    expect(ui.conversation(bob, "Alice Liddell").get_by_test_id("unread-badge")).to_have_text("1")
    screenshot(bob, "desktop-list")
    ui.open_conversation(bob, "Alice Liddell")
    expect(ui.conversation(bob, "Alice Liddell").get_by_test_id("unread-badge")).to_have_count(0)
    screenshot(alice, "desktop-chat")
    assert_clean(alice)
    assert_clean(bob)


def test_phone_layout_shows_one_pane(open_tab: Any, server: ServeProcess) -> None:
    phone = open_tab(viewport=PHONE).page
    name = unique("pat")
    ui.register(phone, name, "Pat Phone")
    expect(phone.get_by_role("navigation", name="Conversations")).to_be_visible()
    screenshot(phone, "phone-list")
    other = unique("quinn")

    api_register(server, other, "Quinn")
    ui.start_direct(phone, other, "Quinn")
    expect(phone.get_by_role("navigation", name="Conversations")).to_be_hidden()
    ui.send(phone, "hello from a phone")
    screenshot(phone, "phone-chat")
    phone.get_by_role("button", name="Back to conversations").click()
    expect(ui.conversation(phone, "Quinn")).to_be_visible()
    assert_clean(phone)


def test_keyboard_only(open_tab: Any, server: ServeProcess) -> None:
    user = api_register(server, unique("kay"), "Kay Board")
    page = open_tab().page
    page.goto("/login")
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type(user.username)
    page.keyboard.press("Tab")
    page.keyboard.type("correct horse battery")
    page.keyboard.press("Enter")
    new_chat = page.get_by_role("button", name="New chat")
    new_chat.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="New chat")
    expect(dialog.get_by_label("Find someone")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(new_chat).to_be_focused()
    outline = new_chat.evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline != "none"  # a visible focus ring
    assert_clean(page)
