from __future__ import annotations

import asyncio

import orjson
from websockets.asyncio.client import ClientConnection, connect

from tests.support import LiveServer


async def register_login(server: LiveServer, name: str) -> dict[str, str]:
    r = await server.http.post("/api/v1/auth/register", json={"username": name, "password": "password123"})
    assert r.status_code == 201, r.text
    r = await server.http.post("/api/v1/auth/login", json={"username": name, "password": "password123"})
    assert r.status_code == 200, r.text
    tokens: dict[str, str] = r.json()
    return tokens


async def test_two_users_chat_over_websocket(server: LiveServer) -> None:
    alice = await register_login(server, "alice")
    bob = await register_login(server, "bob")
    headers = {"Authorization": f"Bearer {alice['access_token']}"}
    r = await server.http.post(
        "/api/v1/conversations", json={"kind": "direct", "member_ids": [bob["user_id"]]}, headers=headers
    )
    assert r.status_code == 201, r.text
    conv_id = r.json()["id"]
    async with connect(server.ws_url) as ws_a, connect(server.ws_url) as ws_b:
        await ws_a.send(orjson.dumps({"type": "auth", "token": alice["access_token"]}).decode())
        await ws_b.send(orjson.dumps({"type": "auth", "token": bob["access_token"]}).decode())
        assert orjson.loads(await ws_a.recv())["type"] == "ready"
        assert orjson.loads(await ws_b.recv())["type"] == "ready"
        frame = {
            "type": "message.send",
            "id": "1",
            "conversation_id": conv_id,
            "client_msg_id": "c1",
            "body": "hi",
        }
        await ws_a.send(orjson.dumps(frame).decode())
        ack = await next_of_type(ws_a, "ack")
        created = await next_of_type(ws_b, "message.created")
        assert ack["id"] == "1" and ack["message"]["seq"] == 1
        assert created["message"]["body"] == "hi" and created["message"]["seq"] == 1


async def next_of_type(ws: ClientConnection, kind: str) -> dict[str, object]:
    """The next server object of a type (frames may carry several, newline-separated)."""
    async with asyncio.timeout(5):
        while True:
            for line in str(await ws.recv()).splitlines():
                obj: dict[str, object] = orjson.loads(line)
                if obj["type"] == kind:
                    return obj
