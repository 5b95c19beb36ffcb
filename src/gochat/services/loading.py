"""Reads shared by several services."""

from __future__ import annotations

import dataclasses

from gochat.domain.models import Message
from gochat.security.links import LinkSigner
from gochat.services.media_attach import with_media
from gochat.storage.uow import SqlUnitOfWork


async def with_reactions(
    uow: SqlUnitOfWork, conversation_id: int, messages: list[Message], links: LinkSigner | None = None
) -> list[Message]:
    """The messages with their reaction summaries (one query for the lot) and their media
    (one more, only when some message carries media)."""
    messages = await with_media(uow, links, conversation_id, messages)
    live = [m.seq for m in messages if not m.deleted]
    summaries = await uow.reactions.for_messages(conversation_id, live)
    if not summaries:
        return messages
    return [dataclasses.replace(m, reactions=summaries.get(m.seq, ())) for m in messages]


async def message_with_reactions(
    uow: SqlUnitOfWork, message: Message, links: LinkSigner | None = None
) -> Message:
    return (await with_reactions(uow, message.conversation_id, [message], links))[0]
