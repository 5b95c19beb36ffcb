"""Conversations over REST: direct and group creation, roles and membership, listing, privacy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from gochat.clock import FakeClock
from tests.integration.chat_helpers import (
    Json,
    User,
    create_direct,
    create_group,
    get_conversation,
    send_rest,
    users,
)
from tests.support import LiveServer, live_server, make_settings

API = "/api/v1/conversations"


def roles(conversation: Json) -> dict[str, str]:
    return {m["user_id"]: m["role"] for m in conversation["members"]}


def error_code(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


async def list_all(server: LiveServer, user: User, limit: int = 50) -> list[list[Json]]:
    """Every page of the user's conversation list."""
    pages: list[list[Json]] = []
    params: dict[str, str | int] = {"limit": limit}
    while True:
        r = await server.http.get(API, params=params, headers=user.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append(body["conversations"])
        if body["next_cursor"] is None:
            return pages
        params["cursor"] = body["next_cursor"]
        assert len(pages) < 20, "paging does not end"


# --- direct conversations ------------------------------------------------------------------


async def test_direct_conversation_is_one_per_pair(server: LiveServer) -> None:
    alice, bob = await users(server, "alice", "bob")
    first = await create_direct(server, alice, bob)
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["kind"], body["title"], body["last_seq"]) == ("direct", None, 0)
    assert roles(body) == {alice.id: "member", bob.id: "member"}
    again = await create_direct(server, alice, bob)
    reverse = await create_direct(server, bob, alice)
    assert (again.status_code, again.json()["id"]) == (200, body["id"])
    assert (reverse.status_code, reverse.json()["id"]) == (200, body["id"])
    assert [[c["id"] for c in page] for page in await list_all(server, bob)] == [[body["id"]]]


async def test_direct_conversation_failures(server: LiveServer) -> None:
    alice, bob = await users(server, "alice", "bob")
    myself = await create_direct(server, alice, alice)
    assert error_code(myself) == (422, "invalid_request")
    assert myself.json()["error"]["fields"][0]["field"] == "member_ids"
    for member_ids, expected in (
        (["123456789"], (404, "not_found")),  # a well-formed id nobody has
        (["abc"], (404, "not_found")),
        ([], (422, "invalid_request")),
        ([bob.id, bob.id], (422, "invalid_request")),
    ):
        r = await server.http.post(
            API, json={"kind": "direct", "member_ids": member_ids}, headers=alice.headers
        )
        assert error_code(r) == expected, member_ids
    r = await server.http.post(API, json={"kind": "channel", "member_ids": [bob.id]}, headers=alice.headers)
    assert error_code(r) == (422, "invalid_request")
    r = await server.http.post(API, json={"kind": "direct", "member_ids": [bob.id]})
    assert error_code(r) == (401, "invalid_token")
    assert await list_all(server, alice) == [[]]


async def test_concurrent_direct_creation_makes_exactly_one(server: LiveServer) -> None:
    alice, bob = await users(server, "alice", "bob")
    attempts = [create_direct(server, *((alice, bob) if i % 2 else (bob, alice))) for i in range(10)]
    results = await asyncio.gather(*attempts)
    assert sorted(r.status_code for r in results) == [200] * 9 + [201], [r.text for r in results]
    assert len({r.json()["id"] for r in results}) == 1
    for user in (alice, bob):
        pages = await list_all(server, user)
        assert [c["id"] for page in pages for c in page] == [results[0].json()["id"]]
    detail = await get_conversation(server, alice, results[0].json()["id"])
    assert roles(detail) == {alice.id: "member", bob.id: "member"}
    assert detail["last_pos"] == 2  # two member.joined events, not twenty


# --- groups, roles and membership -------------------------------------------------------------


