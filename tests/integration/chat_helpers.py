"""Helpers shared by the integration tests: users over REST and a frame-splitting WebSocket client.

Every wait is bounded (``WAIT`` seconds). Server frames may carry several JSON objects
separated by ``\\n`` (per-tick coalescing); :class:`WsClient` splits them and hands out one
object at a time, keeping the raw frames for tests about framing.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support import LiveServer

WAIT = 5.0
PASSWORD = "password123"
Json = dict[str, Any]
REPLY_TYPES = frozenset({"ack", "error", "pong"})


@dataclass
class User:
    id: str
    name: str
    token: str
    refresh_token: str
    session_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def login(server: LiveServer, name: str) -> User:
    """A new session (a new device) of an existing user."""
    r = await server.http.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    return User(body["user_id"], name, body["access_token"], body["refresh_token"], body["session_id"])


async def register(server: LiveServer, name: str) -> User:
    r = await server.http.post("/api/v1/auth/register", json={"username": name, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return await login(server, name)


async def users(server: LiveServer, *names: str) -> list[User]:
    return [await register(server, name) for name in names]


async def create_group(server: LiveServer, owner: User, title: str, *others: User) -> Json:
    body = {"kind": "group", "title": title, "member_ids": [u.id for u in others]}
    r = await server.http.post("/api/v1/conversations", json=body, headers=owner.headers)
    assert r.status_code == 201, r.text
    result: Json = r.json()
    return result


async def create_direct(server: LiveServer, me: User, other: User) -> httpx.Response:
    body = {"kind": "direct", "member_ids": [other.id]}
    return await server.http.post("/api/v1/conversations", json=body, headers=me.headers)


async def send_rest(server: LiveServer, sender: User, conv_id: str, client_msg_id: str, body: str) -> Json:
    r = await post_message(server, sender, conv_id, {"client_msg_id": client_msg_id, "body": body})
    assert r.status_code == 201, r.text
    result: Json = r.json()
    return result


async def post_message(server: LiveServer, sender: User, conv_id: str, body: Json) -> httpx.Response:
    return await server.http.post(
        f"/api/v1/conversations/{conv_id}/messages", json=body, headers=sender.headers
    )


async def get_conversation(server: LiveServer, user: User, conv_id: str) -> Json:
    r = await server.http.get(f"/api/v1/conversations/{conv_id}", headers=user.headers)
    assert r.status_code == 200, r.text
    result: Json = r.json()
    return result


async def history(server: LiveServer, user: User, conv_id: str, **params: int) -> list[Json]:
    r = await server.http.get(
        f"/api/v1/conversations/{conv_id}/messages", params=params, headers=user.headers
    )
    assert r.status_code == 200, r.text
    messages: list[Json] = r.json()["messages"]
    return messages


class WsClient:
    """One WebSocket: send JSON objects, receive them one at a time (frames split on newlines)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.inbox: deque[Json] = deque()
        self.frames: list[str] = []
        self.ready: Json = {}
        self._ids = itertools.count(1)

    async def send(self, obj: Json) -> None:
        await self.ws.send(orjson.dumps(obj).decode())

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def next(self, timeout: float = WAIT) -> Json:
        while not self.inbox:
            frame = await asyncio.wait_for(self.ws.recv(), timeout)
            assert isinstance(frame, str), "the server sends text frames only"
            self.frames.append(frame)
            self.inbox.extend(orjson.loads(line) for line in frame.split("\n"))
        return self.inbox.popleft()

    async def request(self, obj: Json) -> Json:
        """Send a request and return its reply (same id); other objects stay queued, in order."""
        await self.send(obj)
        return await self.reply_to(obj["id"])

    async def reply_to(self, request_id: object) -> Json:
        return await self.wait_for(lambda o: o.get("type") in REPLY_TYPES and o.get("id") == request_id)

    async def wait_for(self, match: Callable[[Json], bool], timeout: float = WAIT) -> Json:
        """The first object that matches; the ones before it stay queued, in order."""
        skipped: list[Json] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    obj = await self.next(timeout)
                    if match(obj):
                        return obj
                    skipped.append(obj)
        finally:
            self.inbox.extendleft(reversed(skipped))

    async def event(self, event_type: str, timeout: float = WAIT) -> Json:
        return await self.wait_for(lambda o: o.get("type") == event_type, timeout)

    async def drain(self) -> list[Json]:
        """Everything the server sent so far: a ping barrier, then the objects before its pong.

        The server handles one socket's frames in order and flushes what it queued before the
        pong, so anything routed to this socket before the ping is in the result.
        """
        barrier = f"barrier-{next(self._ids)}"
        await self.send({"type": "ping", "id": barrier})
        got: list[Json] = []
        while True:
            obj = await self.next()
            if obj.get("type") == "pong" and obj.get("id") == barrier:
                return got
            got.append(obj)

    async def close_code(self, timeout: float = WAIT) -> int | None:
        """Wait for the server to close; the close code it sent (None if it sent none)."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.ws.recv()
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else None
        raise AssertionError("unreachable")


@asynccontextmanager
async def ws_connect(
    server: LiveServer, user: User | None = None, *, header: bool = False, **kwargs: Any
) -> AsyncIterator[WsClient]:
    """Open /ws; with a user, authenticate (auth frame, or Bearer header) and check ``ready``."""
    headers = dict(kwargs.pop("additional_headers", {}))
    if user is not None and header:
        headers["Authorization"] = f"Bearer {user.token}"
    async with connect(
        server.ws_url, additional_headers=headers or None, open_timeout=WAIT, close_timeout=2, **kwargs
    ) as ws:
        client = WsClient(ws)
        if user is not None:
            if not header:
                await client.send({"type": "auth", "token": user.token})
            client.ready = await client.next()
            assert client.ready["type"] == "ready", client.ready
            assert client.ready["user_id"] == user.id
        yield client


def send_frame(request_id: object, conv_id: str, client_msg_id: str, body: str) -> Json:
    """A ``message.send`` request."""
    return {
        "type": "message.send",
        "id": request_id,
        "conversation_id": conv_id,
        "client_msg_id": client_msg_id,
        "body": body,
    }


def of_type(objects: list[Json], *types: str) -> list[Json]:
    return [o for o in objects if o.get("type") in types]
