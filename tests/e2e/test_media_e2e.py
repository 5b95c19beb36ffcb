"""End-to-end media through a real `gochat serve`, on local storage and on S3 (SeaweedFS).

Alice uploads a photo with GPS data and shares it in a group; Bob downloads the file and its
thumbnail through the signed links, byte for byte what the server stored; Carol, not a
member, gets 404. After Alice deletes the message nobody gets it, and `gochat media-cleanup`
removes the bytes from the store.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.media_fixtures import SeaweedS3, has_gps, jpeg_with_gps
from tests.support import ServeProcess, serve_process

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

API = "/api/v1"
PASSWORD = "correct horse battery"
Json = dict[str, Any]


class Store:
    """What the server put in its media store, read from outside the server."""

    def __init__(self, node: ServeProcess, seaweed: SeaweedS3 | None, prefix: str) -> None:
        self.node, self.seaweed, self.prefix = node, seaweed, prefix

    def objects(self) -> dict[str, bytes]:
        if self.seaweed is None:
            root = self.node.data_dir / "media"
            return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
        client: Any = self.seaweed.client()
        listed = client.list_objects_v2(Bucket=self.seaweed.bucket, Prefix=self.prefix + "/")
        keys = [o["Key"] for o in listed.get("Contents", [])]
        return {k: client.get_object(Bucket=self.seaweed.bucket, Key=k)["Body"].read() for k in keys}


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> tuple[SeaweedS3 | None, dict[str, str]]:
    if request.param == "local":
        return None, {}
    seaweed: SeaweedS3 = request.getfixturevalue("seaweedfs")
    return seaweed, seaweed.env("e2e-" + os.urandom(3).hex())


@pytest.fixture
async def node(
    tmp_path: Path, backend: tuple[SeaweedS3 | None, dict[str, str]]
) -> AsyncIterator[tuple[ServeProcess, Store]]:
    seaweed, env = backend
    with serve_process(tmp_path, GOCHAT_RATE_LIMITS_ENABLED="false", **env) as server:
        prefix = env.get("GOCHAT_MEDIA_URL", "prefix=").split("prefix=")[1]
        yield server, Store(server, seaweed, prefix)


async def account(http: httpx.AsyncClient, name: str) -> dict[str, str]:
    r = await http.post(f"{API}/auth/register", json={"username": name, "password": PASSWORD})
    assert r.status_code == 201, r.text
    r = await http.post(f"{API}/auth/login", json={"username": name, "password": PASSWORD})
    tokens = r.json()
    return {"id": tokens["user_id"], "Authorization": f"Bearer {tokens['access_token']}"}


def auth(user: dict[str, str]) -> dict[str, str]:
    return {"Authorization": user["Authorization"]}


async def share_photo(
    http: httpx.AsyncClient, alice: dict[str, str], bob: dict[str, str]
) -> tuple[str, Json]:
    files = {"file": ("IMG_0001.JPG", jpeg_with_gps((120, 80), orientation=6), "image/jpeg")}
    media = (await http.post(f"{API}/media", files=files, headers=auth(alice))).json()
    group = {"kind": "group", "title": "photos", "member_ids": [bob["id"]]}
    conv = (await http.post(f"{API}/conversations", json=group, headers=auth(alice))).json()["id"]
    sent = {"client_msg_id": "p1", "body": "from the trip", "media_ids": [media["id"]]}
    r = await http.post(f"{API}/conversations/{conv}/messages", json=sent, headers=auth(alice))
    assert r.status_code == 201, r.text
    return conv, media


async def test_share_download_delete_and_clean_up(node: tuple[ServeProcess, Store]) -> None:
    server, store = node
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        alice, bob, carol = [await account(http, n) for n in ("alice", "bob", "carol")]
        conv, media = await share_photo(http, alice, bob)
        messages = (await http.get(f"{API}/conversations/{conv}/messages", headers=auth(bob))).json()[
            "messages"
        ]
        item = messages[0]["media"][0]
        original = await http.get(item["url"], follow_redirects=True)  # no Authorization: a signed link
        thumbnail = await http.get(item["thumbnail_url"], follow_redirects=True)
        stored = store.objects()
        assert sorted(stored.values(), key=len) == sorted([original.content, thumbnail.content], key=len)
        assert hashlib.sha256(original.content).hexdigest() == media["sha256"] == item["sha256"]
        assert not has_gps(original.content)
        with Image.open(io.BytesIO(original.content)) as img:  # re-encoded, orientation applied
            assert (img.format, img.size, img.getexif().get(0x0112)) == ("JPEG", (80, 120), None)
        with Image.open(io.BytesIO(thumbnail.content)) as img:
            assert (img.format, img.size) == ("WEBP", (80, 120))
        by_id = f"{API}/media/{media['id']}"
        for path in (by_id, by_id + "/thumbnail"):
            assert (await http.get(path, headers=auth(carol))).status_code == 404
        assert (await http.get(by_id, headers=auth(bob), follow_redirects=True)).content == original.content

        r = await http.delete(f"{API}/conversations/{conv}/messages/1", headers=auth(alice))
        assert r.status_code == 200
        for user in (bob, alice):
            assert (await http.get(by_id, headers=auth(user))).status_code == 404
        assert (await http.get(item["url"])).status_code == 404
    cleanup = subprocess.run(
        [
            sys.executable,
            "-m",
            "gochat",
            "media-cleanup",
            "--data-dir",
            str(server.data_dir),
            "--older-than",
            "0",
        ],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cleanup.returncode == 0 and "removed 1 media" in cleanup.stdout, cleanup.stderr[-2000:]
    assert store.objects() == {}