async def test_group_has_a_title_and_roles(server: LiveServer) -> None:
    alice, bob, carol = await users(server, "alice", "bob", "carol")
    body = {"kind": "group", "title": "Team 🚀", "member_ids": [bob.id, carol.id, bob.id, alice.id]}
    r = await server.http.post(API, json=body, headers=alice.headers)
    assert r.status_code == 201, r.text
    group = r.json()
    assert (group["kind"], group["title"], group["last_seq"], group["unread_count"]) == (
        "group",
        "Team 🚀",
        0,
        0,
    )
    assert roles(group) == {alice.id: "owner", bob.id: "member", carol.id: "member"}
    assert group["last_pos"] == 3
    assert (await get_conversation(server, carol, group["id"]))["title"] == "Team 🚀"
    for bad in (
        {"kind": "group", "member_ids": [bob.id]},
        {"kind": "group", "title": "  ", "member_ids": []},
    ):
        r = await server.http.post(API, json=bad, headers=alice.headers)
        assert error_code(r) == (422, "invalid_request"), bad
    r = await server.http.post(
        API, json={"kind": "group", "title": "t", "member_ids": [bob.id, "123456789"]}, headers=alice.headers
    )
    assert error_code(r) == (404, "not_found")
    assert [c["id"] for page in await list_all(server, bob) for c in page] == [group["id"]]


async def test_membership_rules(server: LiveServer) -> None:
    alice, bob, carol, dave, erin = await users(server, "alice", "bob", "carol", "dave", "erin")
    conv = (await create_group(server, alice, "g", bob, carol))["id"]
    members = f"{API}/{conv}/members"

    async def add(actor: User, *who: User) -> httpx.Response:
        return await server.http.post(members, json={"user_ids": [u.id for u in who]}, headers=actor.headers)

    async def remove(actor: User, target: User) -> httpx.Response:
        return await server.http.delete(f"{members}/{target.id}", headers=actor.headers)

    async def set_role(actor: User, target: User, role: str) -> httpx.Response:
        return await server.http.patch(f"{members}/{target.id}", json={"role": role}, headers=actor.headers)

    # plain members manage nothing
    assert error_code(await add(bob, dave)) == (403, "forbidden")
    assert error_code(await set_role(bob, carol, "admin")) == (403, "forbidden")
    r = await server.http.patch(f"{API}/{conv}", json={"title": "mine"}, headers=bob.headers)
    assert error_code(r) == (403, "forbidden")
    assert error_code(await remove(bob, carol)) == (403, "forbidden")

    # the owner sets roles (not "owner", not their own)
    assert (await set_role(alice, bob, "admin")).status_code == 204
    assert error_code(await set_role(alice, bob, "owner")) == (422, "invalid_request")
    assert error_code(await set_role(alice, alice, "member")) == (422, "invalid_request")
    assert error_code(await set_role(alice, dave, "admin")) == (404, "not_found")
    assert roles(await get_conversation(server, carol, conv))[bob.id] == "admin"

    # admins add, rename, and remove plain members, but not the owner or other admins
    r = await add(bob, dave, erin)
    assert r.status_code == 200, r.text
    assert roles(r.json())[dave.id] == roles(r.json())[erin.id] == "member"
    r = await server.http.patch(f"{API}/{conv}", json={"title": "renamed"}, headers=bob.headers)
    assert (r.status_code, r.json()["title"]) == (200, "renamed")
    assert error_code(await remove(bob, alice)) == (403, "forbidden")
    assert (await set_role(alice, carol, "admin")).status_code == 204
    assert error_code(await remove(bob, carol)) == (403, "forbidden")
    assert (await remove(bob, dave)).status_code == 204
    assert error_code(await server.http.get(f"{API}/{conv}", headers=dave.headers)) == (404, "not_found")
    assert error_code(await remove(bob, dave)) == (404, "not_found")  # not a member any more

    # anyone can leave; a plain member can't remove others
    assert error_code(await remove(erin, bob)) == (403, "forbidden")
    assert (await remove(erin, erin)).status_code == 204
    assert erin.id not in roles(await get_conversation(server, alice, conv))

    # the owner leaving hands ownership to the longest-standing admin
    assert (await remove(alice, alice)).status_code == 204
    after = roles(await get_conversation(server, bob, conv))
    assert after == {bob.id: "owner", carol.id: "admin"}
    assert (await set_role(bob, carol, "member")).status_code == 204
    assert roles(await get_conversation(server, bob, conv))[carol.id] == "member"
    # the last members leaving: an owner who is alone can still leave
    assert (await remove(bob, bob)).status_code == 204
    assert roles(await get_conversation(server, carol, conv)) == {carol.id: "owner"}


