from __future__ import annotations

import orjson
from websockets.asyncio.client import connect

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
        frame = {"type": "message.send", "id": "1", "conversation_id": conv_id, "client_msg_id": "c1", "body": "hi"}
        await ws_a.send(orjson.dumps(frame).decode())
        got_a = [orjson.loads(line) for line in (await ws_a.recv()).splitlines()]
        got_b = [orjson.loads(line) for line in (await ws_b.recv()).splitlines()]
        assert got_a[0]["type"] == "ack" and got_a[0]["message"]["seq"] == 1
        assert got_b[0]["type"] == "message.created"
        assert got_b[0]["message"]["body"] == "hi"
