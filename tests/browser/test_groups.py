"""Groups: create with two members, add a third later, rename, remove, leave, mentions."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.browser import ui
from tests.browser.conftest import api_register, assert_clean, rest, screenshot, unique
from tests.support import ServeProcess


def test_group_of_three_then_four(open_tab: Any, server: ServeProcess) -> None:
    names = {who: unique(who) for who in ("olivia", "bob", "carol", "dave")}
    users = {who: api_register(server, name, who.title()) for who, name in names.items()}
    pages = {}
    for who, user in users.items():
        pages[who] = open_tab().page
        ui.login(pages[who], user)
    olivia, bob, carol, dave = (pages[w] for w in ("olivia", "bob", "carol", "dave"))

    olivia.get_by_role("button", name="New group").click()
    dialog = olivia.get_by_role("dialog", name="New group")
    dialog.get_by_label("Group name").fill("Team")
    for who in ("bob", "carol"):
        dialog.get_by_label("Add people").fill(names[who])
        dialog.get_by_role("button", name=re.compile(who.title())).click()
        expect(dialog.get_by_role("list", name="Members to add")).to_contain_text(who.title())
    dialog.get_by_role("button", name="Create group").click()
    expect(olivia.get_by_test_id("chat-title")).to_have_text("Team")
    group_id = olivia.url.rsplit("/", 1)[-1]

    ui.send(olivia, "hello team")
    for page in (bob, carol):
        expect(ui.conversation(page, "Team").get_by_test_id("unread-badge")).to_have_text("1")
        ui.open_conversation(page, "Team")
        expect(ui.message(page, "hello team")).to_be_visible()
    expect(ui.conversation(dave, "Team")).to_have_count(0)

    ui.send(bob, "hi from bob")
    expect(ui.message(carol, "hi from bob")).to_contain_text("Bob")

    # Dave is added later: the group appears for him and new messages reach him.
    olivia.get_by_role("button", name="Group settings").click()
    settings = olivia.get_by_role("dialog", name="Group settings")
    settings.get_by_label("Add people").fill(names["dave"])
    settings.get_by_role("button", name=re.compile("Dave")).click()
    expect(settings.get_by_role("list", name="Members")).to_contain_text("Dave")
    screenshot(olivia, "desktop-group-settings")
    settings.get_by_role("button", name="Close").click()
    expect(ui.conversation(dave, "Team")).to_be_visible()
    ui.send(olivia, f"welcome @{names['dave']}")
    expect(ui.conversation(dave, "Team").get_by_test_id("mention-badge")).to_be_visible()
    ui.open_conversation(dave, "Team")
    expect(ui.message(dave, "welcome")).to_be_visible()

    # Carol is removed: she is told, and stops receiving.
    olivia.get_by_role("button", name="Group settings").click()
    settings = olivia.get_by_role("dialog", name="Group settings")
    settings.get_by_role("button", name="Remove Carol").click()
    expect(settings.get_by_role("list", name="Members")).not_to_contain_text("Carol")
    settings.get_by_label("Group name").fill("Team Two")
    settings.get_by_role("button", name="Rename").click()
    settings.get_by_role("button", name="Close").click()
    expect(carol.get_by_text("You are no longer a member of this group.")).to_be_visible()
    expect(dave.get_by_test_id("chat-title")).to_have_text("Team Two")

    ui.send(olivia, "after carol left")
    expect(ui.message(dave, "after carol left")).to_be_visible()
    expect(ui.message(bob, "after carol left")).to_be_visible()
    expect(ui.message(carol, "after carol left")).to_have_count(0)  # her socket got nothing
    # After a reload the group is gone from her list and its history is closed to her.
    carol.reload()
    expect(carol.get_by_text("This conversation does not exist or you are not a member.")).to_be_visible()
    expect(ui.conversation(carol, "Team")).to_have_count(0)
    assert not any(
        c["id"] == group_id for c in rest(server, users["carol"], "GET", "/conversations")["conversations"]
    )

    # Dave leaves on his own.
    dave.get_by_role("button", name="Group settings").click()
    dave.get_by_role("dialog", name="Group settings").get_by_role("button", name="Leave group").click()
    expect(dave.get_by_text("You are no longer a member of this group.")).to_be_visible()
    olivia.get_by_role("button", name="Group settings").click()
    expect(
        olivia.get_by_role("dialog", name="Group settings").get_by_role("list", name="Members")
    ).not_to_contain_text("Dave")
    for page in pages.values():
        assert_clean(page)