async def test_owner_leaving_without_admins_hands_over_to_the_earliest_member(server: LiveServer) -> None:
    alice, bob, carol, dave = await users(server, "alice", "bob", "carol", "dave")
    conv = (await create_group(server, alice, "g", bob))["id"]
    r = await server.http.post(f"{API}/{conv}/members", json={"user_ids": [carol.id]}, headers=alice.headers)
    assert r.status_code == 200
    r = await server.http.delete(f"{API}/{conv}/members/{alice.id}", headers=alice.headers)
    assert r.status_code == 204
    assert roles(await get_conversation(server, carol, conv)) == {bob.id: "owner", carol.id: "member"}
    # the new owner can manage
    r = await server.http.post(f"{API}/{conv}/members", json={"user_ids": [dave.id]}, headers=bob.headers)
    assert r.status_code == 200


async def test_direct_conversations_have_no_membership_to_manage(server: LiveServer) -> None:
    alice, bob, carol = await users(server, "alice", "bob", "carol")
    conv = (await create_direct(server, alice, bob)).json()["id"]
    h = alice.headers
    r = await server.http.patch(f"{API}/{conv}", json={"title": "x"}, headers=h)
    assert error_code(r) == (403, "forbidden")
    r = await server.http.post(f"{API}/{conv}/members", json={"user_ids": [carol.id]}, headers=h)
    assert error_code(r) == (403, "forbidden")
    assert error_code(await server.http.delete(f"{API}/{conv}/members/{alice.id}", headers=h)) == (
        403,
        "forbidden",
    )
    assert error_code(await server.http.delete(f"{API}/{conv}/members/{bob.id}", headers=h)) == (
        403,
        "forbidden",
    )
    detail = await get_conversation(server, bob, conv)
    assert (detail["title"], roles(detail)) == (None, {alice.id: "member", bob.id: "member"})


# --- listing --------------------------------------------------------------------------------


async def test_list_shows_positions_unread_counts_and_last_message(server: LiveServer) -> None:
    alice, bob = await users(server, "alice", "bob")
    conv = (await create_group(server, alice, "g", bob))["id"]
    quiet = (await create_direct(server, alice, bob)).json()["id"]
    for i in range(3):
        await send_rest(server, bob, conv, f"b{i}", f"from bob {i}")
    mine = await send_rest(server, alice, conv, "a0", "from alice")
    r = await server.http.post(f"{API}/{conv}/read", json={"seq": 2}, headers=alice.headers)
    assert r.status_code == 204
    [page] = await list_all(server, alice)
    assert [c["id"] for c in page] == [conv, quiet]  # most recent activity first
    listed = page[0]
    assert (listed["last_seq"], listed["read_seq"], listed["unread_count"]) == (4, 2, 1)
    assert listed["last_message"] == mine
    assert listed["last_pos"] == mine["pos"] + 1  # the read receipt is the last change
    assert (page[1]["last_seq"], page[1]["unread_count"], page[1]["last_message"]) == (0, 0, None)
    [bobs] = await list_all(server, bob)
    assert (bobs[0]["read_seq"], bobs[0]["unread_count"]) == (0, 1)  # his own messages never count
    detail = await get_conversation(server, alice, conv)
    assert {k: detail[k] for k in ("last_seq", "read_seq", "unread_count")} == {
        "last_seq": 4,
        "read_seq": 2,
        "unread_count": 1,
    }


async def paging_check(server: LiveServer, *, clock_moves: bool) -> None:
    alice, bob = await users(server, "alice", "bob")
    created = [(await create_group(server, alice, f"g{i}", bob))["id"] for i in range(7)]
    pages = await list_all(server, alice, limit=3)
    assert [len(p) for p in pages] == [3, 3, 1]
    seen = [c["id"] for page in pages for c in page]
    assert sorted(seen) == sorted(created) and len(set(seen)) == 7
    if clock_moves:  # a message moves its conversation to the front
        await send_rest(server, bob, created[0], "c", "bump")
        pages = await list_all(server, alice, limit=3)
        assert pages[0][0]["id"] == created[0]
        assert sorted(c["id"] for page in pages for c in page) == sorted(created)
    else:  # equal activity times: newest id first
        assert seen == sorted(created, key=int, reverse=True)
    for params in ({"limit": 0}, {"limit": 101}, {"cursor": "garbage"}):
        r = await server.http.get(API, params=params, headers=alice.headers)
        assert error_code(r) == (422, "invalid_request"), params


