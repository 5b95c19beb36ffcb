"""Reads shared by several services."""

from __future__ import annotations

import dataclasses

from gochat.domain.models import Message
from gochat.storage.uow import SqlUnitOfWork


async def with_reactions(uow: SqlUnitOfWork, conversation_id: int, messages: list[Message]) -> list[Message]:
    """The messages with their reaction summaries attached (one query for the lot)."""
    live = [m.seq for m in messages if not m.deleted]
    summaries = await uow.reactions.for_messages(conversation_id, live)
    if not summaries:
        return messages
    return [dataclasses.replace(m, reactions=summaries.get(m.seq, ())) for m in messages]


async def message_with_reactions(uow: SqlUnitOfWork, message: Message) -> Message:
    return (await with_reactions(uow, message.conversation_id, [message]))[0]
