"""Who may touch a conversation: a matrix GENERATED from the route table and the frame table.

Every ``/api/v1`` route with an object id in its path (``app.routes``) and every
conversation-bound WebSocket frame type (``protocol._PARSERS``) is tried by three attackers
against a group they are not in: a stranger, a former member (removed by the owner, with a
socket that was open while they were a member) and an unauthenticated client. They are
refused, they change nothing, and they learn nothing: the answer for the real conversation
(or message, media, session) is byte-identical to the answer for a random id that does not
exist, so there is no 403-vs-404 existence oracle. Events of the conversation never reach
them. A new route or frame type fails this test until it is given a body/template here.

Also: no timing oracle on usernames at login (medians with the real argon2 parameters),
including the key a deleted account is parked under. Registration must say 409 for a taken
name; that is documented in docs/security.md, rate-limited per address.

On SQLite and MariaDB.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from fastapi.routing import iter_route_contexts

from gochat.domain import protocol
from gochat.ids import new_id
from gochat.security.passwords import PasswordHasher
from tests.integration.chat_helpers import (
    Json,
    User,
    WsClient,
    create_group,
    get_conversation,
    history,
    post_message,
    users,
    ws_connect,
)
from tests.media_fixtures import image_bytes
from tests.security.helpers import API, PASSWORD, raw_ws, ws_close_code
from tests.support import LiveServer, live_server, make_settings

OBJECT_PARAMS = {"conversation_id", "user_id", "seq", "session_id", "media_id", "emoji"}
EMOJI = "👍"

# The body each generated route gets: valid, so that refusals are about authorization and
# not validation. "$me" is the attacker's own id. Every id-bearing route must be listed.
BODIES: dict[tuple[str, str], Json | None] = {
    ("GET", "/api/v1/users/{user_id}"): None,
    ("DELETE", "/api/v1/sessions/{session_id}"): None,
    ("GET", "/api/v1/conversations/{conversation_id}"): None,
    ("PATCH", "/api/v1/conversations/{conversation_id}"): {"title": "pwned"},
    ("POST", "/api/v1/conversations/{conversation_id}/members"): {"user_ids": ["$me"]},
    ("DELETE", "/api/v1/conversations/{conversation_id}/members/{user_id}"): None,
    ("PATCH", "/api/v1/conversations/{conversation_id}/members/{user_id}"): {"role": "admin"},
    ("GET", "/api/v1/conversations/{conversation_id}/messages"): None,
    ("POST", "/api/v1/conversations/{conversation_id}/messages"): {"client_msg_id": "evil", "body": "evil"},
    ("POST", "/api/v1/conversations/{conversation_id}/read"): {"seq": 1},
    ("PATCH", "/api/v1/conversations/{conversation_id}/messages/{seq}"): {"body": "evil"},
    ("DELETE", "/api/v1/conversations/{conversation_id}/messages/{seq}"): None,
    ("PUT", "/api/v1/conversations/{conversation_id}/messages/{seq}/reactions/{emoji}"): None,
    ("DELETE", "/api/v1/conversations/{conversation_id}/messages/{seq}/reactions/{emoji}"): None,
    ("PUT", "/api/v1/conversations/{conversation_id}/mute"): {"muted": True},
    ("GET", "/api/v1/media/{media_id}/info"): None,
    ("GET", "/api/v1/media/{media_id}"): None,
    ("GET", "/api/v1/media/{media_id}/thumbnail"): None,
}
# Public to every signed-in user by design (clients label senders): no oracle to close.
PUBLIC = {("GET", "/api/v1/users/{user_id}")}

# One template per frame type (besides "type" and "id"); "$conv" is the conversation attacked.
TEMPLATES: dict[str, Json] = {
    "auth": {"token": "x"},
    "message.send": {"conversation_id": "$conv", "client_msg_id": "e", "body": "evil"},
    "message.edit": {"conversation_id": "$conv", "seq": 1, "body": "evil"},
    "message.delete": {"conversation_id": "$conv", "seq": 1},
    "reaction.add": {"conversation_id": "$conv", "seq": 1, "emoji": EMOJI},
    "reaction.remove": {"conversation_id": "$conv", "seq": 1, "emoji": EMOJI},
    "typing": {"conversation_id": "$conv"},
    "read": {"conversation_id": "$conv", "seq": 1},
    "sync": {"cursors": {"$conv": 0}},
    "ping": {},
}
FRAMES: dict[str, Json] = {kind: {"type": kind, "id": "f", **fields} for kind, fields in TEMPLATES.items()}


def id_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every /api/v1 route whose path names an object."""
    found: list[tuple[str, str]] = []
    for route in iter_route_contexts(app.routes):
        path, methods = route.path, route.methods or set()
        params = set(re.findall(r"{(\w+)", path or ""))
        if path and path.startswith(API + "/") and params & OBJECT_PARAMS:
            found.extend((m, path) for m in sorted(methods - {"HEAD"}))
    return found


