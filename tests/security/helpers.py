"""Shared by the adversarial suite: attackers, forged tokens, close codes, raw HTTP helpers.

Builds on the integration helpers (users over REST, the frame-splitting WebSocket client);
every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import jwt
import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gochat.security.tokens import signing_key
from tests.integration.chat_helpers import WAIT, User, WsClient
from tests.support import TEST_SECRET, LiveServer

API = "/api/v1"
PASSWORD = "password123"
TEST_KID, TEST_KEY = signing_key(TEST_SECRET)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_of(token: str) -> dict[str, Any]:
    found: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return found


def forge(claims: dict[str, Any], key: bytes | str = TEST_KEY, kid: str | None = TEST_KID) -> str:
    """An HS256 token made outside the server; None-valued claims are left out."""
    body = {k: v for k, v in claims.items() if v is not None}
    headers = {} if kid is None else {"kid": kid}
    return jwt.encode(body, key, algorithm="HS256", headers=headers)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def auth_frame(token: object) -> str:
    return orjson.dumps({"type": "auth", "token": token}).decode()


async def ws_close_code(
    server: LiveServer | str,
    first: str | bytes | None = None,
    *,
    headers: dict[str, str] | None = None,
    origin: str | None = None,
    timeout: float = WAIT,
) -> int | None:
    """Open /ws, optionally send one frame, and return the code the server closed with.

    Fails if the server answers with ``ready`` instead: a refused socket must never be served.
    """
    url = server if isinstance(server, str) else server.ws_url
    kwargs: dict[str, Any] = {"additional_headers": headers or None}
    if origin is not None:
        kwargs["origin"] = origin
    async with connect(url, open_timeout=WAIT, close_timeout=2, **kwargs) as ws:
        if first is not None:
            with contextlib.suppress(ConnectionClosed):  # it may close before reading
                await ws.send(first)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    frame = await ws.recv()
                    assert '"ready"' not in str(frame), f"a refused socket got {frame!r}"
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else None
    raise AssertionError("unreachable")


@contextlib.asynccontextmanager
async def raw_ws(url: str, **kwargs: Any) -> AsyncIterator[WsClient]:
    """An unauthenticated WebSocket, as a frame-splitting client."""
    async with connect(url, open_timeout=WAIT, close_timeout=2, **kwargs) as ws:
        yield WsClient(ws)


async def add_user_session(server: LiveServer, user: User) -> User:
    """Another device (session) of an existing user."""
    r = await server.http.post(f"{API}/auth/login", json={"username": user.name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    return User(body["user_id"], user.name, body["access_token"], body["refresh_token"], body["session_id"])
