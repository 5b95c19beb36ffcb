"""The MediaStore contract, run against every adapter: local files and a real S3 (SeaweedFS).

Signed URLs: the S3 store's are checked by SeaweedFS itself (working before expiry, refused
after it and when tampered with). The local store has none (``signed_url`` is None and the
app serves ``local_path``); its links are the app's own, tested in
tests/integration/test_media.py.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gochat.errors import NotFound, Unavailable
from gochat.media.local import LocalMediaStore
from gochat.media.s3 import S3Credentials, S3Location, S3MediaStore
from gochat.ports import MediaStore
from tests.media_fixtures import SeaweedS3


def s3_store(server: SeaweedS3, endpoint: str | None = None) -> S3MediaStore:
    location = S3Location.parse(server.media_url())
    if endpoint is not None:
        location = S3Location(location.bucket, endpoint, location.region, location.prefix, "path")
    return S3MediaStore(location, S3Credentials(server.access_key, server.secret_key))


@pytest.fixture(params=["local", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MediaStore]:
    found: MediaStore
    if request.param == "local":
        found = LocalMediaStore(tmp_path / "media")
    else:
        found = s3_store(request.getfixturevalue("seaweedfs"))
    yield found
    await found.close()


def new_key() -> str:
    token = secrets.token_urlsafe(24)
    return f"{token[:2]}/{token}"


async def read_all(store: MediaStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in await store.open(key)])


async def test_put_open_delete_round_trip(store: MediaStore) -> None:
    key = new_key()
    assert not await store.exists(key)
    await store.put(key, b"hello media", "text/plain")
    assert await store.exists(key)
    assert await read_all(store, key) == b"hello media"
    await store.delete(key)
    assert not await store.exists(key)
    await store.delete(key)  # idempotent


async def test_put_from_a_file_streams_back_byte_exact(store: MediaStore, tmp_path: Path) -> None:
    data = secrets.token_bytes(1_300_000)  # several read chunks
    source = tmp_path / "upload.bin"
    source.write_bytes(data)
    key = new_key()
    await store.put(key, source, "application/zip")
    assert await read_all(store, key) == data
    await store.delete(key)


async def test_missing_key(store: MediaStore) -> None:
    key = new_key()
    assert not await store.exists(key)
    with pytest.raises(NotFound):
        await store.open(key)


async def test_keys_are_independent(store: MediaStore) -> None:
    first, second = new_key(), new_key() + ".thumb"
    await store.put(first, b"one", "text/plain")
    await store.put(second, b"two", "image/webp")
    await store.delete(first)
    assert await read_all(store, second) == b"two"
    await store.delete(second)


async def test_local_store_serves_files_itself(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path / "media")
    key = new_key()
    await store.put(key, b"bytes", "text/plain")
    assert await store.signed_url(key, 60, content_type="text/plain", disposition="attachment") is None
    path = store.local_path(key)
    assert path.read_bytes() == b"bytes" and path.is_relative_to(tmp_path / "media")
    # written atomically: no temporary file is left beside it
    assert [p.name for p in path.parent.iterdir()] == [path.name]


@pytest.mark.parametrize("key", ["../escape", "/etc/passwd", "a/../../b", "a//b", "", "a\x00b", "a b"])
def test_local_store_refuses_keys_that_are_not_its_own(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError):
        LocalMediaStore(tmp_path).local_path(key)


async def test_s3_signed_url_works_until_it_expires(seaweedfs: SeaweedS3) -> None:
    store = s3_store(seaweedfs)
    key = new_key()
    await store.put(key, b"signed bytes", "application/pdf")
    disposition = "attachment; filename=\"a.pdf\"; filename*=UTF-8''a.pdf"
    url = await store.signed_url(key, 2, content_type="application/pdf", disposition=disposition)
    assert url is not None
    async with httpx.AsyncClient() as http:
        ok = await http.get(url)
        assert ok.status_code == 200 and ok.content == b"signed bytes"
        assert ok.headers["content-type"] == "application/pdf"
        assert ok.headers["content-disposition"] == disposition
        # tampered: another signature, another key under the same signature, a longer expiry
        assert (await http.get(url.replace("X-Amz-Signature=", "X-Amz-Signature=0"))).status_code == 403
        assert (await http.get(url.replace(key, new_key()))).status_code == 403
        assert (await http.get(url.replace("X-Amz-Expires=2", "X-Amz-Expires=3600"))).status_code == 403
        await asyncio.sleep(3)
        expired = await http.get(url)
        assert expired.status_code == 403 and b"expired" in expired.content
    await store.delete(key)
    await store.close()


async def test_s3_unreachable_is_unavailable(seaweedfs: SeaweedS3) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    store = s3_store(seaweedfs, endpoint=closed)
    with pytest.raises(Unavailable):
        await store.put(new_key(), b"x", "text/plain")
    await store.close()


def test_s3_url_parsing() -> None:
    parsed = S3Location.parse("s3://media?endpoint=http://127.0.0.1:8333&region=eu-west-1&prefix=/a/b/")
    assert parsed == S3Location("media", "http://127.0.0.1:8333", "eu-west-1", "a/b/", "path")
    aws = S3Location.parse("s3://bucket/uploads")
    assert (aws.endpoint, aws.prefix, aws.addressing, aws.region) == (None, "uploads/", "auto", "us-east-1")
    with pytest.raises(ValueError):
        S3Location.parse("s3://?endpoint=http://x")