def fill(obj: Any, mapping: dict[str, str]) -> Any:
    raw = orjson.dumps(obj).decode()
    for key, value in mapping.items():
        raw = raw.replace(key, value)
    return orjson.loads(raw)


def conversation_bound(frame_type: str) -> bool:
    command = protocol.parse_frame(orjson.dumps(fill(FRAMES[frame_type], {"$conv": "123"})))
    assert not isinstance(command, protocol.Rejected), (frame_type, command)
    return hasattr(command, "conversation_id") or isinstance(command, protocol.Sync)


class Scene:
    """alice owns group G with bob; bob wrote message 1 (with a reaction and an image)."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server

    async def build(self) -> None:
        s = self.server
        self.alice, self.bob, self.eve, self.mallory = await users(s, "alice", "bob", "eve", "mallory")
        self.conv = (await create_group(s, self.alice, "secret plans", self.bob, self.mallory))["id"]
        files = {"file": ("plan.png", image_bytes("PNG"), "image/png")}
        r = await s.http.post(f"{API}/media", files=files, headers=self.bob.headers)
        assert r.status_code == 201, r.text
        self.media = r.json()["id"]
        body = {"client_msg_id": "m1", "body": "the plan", "media_ids": [self.media]}
        assert (await post_message(s, self.bob, self.conv, body)).status_code == 201
        path = f"{API}/conversations/{self.conv}/messages/1/reactions/{quote(EMOJI)}"
        assert (await s.http.put(path, headers=self.alice.headers)).status_code == 200

    async def remove_mallory(self) -> None:
        path = f"{API}/conversations/{self.conv}/members/{self.mallory.id}"
        assert (await self.server.http.delete(path, headers=self.alice.headers)).status_code == 204

    def ids(self, real: bool, attacker: User | None) -> dict[str, str]:
        return {
            "conversation_id": self.conv if real else str(new_id()),
            "user_id": self.bob.id,
            "seq": "1",
            "emoji": quote(EMOJI),
            "media_id": self.media if real else str(new_id()),
            "session_id": self.bob.session_id if real else str(new_id()),
            "$me": attacker.id if attacker else self.eve.id,
        }

    async def snapshot(self) -> Json:
        """What the attackers must not be able to change, as the owner sees it."""
        s = self.server
        sessions = await s.http.get(f"{API}/sessions", headers=self.bob.headers)
        media = await s.http.get(f"{API}/media/{self.media}/info", headers=self.bob.headers)
        return {
            "conversation": await get_conversation(s, self.alice, self.conv),
            "history": await history(s, self.alice, self.conv),
            "bob sessions": sessions.json(),
            "media": {k: v for k, v in media.json().items() if k not in ("url", "thumbnail_url")},
        }


async def rest_matrix(scene: Scene, attacker: User | None, label: str) -> list[str]:
    http, failures = scene.server.http, []
    routes = id_routes(scene.server.app)
    unlisted = set(routes) - set(BODIES)
    assert not unlisted, f"give these routes a body in BODIES: {sorted(unlisted)}"
    headers = attacker.headers if attacker else {}
    for method, template in routes:
        answers = []
        for real in (True, False):
            ids = scene.ids(real, attacker)
            path = template.format(**{k: v for k, v in ids.items() if not k.startswith("$")})
            body = fill(BODIES[(method, template)], ids)
            answers.append(await http.request(method, path, json=body, headers=headers))
        real_r, fake_r = answers
        if attacker is None:
            if real_r.status_code != 401 or fake_r.status_code != 401:
                failures.append(f"{label} {method} {template}: {real_r.status_code}/{fake_r.status_code}")
        elif (method, template) in PUBLIC:
            continue
        elif real_r.status_code < 400 or (real_r.status_code, real_r.content) != (
            fake_r.status_code,
            fake_r.content,
        ):
            failures.append(
                f"{label} {method} {template}: real {real_r.status_code} {real_r.text} "
                f"vs nonexistent {fake_r.status_code} {fake_r.text}"
            )
    # Presence of people one shares no conversation with: omitted, like ids that do not exist.
    if attacker is not None:
        got = [
            (await http.get(f"{API}/presence", params={"user_ids": uid}, headers=headers)).content
            for uid in (scene.bob.id, str(new_id()))
        ]
        if got[0] != got[1]:
            failures.append(f"{label} presence: {got}")
    return failures


async def frame_matrix(scene: Scene, ws: WsClient, label: str, left_pos: int | None = None) -> list[str]:
    failures = []
    for frame_type in FRAMES:
        if not conversation_bound(frame_type):
            continue
        seen: list[list[Json]] = []
        for conv in (scene.conv, str(new_id())):
            await ws.send(fill(FRAMES[frame_type], {"$conv": conv}))
            seen.append([o for o in await ws.drain() if o.get("type") != "presence"])
        real, fake = seen
        if frame_type == "sync" and left_pos is not None:
            # Documented exception (docs/protocol.md, sync): a former member's sync replays what
            # it saw up to and including its own member.left, and never anything after.
            replay = [o for o in real if o.get("conversation_id") == scene.conv]
            if not replay or replay[-1]["type"] != "member.left" or max(o["pos"] for o in replay) != left_pos:
                failures.append(f"{label} sync replay does not stop at its member.left: {replay}")
            real = [o for o in real if o not in replay]
        # A sync is always acknowledged (its reply lists what to reload); nothing else may be.
        acked = any(o["type"] == "ack" for o in real) and frame_type != "sync"
        if orjson.dumps(real) != orjson.dumps(fake) or acked:
            failures.append(f"{label} {frame_type}: real {real} vs nonexistent {fake}")
    return failures


def assert_no_event_of(objects: list[Json], conv: str, label: str) -> None:
    leaked = [o for o in objects if conv in orjson.dumps(o).decode() and o.get("type") != "member.left"]
    assert not leaked, (label, leaked)


async def test_authorization_matrix(server: LiveServer) -> None:
    scene = Scene(server)
    await scene.build()
    expected_bound = {t for t in protocol._PARSERS if t not in ("auth", "ping")}
    assert set(FRAMES) == set(protocol._PARSERS), "give every frame type a template in FRAMES"
    assert {t for t in FRAMES if conversation_bound(t)} == expected_bound

    async with ws_connect(server, scene.mallory) as mallory_ws:  # open while still a member
        await mallory_ws.drain()
        await scene.remove_mallory()
        left_pos = (await mallory_ws.event("member.left"))["pos"]
        before = await scene.snapshot()
        async with ws_connect(server, scene.eve) as eve_ws:
            failures: list[str] = []
            failures += await rest_matrix(scene, scene.eve, "stranger")
            failures += await rest_matrix(scene, scene.mallory, "former member")
            failures += await rest_matrix(scene, None, "unauthenticated")
            failures += await frame_matrix(scene, eve_ws, "stranger")
            failures += await frame_matrix(scene, mallory_ws, "former member", left_pos)
            assert not failures, "\n".join(failures)
            assert await scene.snapshot() == before  # nothing changed

            # Life goes on in G; none of it reaches the outsiders' sockets.
            async with ws_connect(server, scene.bob) as bob_ws:
                await bob_ws.send({"type": "typing", "conversation_id": scene.conv})
                reply = await bob_ws.request({**FRAMES["message.send"], "conversation_id": scene.conv})
                assert reply["type"] == "ack"
            assert_no_event_of(await eve_ws.drain(), scene.conv, "stranger")
            assert_no_event_of(await mallory_ws.drain(), scene.conv, "former member")

    # Unauthenticated sockets: any frame before auth is a policy violation.
    for frame_type, template in FRAMES.items():
        if frame_type != "auth":
            frame = orjson.dumps(fill(template, {"$conv": scene.conv})).decode()
            assert await ws_close_code(server, frame) == 1008, frame_type
    async with raw_ws(server.ws_url) as anonymous:
        await anonymous.send_raw(orjson.dumps({"type": "sync", "id": 1, "cursors": {scene.conv: 0}}).decode())
        assert await anonymous.close_code() == 1008
        assert anonymous.frames == []


async def timed_login(http: httpx.AsyncClient, name: str, password: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    r = await http.post(f"{API}/auth/login", json={"username": name, "password": password})
    return time.perf_counter() - started, r


async def test_no_username_oracle_at_login(db_url: str, tmp_path: Path) -> None:
    """Unknown name, known name with a wrong password, a deleted account's parking key: the
    same 401 body and, with the real argon2 parameters, about the same time (medians)."""
    async with live_server(make_settings(db_url, tmp_path), hasher=PasswordHasher()) as server:
        http = server.http
        [_, gone] = await users(server, "alice", "gone")
        r = await http.request("DELETE", f"{API}/users/me", json={"password": PASSWORD}, headers=gone.headers)
        assert r.status_code == 204
        kinds: dict[str, Callable[[], tuple[str, str]]] = {
            "unknown user": lambda: ("nobody", PASSWORD),
            "wrong password": lambda: ("alice", "wrong-password"),
            "deleted account": lambda: (f"~deleted~{gone.id}", PASSWORD),
        }
        times: dict[str, list[float]] = {k: [] for k in kinds}
        bodies = set()
        await timed_login(http, "warm-up", PASSWORD)
        for _ in range(7):  # interleaved, so drift in machine load hits every kind alike
            for kind, make in kinds.items():
                elapsed, r = await timed_login(http, *make())
                times[kind].append(elapsed)
                bodies.add((r.status_code, r.content))
        assert bodies == {
            (401, b'{"error":{"code":"invalid_credentials","message":"wrong username or password"}}')
        }
        medians = {k: statistics.median(v) for k, v in times.items()}
        base = medians["wrong password"]
        for kind, median in medians.items():
            assert 0.5 <= median / base <= 2.0, (kind, medians)
        # Registration cannot hide a taken name (the name must be unique): 409, documented.
        r = await http.post(f"{API}/auth/register", json={"username": "ALICE", "password": PASSWORD})
        assert (r.status_code, r.json()["error"]["code"]) == (409, "username_taken")


async def test_a_former_members_sync_shows_nothing_written_after_it_left(server: LiveServer) -> None:
    """The replay a former member may still fetch stops at its member.left, in content too."""
    alice, bob, mallory = await users(server, "alice", "bob", "mallory")
    conv = (await create_group(server, alice, "g", bob, mallory))["id"]
    assert (
        await post_message(server, bob, conv, {"client_msg_id": "m", "body": "before"})
    ).status_code == 201
    r = await server.http.delete(f"{API}/conversations/{conv}/members/{mallory.id}", headers=alice.headers)
    assert r.status_code == 204
    secret = "written after mallory left"
    r = await server.http.patch(
        f"{API}/conversations/{conv}/messages/1", json={"body": secret}, headers=bob.headers
    )
    assert r.status_code == 200, r.text
    r = await server.http.put(
        f"{API}/conversations/{conv}/messages/1/reactions/{quote('🎉')}", headers=alice.headers
    )
    assert r.status_code == 200, r.text
    async with ws_connect(server, mallory) as ws:
        reply = await ws.request({"type": "sync", "id": "s", "cursors": {conv: 0}})
        assert reply["type"] == "ack"
        objects = await ws.drain()
    replay = orjson.dumps(objects).decode()
    assert [o["type"] for o in objects if o.get("conversation_id") == conv][-1] == "member.left"
    assert secret not in replay, replay
    assert "🎉" not in replay, replay
