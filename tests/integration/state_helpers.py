"""Helpers for the chat-state tests: users and devices over REST, a frame-splitting WebSocket client.

Works against the in-process LiveServer and a `gochat serve` child alike: everything takes an
``httpx.AsyncClient`` bound to the server and its ``ws_url``. Every wait is bounded.
Server frames may carry several JSON objects separated by ``\\n``; :class:`Ws` splits them and
always looks objects up by type (presence and notification events interleave).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

WAIT = 5.0
PASSWORD = "password123"
Json = dict[str, Any]
REPLIES = frozenset({"ack", "error", "pong"})


@dataclass
class Api:
    """One server: its REST client and WebSocket URL."""

    http: httpx.AsyncClient
    ws_url: str


@dataclass
class User:
    id: str
    name: str
    token: str
    session_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def login(api: Api, name: str) -> User:
    """A new session of an existing user: one more device."""
    r = await api.http.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    return User(body["user_id"], name, body["access_token"], body["session_id"])


async def register(api: Api, name: str) -> User:
    r = await api.http.post("/api/v1/auth/register", json={"username": name, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return await login(api, name)


async def group(api: Api, owner: User, title: str, *others: User) -> str:
    body = {"kind": "group", "title": title, "member_ids": [u.id for u in others]}
    r = await api.http.post("/api/v1/conversations", json=body, headers=owner.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def direct(api: Api, me: User, other: User) -> str:
    body = {"kind": "direct", "member_ids": [other.id]}
    r = await api.http.post("/api/v1/conversations", json=body, headers=me.headers)
    assert r.status_code in (200, 201), r.text
    return str(r.json()["id"])


_msg_ids = itertools.count(1)


async def send(api: Api, sender: User, conv_id: str, body: str) -> Json:
    payload = {"client_msg_id": f"m-{next(_msg_ids)}", "body": body}
    r = await api.http.post(f"/api/v1/conversations/{conv_id}/messages", json=payload, headers=sender.headers)
    assert r.status_code == 201, r.text
    result: Json = r.json()
    return result


async def conversation(api: Api, user: User, conv_id: str) -> Json:
    r = await api.http.get(f"/api/v1/conversations/{conv_id}", headers=user.headers)
    assert r.status_code == 200, r.text
    result: Json = r.json()
    return result


async def last_pos(api: Api, user: User, conv_id: str) -> int:
    return int((await conversation(api, user, conv_id))["last_pos"])


async def listed(api: Api, user: User) -> dict[str, Json]:
    """The user's conversation list, by id."""
    r = await api.http.get("/api/v1/conversations", params={"limit": 100}, headers=user.headers)
    assert r.status_code == 200, r.text
    return {c["id"]: c for c in r.json()["conversations"]}


