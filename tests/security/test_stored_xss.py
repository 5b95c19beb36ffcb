"""Stored XSS: hostile markup through every user-controlled text field, on SQLite and MariaDB.

The server's job is to store text as given and hand it back as inert data: byte-for-byte the
same string (after NFC), inside JSON (``application/json``, ``nosniff``, the API's locked-down
CSP), on every path that returns it (REST responses, lists, search, history, WebSocket acks
and events). File names are the exception by design: they are sanitised (docs/media.md), and
that sanitisation is exactly what comes back. Rendering the text safely is the web client's
job (tests/browser/test_xss.py).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from gochat.domain.media_rules import safe_filename
from tests.integration.chat_helpers import users, ws_connect
from tests.media_fixtures import image_bytes
from tests.security.helpers import API
from tests.support import LiveServer

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# At most 64 characters each (the display name limit), no leading/trailing space (names and
# titles are stripped), already NFC.
CORPUS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(document.domain)>",
    "<svg/onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    '"><script>alert(1)</script>',
    "'\"><img src=x onerror=alert(1)>",
    "</script><script>alert(1)</script>",
    "javascript:alert(1)",
    '<a href="javascript:alert(1)">click</a>',
    '<iframe srcdoc="<script>alert(1)</script>">',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<!--<img src=--><img src=x onerror=alert(1)//>",
    "<style>*{background:url(//evil.example/x)}</style>",
    "<meta http-equiv=refresh content=0;url=//evil.example>",
    "<base href=//evil.example/>",
    "data:text/html,<script>alert(1)</script>",
    "{{constructor.constructor('alert(1)')()}}",
    "${alert(1)} #{alert(1)} <%= 7*7 %>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&#60;script&#62;alert(1)&#60;/script&#62;",
    "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e",
    "＜script＞alert(1)＜/script＞",  # noqa: RUF001 - fullwidth look-alikes are the point
    "<scr\u200dipt>alert(1)</scr\u200dipt>",
    "[click](javascript:alert(1)) **bold** @everyone",
    "' OR 1=1 -- <b>",
]
BODY_ONLY = [
    "<script>\nalert(1)\n</script>",
    "\u2028</script>\u2029<script>alert(1)</script>",
    "  <img src=x onerror=alert(1)>  \t",
    '<div style="position:fixed;inset:0" onclick="alert(1)">' * 20,
]


def assert_inert_json(r: httpx.Response) -> Any:
    assert r.is_success, (r.request.url, r.status_code, r.text)
    assert r.headers["content-type"] == "application/json", r.headers
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-security-policy"] == API_CSP
    return r.json()


async def test_hostile_text_comes_back_unchanged_as_json(server: LiveServer) -> None:
    http = server.http
    alice, bob = await users(server, "alice", "bob")
    async with ws_connect(server, bob) as bob_ws:
        # Display name and bio: PATCH answer, my profile, someone else's view, search.
        for text in CORPUS:
            me = assert_inert_json(
                await http.patch(
                    f"{API}/users/me", json={"display_name": text, "bio": text}, headers=alice.headers
                )
            )
            assert (me["display_name"], me["bio"]) == (text, text)
            seen = assert_inert_json(await http.get(f"{API}/users/{alice.id}", headers=bob.headers))
            assert (seen["display_name"], seen["bio"]) == (text, text)
        found = assert_inert_json(await http.get(f"{API}/users", params={"q": "ali"}, headers=bob.headers))
        assert found["users"][0]["display_name"] == CORPUS[-1]

        # Group titles: creation, detail, the member's list, the member's WebSocket event.
        titles = {}
        for text in CORPUS:
            body = {"kind": "group", "title": text, "member_ids": [bob.id]}
            created = assert_inert_json(
                await http.post(f"{API}/conversations", json=body, headers=alice.headers)
            )
            assert created["title"] == text
            titles[created["id"]] = text
            event = await bob_ws.wait_for(
                lambda o, cid=created["id"]: (
                    o.get("type") == "conversation.created" and o["conversation"]["id"] == cid
                )
            )
            assert event["conversation"]["title"] == text
        listed = assert_inert_json(
            await http.get(f"{API}/conversations", params={"limit": 100}, headers=bob.headers)
        )
        assert {c["id"]: c["title"] for c in listed["conversations"]} == titles
        detail = assert_inert_json(
            await http.get(f"{API}/conversations/{next(iter(titles))}", headers=bob.headers)
        )
        assert detail["title"] == CORPUS[0]

        # Message bodies: REST send, WebSocket send (ack and the other member's event),
        # history, edit.
        conv = next(iter(titles))
        bodies = CORPUS + BODY_ONLY
        async with ws_connect(server, alice) as alice_ws:
            for i, text in enumerate(bodies):
                sent = assert_inert_json(
                    await http.post(
                        f"{API}/conversations/{conv}/messages",
                        json={"client_msg_id": f"r{i}", "body": text}, headers=alice.headers,
                    )
                )  # fmt: skip
                assert sent["body"] == text
                frame = {
                    "type": "message.send",
                    "id": i,
                    "conversation_id": conv,
                    "client_msg_id": f"w{i}",
                    "body": text,
                }
                ack = await alice_ws.request(frame)
                assert ack["type"] == "ack" and ack["message"]["body"] == text
                for cmid in (f"r{i}", f"w{i}"):
                    event = await bob_ws.wait_for(
                        lambda o, c=cmid: (
                            o.get("type") == "message.created" and o["message"]["client_msg_id"] == c
                        )
                    )
                    assert event["message"]["body"] == text
        page = assert_inert_json(
            await http.get(f"{API}/conversations/{conv}/messages", params={"limit": 200}, headers=bob.headers)
        )
        assert [m["body"] for m in page["messages"]] == [t for t in bodies for _ in (0, 1)]
        for seq, text in enumerate(CORPUS[:5], start=1):
            edited = assert_inert_json(
                await http.patch(
                    f"{API}/conversations/{conv}/messages/{seq}",
                    json={"body": text[::-1]},
                    headers=alice.headers,
                )
            )
            assert edited["body"] == text[::-1]


async def test_hostile_file_names_come_back_sanitised_and_inert(server: LiveServer) -> None:
    [alice] = await users(server, "alice")
    names = [*CORPUS, "../../etc/passwd<script>.png", 'a";\r\nX-Evil: 1;.png', "\u202egnp.exe", '<>:"|?*.png']
    for raw in names:
        files = {"file": (raw, image_bytes("PNG"), "text/html")}
        item = assert_inert_json(await server.http.post(f"{API}/media", files=files, headers=alice.headers))
        # Browsers and httpx escape these three in multipart file names (HTML5); the server
        # keeps the escapes as text.
        sent = raw.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
        assert item["filename"] == safe_filename(sent, "image/png"), raw
        assert not set(item["filename"]) & set('<>"/\\\r\n\u202e'), item["filename"]
        info = assert_inert_json(
            await server.http.get(f"{API}/media/{item['id']}/info", headers=alice.headers)
        )
        assert info["filename"] == item["filename"]
        download = await server.http.get(f"{API}/media/{item['id']}", headers=alice.headers)
        assert download.status_code == 200
        assert download.headers["content-type"] == "image/png"  # from the bytes, not the client
        assert download.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in download.headers["content-security-policy"]
        disposition = download.headers["content-disposition"]
        assert "\r" not in disposition and "\n" not in disposition
        assert f"filename*=UTF-8''{quote(item['filename'], safe='')}" in disposition
        assert "x-evil" not in download.headers
