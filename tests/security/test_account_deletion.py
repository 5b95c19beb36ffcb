"""DELETE /api/v1/users/me, as docs/security.md promises it, on SQLite and MariaDB.

The account can never log in again, every session ends (sockets close 4001), the username is
free for someone else (who inherits nothing), messages stay and are shown as from "Deleted
user", and the user left every group: the other members see ``member.left``.
"""

from __future__ import annotations

import time

from tests.integration.chat_helpers import (
    create_direct,
    create_group,
    get_conversation,
    history,
    send_rest,
    users,
    ws_connect,
)
from tests.security.helpers import API, PASSWORD, add_user_session, auth_frame, ws_close_code
from tests.support import LiveServer


async def test_deleting_my_account(server: LiveServer) -> None:
    http = server.http
    alice, bob, carol = await users(server, "alice", "bob", "carol")
    alice_phone = await add_user_session(server, alice)
    owned = (await create_group(server, alice, "alice's group", bob, carol))["id"]
    joined = (await create_group(server, bob, "bob's group", alice))["id"]
    direct = (await create_direct(server, alice, bob)).json()["id"]
    for conv in (owned, joined, direct):
        await send_rest(server, alice, conv, f"a-{conv}", "written before leaving")
    await send_rest(server, bob, joined, "b1", "bob's message")

    async with (
        ws_connect(server, alice) as alice_ws,
        ws_connect(server, alice_phone) as phone_ws,
        ws_connect(server, bob) as bob_ws,
    ):
        # The password is required, and a wrong one changes nothing.
        r = await http.request(
            "DELETE", f"{API}/users/me", json={"password": "wrong-password"}, headers=alice.headers
        )
        assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_credentials")
        assert (await alice_ws.request({"type": "ping", "id": 1}))["type"] == "pong"

        r = await http.request(
            "DELETE", f"{API}/users/me", json={"password": PASSWORD}, headers=alice.headers
        )
        assert r.status_code == 204, r.text
        started = time.monotonic()
        assert await alice_ws.close_code(timeout=5) == 4001
        assert await phone_ws.close_code(timeout=5) == 4001
        assert time.monotonic() - started < 5
        # Bob sees alice leave both groups.
        left: set[str] = set()
        while len(left) < 2:
            event = await bob_ws.event("member.left")
            assert event["user_id"] == alice.id
            left.add(event["conversation_id"])
        assert left == {owned, joined}

    # Every way back in is closed.
    for token in (alice.token, alice_phone.token):
        r = await http.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"})
        assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_token")
        assert await ws_close_code(server, auth_frame(token)) == 4001
    for refresh in (alice.refresh_token, alice_phone.refresh_token):
        r = await http.post(f"{API}/auth/refresh", json={"refresh_token": refresh})
        assert r.status_code == 401
    unknown = await http.post(f"{API}/auth/login", json={"username": "nobody", "password": PASSWORD})
    for name in ("alice", "ALICE", "deleted-" + str(int(alice.id) % 10**10), f"~deleted~{alice.id}"):
        r = await http.post(f"{API}/auth/login", json={"username": name, "password": PASSWORD})
        assert (r.status_code, r.content) == (401, unknown.content), name  # like a stranger

    # The profile reads "Deleted user"; search no longer finds the name.
    r = await http.get(f"{API}/users/{alice.id}", headers=bob.headers)
    assert r.status_code == 200
    profile = r.json()
    assert profile["display_name"] == "Deleted user" and profile["username"] != "alice"
    assert profile["bio"] == "" and profile["avatar_url"] is None
    found = (await http.get(f"{API}/users", params={"q": "alice"}, headers=bob.headers)).json()["users"]
    assert found == []

    # Messages stay, from the same sender id; the groups no longer list her; ownership moved on.
    for conv in (owned, joined, direct):
        bodies = [(m["sender_id"], m["body"]) for m in await history(server, bob, conv)]
        assert (alice.id, "written before leaving") in bodies
    for conv in (owned, joined):
        members = {m["user_id"]: m["role"] for m in (await get_conversation(server, bob, conv))["members"]}
        assert alice.id not in members
    assert "owner" in {m["role"] for m in (await get_conversation(server, bob, owned))["members"]}

    # The name is free, and its new holder inherits nothing.
    [new_alice] = await users(server, "alice")
    assert new_alice.id != alice.id
    r = await http.get(f"{API}/conversations", headers=new_alice.headers)
    assert r.json()["conversations"] == []
    for conv in (owned, joined, direct):
        r = await http.get(f"{API}/conversations/{conv}/messages", headers=new_alice.headers)
        assert r.status_code == 404
    sessions = (await http.get(f"{API}/sessions", headers=new_alice.headers)).json()["sessions"]
    assert [s["id"] for s in sessions] == [new_alice.session_id]
