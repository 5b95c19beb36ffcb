"""Removing media nobody can see any more, from the store and then from the database.

Uploads never attached expire after ``unattached_ttl_s``; media of deleted messages and
replaced avatars were marked deleted when that happened. Marking comes first, in one
statement that re-checks ``attached``, so an upload attached at the last moment is never
removed; bytes go next, and a row only once its bytes are gone (a failed delete is retried
on the next run). Idempotent: several nodes may run it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog

from gochat.domain.media_rules import StoredMedia
from gochat.errors import GoChatError
from gochat.ports import Clock, MediaStore
from gochat.storage.uow import SqlUnitOfWork

log = structlog.get_logger(__name__)
BATCH = 100


async def purge_media(
    uow: Callable[[], SqlUnitOfWork], clock: Clock, store: MediaStore, unattached_ttl_s: int
) -> int:
    """Expire old unattached uploads, then remove every deleted media; returns how many."""
    now = clock.now()
    async with uow() as work:
        await work.media.expire_unattached(now - timedelta(seconds=unattached_ttl_s), now)
        await work.commit()
    removed = 0
    while True:
        async with uow() as work:
            doomed = await work.media.deleted(BATCH)
        gone = [m.id for m in doomed if await _delete_bytes(store, m)]
        if gone:
            async with uow() as work:
                await work.media.remove(gone)
                await work.commit()
        removed += len(gone)
        if len(doomed) < BATCH or len(gone) < len(doomed):
            return removed


async def _delete_bytes(store: MediaStore, record: StoredMedia) -> bool:
    try:
        for key in (record.storage_key, record.thumbnail_key):
            if key is not None:
                await store.delete(key)
    except GoChatError as exc:
        log.warning("media_delete_failed", media_id=record.id, error=repr(exc))
        return False
    return True


class Janitor:
    """Runs ``work`` every ``interval_s`` seconds in one owned task (0: never)."""

    def __init__(self, work: Callable[[], Awaitable[int]], interval_s: float) -> None:
        self._work = work
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._interval_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="media-janitor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                removed = await self._work()
            except Exception as exc:  # task boundary: log, try again next round
                log.warning("media_cleanup_failed", error=repr(exc))
            else:
                if removed:
                    log.info("media_cleaned", removed=removed)
