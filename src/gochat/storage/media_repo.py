"""SQL repository for uploaded media and their attachment to messages."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gochat.domain.media_rules import StoredMedia
from gochat.storage.chat_repo import DuplicateKey
from gochat.storage.rows import aware, from_db_time, to_db_time
from gochat.storage.tables import media, members, message_media, users


def media_from_row(row: Any) -> StoredMedia:
    return StoredMedia(
        id=row.id,
        owner_id=row.owner_id,
        storage_key=row.storage_key,
        thumbnail_key=row.thumbnail_key,
        content_type=row.content_type,
        size=int(row.size),
        sha256=row.sha256,
        width=row.width,
        height=row.height,
        filename=row.filename,
        attached=bool(row.attached),
        created_at=aware(row.created_at),
        deleted_at=from_db_time(row.deleted_at),
    )


class SqlMediaRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, record: StoredMedia) -> None:
        values = {
            "id": record.id,
            "owner_id": record.owner_id,
            "storage_key": record.storage_key,
            "thumbnail_key": record.thumbnail_key,
            "content_type": record.content_type,
            "size": record.size,
            "sha256": record.sha256,
            "width": record.width,
            "height": record.height,
            "filename": record.filename,
            "attached": record.attached,
            "created_at": to_db_time(record.created_at),
            "deleted_at": None,
        }
        await self._conn.execute(media.insert().values(**values))

    async def get(self, media_id: int) -> StoredMedia | None:
        """A live media (not deleted)."""
        query = select(media).where(media.c.id == media_id, media.c.deleted_at.is_(None))
        row = (await self._conn.execute(query)).first()
        return media_from_row(row) if row else None

    async def lock(self, media_ids: Iterable[int]) -> dict[int, StoredMedia]:
        """Rows locked until commit (MySQL; SQLite has one writer at a time anyway)."""
        ids = sorted(set(media_ids))
        if not ids:
            return {}
        query = select(media).where(media.c.id.in_(ids)).order_by(media.c.id).with_for_update()
        return {r.id: media_from_row(r) for r in await self._conn.execute(query)}

    async def mark_attached(self, media_ids: list[int]) -> int:
        """Mark live, unattached media attached; returns how many were (a race shows as fewer)."""
        query = (
            update(media)
            .where(media.c.id.in_(media_ids), media.c.attached.is_(False), media.c.deleted_at.is_(None))
            .values(attached=True)
        )
        return int((await self._conn.execute(query)).rowcount)

    async def link(self, conversation_id: int, seq: int, media_ids: list[int]) -> None:
        rows = [
            {"conversation_id": conversation_id, "seq": seq, "media_id": m, "position": i}
            for i, m in enumerate(media_ids)
        ]
        try:
            await self._conn.execute(message_media.insert(), rows)
        except IntegrityError as exc:  # unique media_id: attached elsewhere meanwhile
            raise DuplicateKey() from exc

    async def for_messages(self, conversation_id: int, seqs: Iterable[int]) -> dict[int, list[StoredMedia]]:
        """The live media of these messages, in the order they were attached."""
        wanted = list(seqs)
        if not wanted:
            return {}
        query = (
            select(media, message_media.c.seq)
            .join(message_media, message_media.c.media_id == media.c.id)
            .where(
                message_media.c.conversation_id == conversation_id,
                message_media.c.seq.in_(wanted),
                media.c.deleted_at.is_(None),
            )
            .order_by(message_media.c.seq, message_media.c.position)
        )
        found: dict[int, list[StoredMedia]] = defaultdict(list)
        for row in await self._conn.execute(query):
            found[row.seq].append(media_from_row(row))
        return found

    async def detach_message(self, conversation_id: int, seq: int, now: datetime) -> None:
        """A deleted message's media stop being served at once; cleanup removes the bytes."""
        attached = select(message_media.c.media_id).where(
            message_media.c.conversation_id == conversation_id, message_media.c.seq == seq
        )
        ids = list((await self._conn.execute(attached)).scalars())
        await self.mark_deleted(ids, now)
        await self._conn.execute(
            delete(message_media).where(
                message_media.c.conversation_id == conversation_id, message_media.c.seq == seq
            )
        )

    async def mark_deleted(self, media_ids: list[int], now: datetime) -> None:
        if media_ids:
            query = (
                update(media)
                .where(media.c.id.in_(media_ids), media.c.deleted_at.is_(None))
                .values(deleted_at=to_db_time(now))
            )
            await self._conn.execute(query)

    async def shared_with(self, media_id: int, user_id: int) -> bool:
        """Attached to a message of a conversation the user is an active member of."""
        query = (
            select(message_media.c.media_id)
            .join(members, members.c.conversation_id == message_media.c.conversation_id)
            .where(
                message_media.c.media_id == media_id,
                members.c.user_id == user_id,
                members.c.left_pos.is_(None),
            )
            .limit(1)
        )
        return (await self._conn.execute(query)).first() is not None

    async def is_avatar(self, media_id: int) -> bool:
        query = select(users.c.id).where(users.c.avatar_media_id == media_id, users.c.deleted_at.is_(None))
        return (await self._conn.execute(query.limit(1))).first() is not None

    async def expire_unattached(self, created_before: datetime, now: datetime) -> int:
        """Mark uploads never attached and older than the cutoff deleted; returns how many."""
        query = (
            update(media)
            .where(
                media.c.attached.is_(False),
                media.c.deleted_at.is_(None),
                media.c.created_at < to_db_time(created_before),
            )
            .values(deleted_at=to_db_time(now))
        )
        return int((await self._conn.execute(query)).rowcount)

    async def deleted(self, limit: int) -> list[StoredMedia]:
        """Media whose bytes are waiting to be removed from the store."""
        query = select(media).where(media.c.deleted_at.is_not(None)).order_by(media.c.deleted_at).limit(limit)
        return [media_from_row(r) for r in await self._conn.execute(query)]

    async def remove(self, media_ids: list[int]) -> None:
        if media_ids:
            await self._conn.execute(delete(media).where(media.c.id.in_(media_ids)))
