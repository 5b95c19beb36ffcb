"""Every kind of bad credential, on every way in: REST, the WebSocket auth frame, and the
WebSocket ``Authorization: Bearer`` upgrade header. On SQLite and MariaDB.

REST answers 401 ``invalid_token`` with ``WWW-Authenticate: Bearer`` and writes nothing. A
socket is closed before ``ready``: 4001 when a token string was checked and refused (the
client should refresh), 1008 when no credential arrived at all (a policy violation). The
control case, a token forged with the server's key and the right claims, is accepted, so
every refusal is about the one thing its case changes.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest

from gochat.security.tokens import signing_key
from tests.integration.chat_helpers import User, create_group, history, users, ws_connect
from tests.security.helpers import (
    API,
    TEST_KID,
    auth_frame,
    b64,
    claims_of,
    forge,
    ws_close_code,
)
from tests.support import TEST_SECRET, LiveServer, live_server, make_settings

NO_TOKEN = object()


@pytest.fixture
async def strict(db_url: str, tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with live_server(make_settings(db_url, tmp_path, ws_auth_timeout_s=0.5)) as live:
        yield live


def bad_tokens(alice: User, bob: User) -> dict[str, str]:
    good = alice.token
    claims = claims_of(good)
    header, payload, signature = good.split(".")
    now = int(time.time())
    none_header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": TEST_KID}).encode())
    return {
        "garbage": "garbage",
        "three dots": "a.b.c",
        "huge": "x" * 5000,
        "expired": forge({**claims, "iat": now - 1000, "exp": now - 100}),
        "alg none": jwt.encode(claims, None, algorithm="none", headers={"kid": TEST_KID}),
        "alg none, empty signature": f"{none_header}.{payload}.",
        "wrong key": forge(claims, key=signing_key("another-" + TEST_SECRET)[1]),
        "raw secret as key": forge(claims, key=TEST_SECRET),
        "wrong iss": forge({**claims, "iss": "evil"}),
        "wrong aud": forge({**claims, "aud": "evil"}),
        "wrong typ": forge({**claims, "typ": "refresh"}),
        "no typ": forge({**claims, "typ": None}),
        "refresh token as access": alice.refresh_token,
        "tampered payload": f"{header}.{b64(json.dumps({**claims, 'sub': bob.id}).encode())}.{signature}",
        "other user, my session": forge({**claims, "sub": bob.id}),
        "unknown kid": forge(claims, kid="0123456789abcdef"),
        "no kid": forge(claims, kid=None),
        "unknown session": forge({**claims, "sid": "12345"}),
    }


async def test_token_matrix_on_rest_and_websocket(strict: LiveServer) -> None:
    server = strict
    alice, bob = await users(server, "alice", "bob")
    conv = (await create_group(server, alice, "g", bob))["id"]
    control = forge(claims_of(alice.token))
    assert (
        await server.http.get(f"{API}/users/me", headers={"Authorization": f"Bearer {control}"})
    ).status_code == 200
    async with ws_connect(server, User(alice.id, "alice", control, "", alice.session_id)):
        pass

    cases = bad_tokens(alice, bob)
    # Revoked: a real, unexpired token whose session logged out.
    revoked = (await users(server, "carol"))[0]
    r = await server.http.post(f"{API}/auth/logout", json={"refresh_token": revoked.refresh_token})
    assert r.status_code == 204
    cases["revoked session"] = revoked.token

    failures: list[str] = []
    routes = [
        ("GET", f"{API}/users/me", None),
        ("GET", f"{API}/conversations", None),
        ("GET", f"{API}/conversations/{conv}/messages", None),
        ("POST", f"{API}/conversations/{conv}/messages", {"client_msg_id": "x", "body": "forged"}),
        ("DELETE", f"{API}/users/me", {"password": "password123"}),
    ]
    rest_cases: dict[str, dict[str, str]] = {
        "no header": {},
        "bare scheme": {"Authorization": "Bearer"},
        "basic scheme": {"Authorization": f"Basic {alice.token}"},
        "token without scheme": {"Authorization": alice.token},
        **{name: {"Authorization": f"Bearer {token}"} for name, token in cases.items()},
    }
    for name, headers in rest_cases.items():
        for method, path, body in routes:
            r = await server.http.request(method, path, json=body, headers=headers)
            if r.status_code != 401 or r.json()["error"]["code"] != "invalid_token":
                failures.append(f"REST {name} {method} {path}: {r.status_code} {r.text}")
            elif r.headers.get("www-authenticate") != "Bearer":
                failures.append(f"REST {name}: no WWW-Authenticate")

    for name, token in cases.items():
        by_frame = await ws_close_code(server, auth_frame(token))
        # A token over the frame's 4096-character limit is not an auth frame at all.
        if by_frame != (1008 if name == "huge" else 4001):
            failures.append(f"WS frame {name}: {by_frame}")
        by_header = await ws_close_code(server, headers={"Authorization": f"Bearer {token}"})
        if by_header != 4001:
            failures.append(f"WS header {name}: {by_header}")
    no_credential: dict[str, tuple[str | bytes | None, dict[str, str] | None]] = {
        "nothing": (None, None),
        "ping first": ('{"type":"ping","id":1}', None),
        "empty token": (auth_frame(""), None),
        "null token": (auth_frame(None), None),
        "basic scheme": (None, {"Authorization": f"Basic {alice.token}"}),
        "binary auth frame": (auth_frame(alice.token).encode(), None),
    }
    for name, (first, headers) in no_credential.items():
        code = await ws_close_code(server, first, headers=headers)
        if code != 1008:
            failures.append(f"WS {name}: {code}")
    assert not failures, "\n".join(failures)

    # Nothing got through: no message was written, no account deleted.
    assert await history(server, bob, conv) == []
    assert (await server.http.get(f"{API}/users/me", headers=alice.headers)).status_code == 200


async def test_a_refused_reauth_on_a_live_socket_changes_nothing(server: LiveServer) -> None:
    """Re-authenticating an open socket with someone else's or a bad token is refused."""
    alice, bob = await users(server, "alice", "bob")
    async with ws_connect(server, alice) as ws:
        for token in (bob.token, "garbage", forge({**claims_of(alice.token), "exp": 1})):
            reply = await ws.request({"type": "auth", "id": "re", "token": token})
            assert (reply["type"], reply["code"]) == ("error", "invalid_token"), reply
        assert (await ws.request({"type": "ping", "id": "still"}))["type"] == "pong"
