"""What a person does in the web client, as Playwright steps (waits on DOM state only)."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, User


def register(page: Any, username: str, display_name: str) -> None:
    page.goto("/register")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Display name (optional)").fill(display_name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("navigation", name="Conversations")).to_be_visible()


def login(page: Any, user: User) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Conversations")).to_be_visible()


def start_direct(page: Any, username: str, display_name: str) -> None:
    page.get_by_role("button", name="New chat").click()
    dialog = page.get_by_role("dialog", name="New chat")
    dialog.get_by_label("Find someone").fill(username)
    dialog.get_by_role("button", name=re.compile(re.escape(display_name))).click()
    expect(page.get_by_test_id("chat-title")).to_have_text(display_name)


def conversation(page: Any, name: str) -> Any:
    """The conversation list row whose name is exactly ``name``."""
    named = page.get_by_test_id("conversation-name").get_by_text(name, exact=True)
    return page.get_by_test_id("conversation").filter(has=named)


def open_conversation(page: Any, name: str) -> None:
    conversation(page, name).click()
    expect(page.get_by_test_id("chat-title")).to_have_text(name)


def composer(page: Any) -> Any:
    return page.get_by_role("textbox", name="Message")


def send(page: Any, text: str) -> None:
    box = composer(page)
    box.fill(text)
    box.press("Enter")
    expect(sent_message(page, text)).to_be_visible()


def sent_message(page: Any, text: str) -> Any:
    return message(page, text)


def message(page: Any, text: str) -> Any:
    """The message whose own body (not a reply quote) contains ``text``."""
    return page.get_by_test_id("message").filter(
        has=page.get_by_test_id("message-body").filter(has_text=text)
    )
