"""MediaStore on the local filesystem (``file:///dir``): the embedded default.

Files are written to a temporary name, flushed to disk and renamed into place, so a reader
never sees half an object. Blocking file calls run in worker threads. The store cannot sign
URLs of its own: the app serves the files (``local_path``) behind its own signed links.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from gochat.errors import NotFound, Unavailable

CHUNK = 262_144
_KEY = re.compile(r"^[A-Za-z0-9_-]+(?:[./][A-Za-z0-9_-]+)*$")


class LocalMediaStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def local_path(self, key: str) -> Path:
        if not _KEY.fullmatch(key) or len(key) > 256:
            raise ValueError(f"not a media key: {key!r}")
        return self.root / key

    async def put(self, key: str, source: Path | bytes, content_type: str) -> None:
        target = self.local_path(key)
        try:
            await asyncio.to_thread(_write_atomically, target, source)
        except OSError as exc:
            raise Unavailable("media storage is unavailable") from exc

    async def open(self, key: str) -> AsyncIterator[bytes]:
        path = self.local_path(key)
        try:
            handle: BinaryIO = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError as exc:
            raise NotFound("no such media") from exc
        return _chunks(handle)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.local_path(key).unlink, missing_ok=True)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.local_path(key).is_file)

    async def signed_url(
        self, key: str, expires_in_s: int, *, content_type: str, disposition: str
    ) -> str | None:
        return None

    async def close(self) -> None:
        return None


def _write_atomically(target: Path, source: Path | bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        if isinstance(source, bytes):
            temporary.write_bytes(source)
        else:
            shutil.copyfile(source, temporary)
        with temporary.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


async def _chunks(handle: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(handle.read, CHUNK):
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)
