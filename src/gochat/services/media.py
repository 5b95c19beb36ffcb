"""Media: uploading, deciding who may download what and how, avatars, cleanup.

Who may see a media object: its uploader; the active members of a conversation where a
message carries it; any signed-in user when it is someone's avatar. Everyone else gets the
same 404 as for an id that never existed. A signed link (``?exp=&sig=``) stands for an
earlier such decision and works until it expires, while the media is live: deleting the
message that carries it (or replacing the avatar) stops it at once, for the uploader too.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gochat import ids
from gochat.domain.media_rules import (
    ORIGINAL,
    THUMBNAIL,
    THUMBNAIL_TYPE,
    MediaPolicy,
    StoredMedia,
    check_avatar,
    content_disposition,
    thumbnail_filename,
)
from gochat.domain.models import MediaItem, User
from gochat.errors import Forbidden, NotFound
from gochat.media.inspect import Inspected, cleaned_path, inspect_upload
from gochat.ports import MediaStore
from gochat.services.context import ServiceContext
from gochat.services.media_attach import media_view
from gochat.services.media_cleanup import Janitor, purge_media
from gochat.storage.uow import SqlUnitOfWork

# Image decoding is CPU- and memory-heavy: at most this many uploads are processed at once.
PROCESSING_SLOTS = 2
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Upload:
    """A spooled upload: the bytes in a temporary file the caller removes afterwards."""

    path: Path
    filename: str | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """How to answer a download: redirect to the store, send a local file, or stream."""

    content_type: str
    disposition: str
    size: int | None
    redirect_url: str | None = None
    path: Path | None = None
    stream: AsyncIterator[bytes] | None = None


class MediaService:
    def __init__(self, ctx: ServiceContext, store: MediaStore, policy: MediaPolicy) -> None:
        self._ctx = ctx
        self.store = store
        self.policy = policy
        self._slots = asyncio.Semaphore(PROCESSING_SLOTS)
        self._janitor = Janitor(self.cleanup, policy.cleanup_interval_s)

    async def start(self) -> None:
        self._janitor.start()

    async def stop(self) -> None:
        await self._janitor.stop()
        await self.store.close()

    async def upload(self, owner_id: int, upload: Upload) -> MediaItem:
        """Vet, clean and store an upload; it stays private to its owner until attached."""
        try:
            limits = (self.policy.max_pixels, self.policy.thumbnail_px)
            async with self._slots:
                found = await _to_completion(
                    asyncio.to_thread(inspect_upload, upload.path, upload.filename, *limits)
                )
            record = await self._save(owner_id, found)
        finally:
            await asyncio.to_thread(cleaned_path(upload.path).unlink, missing_ok=True)
        return media_view(record, self._ctx.links)

    async def _save(self, owner_id: int, found: Inspected) -> StoredMedia:
        key = _new_key()
        record = StoredMedia(
            ids.new_id(), owner_id, key, key + ".thumb" if found.thumbnail else None, found.content_type,
            found.size, found.sha256, found.width, found.height, found.filename, False, self._ctx.clock.now(),
        )  # fmt: skip
        await self.store.put(key, found.path, found.content_type)
        try:
            if record.thumbnail_key is not None and found.thumbnail is not None:
                await self.store.put(record.thumbnail_key, found.thumbnail, THUMBNAIL_TYPE)
            async with self._ctx.uow() as uow:
                await uow.media.add(record)
                await uow.commit()
        except BaseException:
            with contextlib.suppress(Exception):  # best effort; the first failure is what counts
                await asyncio.shield(self._delete_bytes(record))
            raise
        return record

    async def _delete_bytes(self, record: StoredMedia) -> None:
        for key in (record.storage_key, record.thumbnail_key):
            if key is not None:
                await self.store.delete(key)

    async def item(self, viewer_id: int, media_id: int) -> MediaItem:
        """The media with fresh links, for someone allowed to see it."""
        return media_view(await self._visible(viewer_id, media_id), self._ctx.links)

    async def for_user(self, viewer_id: int, media_id: int, variant: str) -> Delivery:
        return await self._deliver(await self._visible(viewer_id, media_id), variant)

    async def for_link(self, media_id: int, variant: str, exp: int, sig: str) -> Delivery:
        """A signed link: checked before the database is asked anything."""
        links = self._ctx.links
        if links is None or not links.verify(media_id, variant, exp, sig):
            raise Forbidden("the link is invalid or has expired")
        async with self._ctx.uow() as uow:
            record = await uow.media.get(media_id)
        if record is None:
            raise NotFound("no such media")
        return await self._deliver(record, variant)

    async def _visible(self, viewer_id: int, media_id: int) -> StoredMedia:
        async with self._ctx.uow() as uow:
            record = await uow.media.get(media_id)
            if record is None or not await _may_see(uow, record, viewer_id):
                raise NotFound("no such media")
        return record

    async def _deliver(self, record: StoredMedia, variant: str) -> Delivery:
        key, content_type, filename = _variant(record, variant)
        disposition = content_disposition(content_type, filename)
        size = record.size if variant == ORIGINAL else None
        path = self.store.local_path(key)
        if path is not None:
            if not await self.store.exists(key):
                raise NotFound("no such media")
            return Delivery(content_type, disposition, size, path=path)
        if not self.policy.proxy:
            url = await self.store.signed_url(
                key, self.policy.url_ttl_s, content_type=content_type, disposition=disposition
            )
            if url is not None:
                return Delivery(content_type, disposition, size, redirect_url=url)
        return Delivery(content_type, disposition, size, stream=await self.store.open(key))

    async def set_avatar(self, user_id: int, media_id: int | None) -> None:
        """Use an image one uploaded as avatar (None: remove it); the previous one is deleted."""
        now = self._ctx.clock.now()
        async with self._ctx.uow() as uow:
            user = await uow.users.get(user_id)
            if user is None:
                raise NotFound("no such user")
            if media_id is not None:
                found = await uow.media.lock([media_id])
                check_avatar(found.get(media_id), user_id, user.avatar_media_id)
                await uow.media.mark_attached([media_id])
            previous = user.avatar_media_id
            if previous is not None and previous != media_id:
                await uow.media.mark_deleted([previous], now)
            await uow.users.update_profile(user_id, {"avatar_media_id": media_id})
            await uow.commit()

    def avatar_url(self, user: User) -> str | None:
        """A signed link to the avatar's thumbnail (any signed-in user may see avatars)."""
        links = self._ctx.links
        if user.avatar_media_id is None or links is None:
            return None
        return links.url(user.avatar_media_id, THUMBNAIL)

    async def cleanup(self, unattached_ttl_s: int | None = None) -> int:
        """Remove expired uploads and deleted media from the store and the database."""
        ttl = self.policy.unattached_ttl_s if unattached_ttl_s is None else unattached_ttl_s
        return await purge_media(self._ctx.uow, self._ctx.clock, self.store, ttl)


async def _may_see(uow: SqlUnitOfWork, record: StoredMedia, viewer_id: int) -> bool:
    if record.owner_id == viewer_id:
        return True
    return await uow.media.shared_with(record.id, viewer_id) or await uow.media.is_avatar(record.id)


def _variant(record: StoredMedia, variant: str) -> tuple[str, str, str]:
    """(key, content type, filename) of the original or of the thumbnail."""
    if variant == ORIGINAL:
        return record.storage_key, record.content_type, record.filename
    if variant == THUMBNAIL and record.thumbnail_key is not None:
        return record.thumbnail_key, THUMBNAIL_TYPE, thumbnail_filename(record.filename)
    raise NotFound("no such media")


async def _to_completion(work: Coroutine[Any, Any, T]) -> T:
    """Await a worker thread; if cancelled meanwhile, still wait for it to finish (its files
    must not appear after the caller has cleaned up) before passing the cancellation on."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await task
        raise


def _new_key() -> str:
    """Random and unguessable (192 bits), sharded by its first two characters."""
    token = secrets.token_urlsafe(24)
    return f"{token[:2]}/{token}"