async def test_list_pages_by_cursor(server: LiveServer) -> None:
    await paging_check(server, clock_moves=True)


async def test_list_pages_by_cursor_when_activity_times_tie(db_url: str, tmp_path: Path) -> None:
    # A clock that never moves: every conversation has the same activity time, ties go by id.
    frozen = FakeClock(datetime.now(UTC).replace(microsecond=123457))
    async with live_server(make_settings(db_url, tmp_path), clock=frozen) as server:
        await paging_check(server, clock_moves=False)


# --- privacy: non-members learn nothing --------------------------------------------------------


def conversation_routes(conv: str, member: User, outsider: User) -> list[tuple[str, str, Json | None]]:
    base = f"{API}/{conv}"
    return [
        ("GET", base, None),
        ("PATCH", base, {"title": "x"}),
        ("POST", f"{base}/members", {"user_ids": [outsider.id]}),
        ("DELETE", f"{base}/members/{member.id}", None),
        ("DELETE", f"{base}/members/{outsider.id}", None),
        ("PATCH", f"{base}/members/{member.id}", {"role": "admin"}),
        ("GET", f"{base}/messages", None),
        ("GET", f"{base}/messages?after_seq=0&limit=5", None),
        ("POST", f"{base}/messages", {"client_msg_id": "probe", "body": "hi"}),
        ("POST", f"{base}/read", {"seq": 1}),
        ("PATCH", f"{base}/messages/1", {"body": "x"}),
        ("DELETE", f"{base}/messages/1", None),
        ("PUT", f"{base}/messages/1/reactions/👍", None),
        ("DELETE", f"{base}/messages/1/reactions/👍", None),
        ("PUT", f"{base}/mute", {"muted": True}),
    ]


async def call(server: LiveServer, user: User, method: str, path: str, body: Json | None) -> httpx.Response:
    return await server.http.request(method, path, json=body, headers=user.headers)


@pytest.fixture
async def private_group(server: LiveServer) -> AsyncIterator[tuple[str, User, User, User]]:
    """A group (alice, bob) with a message; mallory is a stranger, dave a former member."""
    alice, bob, mallory, dave = await users(server, "alice", "bob", "mallory", "dave")
    conv = (await create_group(server, alice, "secret", bob, dave))["id"]
    await send_rest(server, bob, conv, "m", "secret message")
    r = await server.http.delete(f"{API}/{conv}/members/{dave.id}", headers=alice.headers)
    assert r.status_code == 204
    yield conv, bob, mallory, dave


async def test_non_members_get_the_same_404_as_for_a_nonexistent_conversation(
    server: LiveServer, private_group: tuple[str, User, User, User]
) -> None:
    conv, bob, mallory, dave = private_group
    nonexistent = str(int(conv) + 1)
    for outsider in (mallory, dave):
        real = conversation_routes(conv, bob, outsider)
        fake = conversation_routes(nonexistent, bob, outsider)
        for (method, path, body), (_, fake_path, _) in zip(real, fake, strict=True):
            r = await call(server, outsider, method, path, body)
            f = await call(server, outsider, method, fake_path, body)
            assert r.status_code == 404, (outsider.name, method, path, r.text)
            assert (r.status_code, r.json()) == (f.status_code, f.json()), (method, path)
    # nothing was changed by the attempts
    detail = await get_conversation(server, bob, conv)
    assert (detail["title"], detail["last_seq"], set(roles(detail).values())) == (
        "secret",
        1,
        {"owner", "member"},
    )
    assert len(detail["members"]) == 2


async def test_malformed_conversation_ids_are_not_found(
    server: LiveServer, private_group: tuple[str, User, User, User]
) -> None:
    _, bob, mallory, _ = private_group
    for bad in ("abc", "0", "-1", "1.5", "99999999999999999999", "9223372036854775808", "%20"):
        for method, path, body in conversation_routes(bad, bob, mallory):
            r = await call(server, bob, method, path, body)
            assert error_code(r) == (404, "not_found"), (method, path, r.text)
