"""Media on messages: attaching uploads to a message being sent, and showing them.

Both run inside the caller's unit of work. A media object is attached to at most one
message, by its uploader, once (the unique index on ``message_media.media_id`` makes this a
database fact); deleting the message deletes its media.
"""

from __future__ import annotations

import dataclasses

from gochat.domain.media_rules import ORIGINAL, THUMBNAIL, StoredMedia, check_attachable, check_media_ids
from gochat.domain.models import MediaItem, Message
from gochat.errors import Conflict
from gochat.security.links import LinkSigner
from gochat.storage.chat_repo import DuplicateKey
from gochat.storage.uow import SqlUnitOfWork


def media_view(record: StoredMedia, links: LinkSigner | None) -> MediaItem:
    """The media as clients see it, with links signed per media (the same for every viewer)."""
    url = links.url(record.id, ORIGINAL) if links else None
    thumbnail = links.url(record.id, THUMBNAIL) if links and record.thumbnail_key else None
    return MediaItem(
        record.id,
        record.content_type,
        record.size,
        record.filename,
        record.sha256,
        record.width,
        record.height,
        url,
        thumbnail,
    )


async def attach_media(
    uow: SqlUnitOfWork,
    links: LinkSigner | None,
    sender_id: int,
    conversation_id: int,
    seq: int,
    media_ids: tuple[int, ...],
) -> tuple[MediaItem, ...]:
    """Attach the sender's own, not yet attached uploads to message ``seq``; returns their views."""
    if not media_ids:
        return ()
    check_media_ids(media_ids)
    found = await uow.media.lock(media_ids)
    check_attachable(found, media_ids, sender_id)
    if await uow.media.mark_attached(list(media_ids)) != len(media_ids):
        raise Conflict("a media was attached to another message meanwhile")
    try:
        await uow.media.link(conversation_id, seq, list(media_ids))
    except DuplicateKey as exc:
        raise Conflict("a media was attached to another message meanwhile") from exc
    return tuple(media_view(found[m], links) for m in media_ids)


async def with_media(
    uow: SqlUnitOfWork, links: LinkSigner | None, conversation_id: int, messages: list[Message]
) -> list[Message]:
    """The messages with their media views; one query, and none when no message has media."""
    seqs = [m.seq for m in messages if m.media_count and not m.deleted]
    if not seqs:
        return messages
    found = await uow.media.for_messages(conversation_id, seqs)
    views = {seq: tuple(media_view(r, links) for r in records) for seq, records in found.items()}
    return [dataclasses.replace(m, media=views[m.seq]) if m.seq in views else m for m in messages]
