"""Media through the real app: upload, share in a conversation, download, delete, clean up.

Runs on SQLite and MariaDB with local storage; the S3 paths (307 redirect to a presigned URL,
or proxied) run against the session's SeaweedFS. The hostile corpus goes through HTTP.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from gochat.clock import FakeClock
from tests.integration.chat_helpers import (
    User,
    create_group,
    history,
    login,
    post_message,
    users,
    ws_connect,
)
from tests.media_fixtures import (
    ELF_BINARY,
    HTML_PAGE,
    MINIMAL_PDF,
    SVG_SCRIPT,
    SeaweedS3,
    animated_gif,
    bomb_png,
    has_gps,
    image_bytes,
    jpeg_with_gps,
    polyglot_jpeg,
    truncated_jpeg,
    zip_archive,
)
from tests.support import LiveServer, live_server, make_settings

API = "/api/v1"
Json = dict[str, Any]


async def upload(
    server: LiveServer,
    user: User,
    data: bytes,
    filename: str = "file.bin",
    declared: str = "application/octet-stream",
) -> httpx.Response:
    files = {"file": (filename, data, declared)}
    return await server.http.post(f"{API}/media", files=files, headers=user.headers)


async def uploaded(server: LiveServer, user: User, data: bytes, filename: str = "photo.jpg") -> Json:
    r = await upload(server, user, data, filename)
    assert r.status_code == 201, r.text
    body: Json = r.json()
    return body


async def fetch(server: LiveServer, url: str, user: User | None = None) -> httpx.Response:
    headers = user.headers if user else {}
    return await server.http.get(url, headers=headers, follow_redirects=True)


def assert_inert(r: httpx.Response, inline: bool) -> None:
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in r.headers["content-security-policy"]
    disposition = r.headers["content-disposition"]
    assert disposition.startswith("inline;" if inline else "attachment;"), disposition
    assert "filename*=UTF-8''" in disposition


async def test_share_download_and_delete(server: LiveServer) -> None:
    alice, bob, carol = await users(server, "alice", "bob", "carol")
    media = await uploaded(server, alice, jpeg_with_gps((64, 48), orientation=6), "Holiday.JPG")
    assert (media["content_type"], media["filename"]) == ("image/jpeg", "Holiday.jpg")
    assert (media["width"], media["height"]) == (48, 64)  # orientation applied: rotated
    original = await fetch(server, media["url"])  # signed link: no Authorization header
    assert original.status_code == 200 and original.headers["content-type"] == "image/jpeg"
    assert (
        hashlib.sha256(original.content).hexdigest() == media["sha256"]
        and len(original.content) == media["size"]
    )
    assert not has_gps(original.content)
    assert_inert(original, inline=True)
    own = f"{API}/media/{media['id']}"
    assert (await fetch(server, own, bob)).status_code == 404  # not shared yet

    conv = (await create_group(server, alice, "trip", bob))["id"]
    async with ws_connect(server, bob) as ws:
        await ws.drain()
        r = await post_message(server, alice, conv, {"client_msg_id": "m1", "media_ids": [media["id"]]})
        assert r.status_code == 201, r.text
        sent = r.json()
        assert sent["body"] == "" and [m["id"] for m in sent["media"]] == [media["id"]]
        created = await ws.event("message.created")
        assert created["message"]["media"] == sent["media"]
    async with ws_connect(server, bob) as ws:  # a reconnecting device replays it, media included
        await ws.drain()
        await ws.send({"type": "sync", "id": "s1", "cursors": {conv: 0}})
        replayed = await ws.wait_for(lambda o: o.get("type") == "message.created")
        assert [m["id"] for m in replayed["message"]["media"]] == [media["id"]]
    seen = (await history(server, bob, conv))[0]["media"][0]
    assert {k: seen[k] for k in ("id", "sha256", "width", "height")} == {
        k: media[k] for k in ("id", "sha256", "width", "height")
    }
    assert (await fetch(server, own, bob)).content == original.content
    thumb = await fetch(server, seen["thumbnail_url"])
    assert thumb.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(thumb.content)) as img:
        assert img.format == "WEBP" and img.size == (48, 64)
    unknown = await fetch(server, f"{API}/media/123456789", carol)
    refused = await fetch(server, own, carol)
    assert (refused.status_code, refused.json()) == (404, unknown.json())

    r = await server.http.delete(f"{API}/conversations/{conv}/messages/1", headers=alice.headers)
    assert r.status_code == 200 and r.json()["media"] == []
    for user in (bob, alice):
        assert (await fetch(server, own, user)).status_code == 404
    assert (await fetch(server, seen["url"])).status_code == 404


async def test_attachment_rules(server: LiveServer) -> None:
    alice, bob = await users(server, "alice", "bob")
    conv = (await create_group(server, alice, "g", bob))["id"]
    mine = await uploaded(server, alice, image_bytes("PNG"), "a.png")
    theirs = await uploaded(server, bob, image_bytes("PNG"), "b.png")

    async def send(client_msg_id: str, media_ids: list[str], body: str | None = None) -> httpx.Response:
        return await post_message(
            server, alice, conv, {"client_msg_id": client_msg_id, "body": body, "media_ids": media_ids}
        )

    for ids in ([theirs["id"]], ["999999999"], [mine["id"], mine["id"]], [mine["id"]] * 11):
        r = await send("bad", ids)
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_request"), (ids, r.text)
    first = await send("c1", [mine["id"]], "look")
    assert first.status_code == 201 and first.json()["body"] == "look"
    retry = await send("c1", [mine["id"]], "look")  # same client_msg_id: the first message, media included
    assert retry.status_code == 200 and retry.json()["media"] == first.json()["media"]
    again = await send("c2", [mine["id"]])  # one message per media
    assert again.status_code == 422 and "already attached" in again.json()["error"]["message"]
    empty = await post_message(server, alice, conv, {"client_msg_id": "c3", "body": " "})
    assert empty.status_code == 422  # no media: a body is still required
    other = await uploaded(server, alice, b"over the socket\n", "n.txt")
    async with ws_connect(server, alice) as ws:
        await ws.drain()
        frame = {"type": "message.send", "id": "w1", "conversation_id": conv, "client_msg_id": "w1"}
        ack = await ws.request({**frame, "media_ids": [other["id"]]})
        assert ack["type"] == "ack" and ack["message"]["media"][0]["filename"] == "n.txt"
        refused = await ws.request({**frame, "id": "w2", "client_msg_id": "w2", "media_ids": [theirs["id"]]})
        assert (refused["type"], refused["code"]) == ("error", "invalid_request")


HOSTILE: list[tuple[str, bytes, str, int, str | None]] = [
    # (filename, bytes, declared type, status, stored type or error code)
    ("page.html", HTML_PAGE, "text/html", 415, "unsupported_media_type"),
    ("cat.png", HTML_PAGE, "image/png", 415, "unsupported_media_type"),
    ("logo.svg", SVG_SCRIPT, "image/svg+xml", 415, "unsupported_media_type"),
    ("run.exe", ELF_BINARY, "application/octet-stream", 415, "unsupported_media_type"),
    ("bomb.png", bomb_png(10_000, 10_000), "image/png", 413, "too_large"),
    ("huge.png", bomb_png(30_000, 30_000), "image/png", 413, "too_large"),
    ("empty.txt", b"", "text/plain", 422, "invalid_request"),
    ("cut.jpg", truncated_jpeg(), "image/jpeg", 422, "invalid_request"),
    ("report.pdf", image_bytes("PNG"), "application/pdf", 201, "image/png"),
    ("poly.jpg", polyglot_jpeg(), "text/html", 201, "image/jpeg"),
    ("../../../etc/passwd", b"root:x:0:0\n", "text/plain", 201, "text/plain"),
    ("..\\..\\win\\evil\x1b[31m\u202egpj.exe", b"plain words\n", "text/plain", 201, "text/plain"),
    ("doc.pdf", MINIMAL_PDF, "application/pdf", 201, "application/pdf"),
    ("a.zip", zip_archive(), "application/zip", 201, "application/zip"),
    ("anim.gif", animated_gif(), "image/gif", 201, "image/gif"),
]
SAFE_NAMES = {
    "report.pdf": "report.png",
    "../../../etc/passwd": "passwd.txt",
    "..\\..\\win\\evil\x1b[31m\u202egpj.exe": "evil[31mgpj.txt",  # no path, ESC or bidi override
}


@pytest.fixture
async def sqlite_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'gochat.db'}", tmp_path, media_max_bytes=200_000
    )
    async with live_server(settings) as live:
        yield live


async def test_hostile_corpus_is_refused_or_served_inert(sqlite_server: LiveServer) -> None:
    (alice,) = await users(sqlite_server, "alice")
    for filename, data, declared, status, outcome in HOSTILE:
        r = await upload(sqlite_server, alice, data, filename, declared)
        assert r.status_code == status, (filename, r.text)
        if status != 201:
            assert r.json()["error"]["code"] == outcome, (filename, r.text)
            continue
        media = r.json()
        assert media["content_type"] == outcome, filename
        name = media["filename"]
        assert "/" not in name and "\\" not in name and name.isprintable() and "\u202e" not in name, name
        assert SAFE_NAMES.get(filename, name) == name
        served = await fetch(sqlite_server, media["url"])
        assert served.status_code == 200 and served.content != b""
        assert_inert(served, inline=outcome.startswith("image/"))
        assert b"<script" not in served.content, filename  # the polyglot was re-encoded


async def test_exif_and_gps_are_stripped_from_every_still_format(sqlite_server: LiveServer) -> None:
    (alice,) = await users(sqlite_server, "alice")
    for fmt, name in (("JPEG", "a.jpg"), ("PNG", "a.png"), ("WEBP", "a.webp")):
        data = image_bytes(fmt, with_gps=True)
        assert has_gps(data)
        media = await uploaded(sqlite_server, alice, data, name)
        served = await fetch(sqlite_server, media["url"])
        assert not has_gps(served.content), fmt
    gif = animated_gif()
    media = await uploaded(sqlite_server, alice, gif, "a.gif")
    assert (await fetch(sqlite_server, media["url"])).content == gif  # animated GIFs kept as is


async def test_size_limits(sqlite_server: LiveServer) -> None:
    (alice,) = await users(sqlite_server, "alice")
    declared = await upload(sqlite_server, alice, b"x" * 400_000, "big.txt", "text/plain")
    assert (declared.status_code, declared.json()["error"]["code"]) == (413, "too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: refused while streaming
        boundary = b"--b0undary\r\n"
        yield boundary + b'Content-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n'
        for _ in range(40):
            yield b"y" * 10_000

    headers = {**alice.headers, "Content-Type": "multipart/form-data; boundary=b0undary"}
    streamed = await sqlite_server.http.post(f"{API}/media", content=chunks(), headers=headers)
    assert (streamed.status_code, streamed.json()["error"]["code"]) == (413, "too_large")
    for body, content_type in ((b"plain", "text/plain"), (b"--x\r\n", "multipart/form-data; boundary=x")):
        r = await sqlite_server.http.post(
            f"{API}/media", content=body, headers={**alice.headers, "Content-Type": content_type}
        )
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_request"), r.text
    no_field = await sqlite_server.http.post(
        f"{API}/media", files={"other": ("a.txt", b"x")}, headers=alice.headers
    )
    assert no_field.status_code == 422
    anonymous = await sqlite_server.http.post(f"{API}/media", files={"file": ("a.txt", b"x")})
    assert anonymous.status_code == 401


async def test_signed_links_expire_and_resist_tampering(tmp_path: Path) -> None:
    clock = FakeClock()
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'gochat.db'}", tmp_path, media_link_ttl_s=600)
    async with live_server(settings, clock=clock) as server:
        (alice,) = await users(server, "alice")
        media = await uploaded(server, alice, image_bytes("PNG"), "a.png")
        url, thumb = media["url"], media["thumbnail_url"]
        assert (await fetch(server, url)).status_code == 200
        signature = url.split("sig=")[1]
        for forged in (
            url.replace("sig=", "sig=A"),
            url.replace(signature, signature[::-1]),
            thumb.split("?")[0] + "?" + url.split("?")[1],  # the original's signature on the thumbnail
            url.replace("exp=", "exp=9"),
        ):
            r = await fetch(server, forged)
            assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden"), forged
        clock.advance(601)
        assert (await fetch(server, url)).status_code == 403
        fresh = (await server.http.get(f"{API}/media/{media['id']}/info", headers=alice.headers)).json()
        assert fresh["url"] != url and (await fetch(server, fresh["url"])).status_code == 200


async def test_avatars(server: LiveServer) -> None:
    alice, bob = await users(server, "alice", "bob")
    first = await uploaded(server, alice, image_bytes("PNG", (500, 250)), "me.png")
    doc = await uploaded(server, alice, MINIMAL_PDF, "cv.pdf")
    theirs = await uploaded(server, bob, image_bytes("PNG"), "bob.png")
    for media_id in (doc["id"], theirs["id"], "nope"):
        r = await server.http.patch(
            f"{API}/users/me", json={"avatar_media_id": media_id}, headers=alice.headers
        )
        assert r.status_code == 422, r.text
    r = await server.http.patch(
        f"{API}/users/me", json={"avatar_media_id": first["id"]}, headers=alice.headers
    )
    assert r.status_code == 200 and r.json()["avatar_url"]
    seen = (await server.http.get(f"{API}/users/{alice.id}", headers=bob.headers)).json()["avatar_url"]
    avatar = await fetch(server, seen)
    with Image.open(io.BytesIO(avatar.content)) as img:
        assert img.size == (320, 160)
    assert (await fetch(server, f"{API}/media/{first['id']}", bob)).status_code == 200  # avatars are public
    second = await uploaded(server, alice, image_bytes("JPEG"), "new.jpg")
    await server.http.patch(f"{API}/users/me", json={"avatar_media_id": second["id"]}, headers=alice.headers)
    assert (await fetch(server, seen)).status_code == 404  # the replaced avatar is deleted
    r = await server.http.patch(f"{API}/users/me", json={"avatar_media_id": None}, headers=alice.headers)
    assert r.json()["avatar_url"] is None


async def test_cleanup_removes_expired_uploads_and_deleted_media(tmp_path: Path) -> None:
    clock = FakeClock()
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'gochat.db'}", tmp_path)
    async with live_server(settings, clock=clock) as server:
        alice, bob = await users(server, "alice", "bob")
        conv = (await create_group(server, alice, "g", bob))["id"]
        stale = await uploaded(server, alice, b"never sent\n", "a.txt")
        kept = await uploaded(server, alice, b"sent\n", "b.txt")
        gone = await uploaded(server, alice, b"sent then deleted\n", "c.txt")
        for n, media in enumerate((kept, gone), start=1):
            r = await post_message(
                server, alice, conv, {"client_msg_id": f"m{n}", "media_ids": [media["id"]]}
            )
            assert r.status_code == 201
        await server.http.delete(f"{API}/conversations/{conv}/messages/2", headers=alice.headers)
        media_dir = tmp_path / "data" / "media"
        assert len([p for p in media_dir.rglob("*") if p.is_file()]) == 3
        clock.advance(86_400 - 10)
        service = server.app.state.services.media
        assert await service.cleanup() == 1  # the deleted message's media only
        clock.advance(20)
        assert await service.cleanup() == 1  # the upload never attached, now expired
        assert await service.cleanup() == 0
        assert len([p for p in media_dir.rglob("*") if p.is_file()]) == 1
        alice, bob = await login(server, "alice"), await login(server, "bob")  # a day later
        assert (await fetch(server, f"{API}/media/{stale['id']}", alice)).status_code == 404
        assert (await fetch(server, f"{API}/media/{kept['id']}", bob)).content == b"sent\n"


@pytest.mark.parametrize("proxy", [False, True])
async def test_s3_storage_redirects_or_proxies(seaweedfs: SeaweedS3, tmp_path: Path, proxy: bool) -> None:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'gochat.db'}",
        tmp_path,
        media_url=seaweedfs.media_url(),
        aws_access_key_id=seaweedfs.access_key,
        aws_secret_access_key=seaweedfs.secret_key,
        media_proxy=proxy,
    )
    async with live_server(settings) as server:
        (alice,) = await users(server, "alice")
        media = await uploaded(server, alice, MINIMAL_PDF, "doc.pdf")
        direct = await server.http.get(media["url"])
        if proxy:
            assert direct.status_code == 200 and direct.content == MINIMAL_PDF
            assert_inert(direct, inline=False)
        else:
            assert direct.status_code == 307 and direct.headers["location"].startswith(seaweedfs.endpoint)
            assert "X-Amz-Expires=300" in direct.headers["location"]
            async with httpx.AsyncClient() as outside:
                stored = await outside.get(direct.headers["location"])
            assert stored.content == MINIMAL_PDF
            assert stored.headers["content-disposition"].startswith("attachment;")