async def history(api: Api, user: User, conv_id: str) -> dict[int, Json]:
    r = await api.http.get(
        f"/api/v1/conversations/{conv_id}/messages",
        params={"after_seq": 0, "limit": 200},
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    return {m["seq"]: m for m in r.json()["messages"]}


async def read_rest(api: Api, user: User, conv_id: str, seq: int) -> httpx.Response:
    return await api.http.post(
        f"/api/v1/conversations/{conv_id}/read", json={"seq": seq}, headers=user.headers
    )


def message_url(conv_id: str, seq: int) -> str:
    return f"/api/v1/conversations/{conv_id}/messages/{seq}"


def reaction_url(conv_id: str, seq: int, emoji: str) -> str:
    return f"{message_url(conv_id, seq)}/reactions/{quote(emoji, safe='')}"


async def notifications(api: Api, user: User) -> Json:
    r = await api.http.get("/api/v1/notifications", headers=user.headers)
    assert r.status_code == 200, r.text
    result: Json = r.json()
    return result


async def presence(api: Api, viewer: User, *users: User) -> dict[str, Json]:
    r = await api.http.get(
        "/api/v1/presence", params={"user_ids": ",".join(u.id for u in users)}, headers=viewer.headers
    )
    assert r.status_code == 200, r.text
    return {p["user_id"]: p for p in r.json()["presence"]}


def error_code(r: httpx.Response) -> str:
    return str(r.json()["error"]["code"])


class Ws:
    """One device's socket: JSON objects out, objects in (frames split on newlines)."""

    def __init__(self, ws: ClientConnection, user: User | None) -> None:
        self.ws = ws
        self.user = user
        self.inbox: deque[Json] = deque()
        self.ready: Json = {}
        self._ids = itertools.count(1)

    def next_id(self) -> str:
        return f"r{next(self._ids)}"

    async def send(self, obj: Json) -> None:
        await self.ws.send(orjson.dumps(obj).decode())

    async def _pull(self, timeout: float) -> None:
        frame = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(frame, str), "the server sends text frames only"
        self.inbox.extend(orjson.loads(line) for line in frame.split("\n"))

    async def wait_for(self, match: Callable[[Json], bool], timeout: float = WAIT) -> Json:
        """The first queued or arriving object that matches; the others stay queued, in order."""
        async with asyncio.timeout(timeout):
            seen = 0
            while True:
                for i, obj in enumerate(list(self.inbox)[seen:], start=seen):
                    if match(obj):
                        del self.inbox[i]
                        return obj
                seen = len(self.inbox)
                await self._pull(timeout)

    async def event(self, kind: str, timeout: float = WAIT, **fields: Any) -> Json:
        """The next object of a type whose fields equal the given ones."""
        return await self.wait_for(
            lambda o: o.get("type") == kind and all(o.get(k) == v for k, v in fields.items()), timeout
        )

    async def request(self, obj: Json) -> Json:
        """Send a request (an id is added) and return its ack or error; other objects stay queued."""
        request_id = self.next_id()
        await self.send({**obj, "id": request_id})
        return await self.wait_for(lambda o: o.get("type") in REPLIES and o.get("id") == request_id)

    async def ok(self, obj: Json) -> Json:
        reply = await self.request(obj)
        assert reply["type"] == "ack", reply
        return reply

    async def drain(self) -> list[Json]:
        """Everything routed to this socket so far (a ping barrier), removed from the queue."""
        barrier = f"barrier-{next(self._ids)}"
        await self.send({"type": "ping", "id": barrier})
        got: list[Json] = []
        async with asyncio.timeout(WAIT):
            while True:
                while self.inbox:
                    obj = self.inbox.popleft()
                    if obj.get("type") == "pong" and obj.get("id") == barrier:
                        return got
                    got.append(obj)
                await self._pull(WAIT)

    async def none_of(self, *kinds: str) -> None:
        """Assert nothing of these types reached this socket (up to now)."""
        got = [o for o in await self.drain() if o.get("type") in kinds]
        assert not got, got

    async def sync(self, cursors: dict[str, int]) -> tuple[Json, list[Json]]:
        """A sync request: its ack, and every object after the ack up to and including the
        `notification` summary (the replay). Presence and typing that interleave are left out."""
        request_id = self.next_id()
        await self.send({"type": "sync", "id": request_id, "cursors": cursors})
        before: list[Json] = []
        after: list[Json] = []
        ack: Json | None = None
        async with asyncio.timeout(WAIT):
            while True:
                while self.inbox:
                    obj = self.inbox.popleft()
                    if ack is None:
                        if obj.get("type") in REPLIES and obj.get("id") == request_id:
                            ack = obj
                            assert ack["type"] == "ack", ack
                        else:
                            before.append(obj)
                    elif obj.get("type") == "notification":
                        self.inbox.extendleft(reversed(before))
                        return ack, [*of_type(after, *EPHEMERAL, keep=False), obj]
                    else:
                        after.append(obj)
                await self._pull(WAIT)


EPHEMERAL = ("presence", "typing")


def of_type(objects: list[Json], *kinds: str, keep: bool = True) -> list[Json]:
    """The objects of these types (keep=False: all the others)."""
    return [o for o in objects if (o.get("type") in kinds) == keep]


@asynccontextmanager
async def ws_open(api: Api, user: User, **kwargs: Any) -> AsyncIterator[Ws]:
    """An authenticated socket for one session of a user (first-frame auth)."""
    kwargs.setdefault("open_timeout", WAIT)
    kwargs.setdefault("close_timeout", 2)
    async with connect(api.ws_url, **kwargs) as ws:
        client = Ws(ws, user)
        await client.send({"type": "auth", "token": user.token})
        client.ready = await client.wait_for(lambda o: True)
        assert client.ready["type"] == "ready", client.ready
        assert client.ready["user_id"] == user.id
        yield client
