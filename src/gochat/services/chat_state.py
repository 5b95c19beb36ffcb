"""Edits, deletes, reactions, mute and the notification summary."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from gochat.domain.chat_rules import MAX_REACTION_KINDS, clean_emoji, edit_allowed
from gochat.domain.models import Badge, ConversationKind, Event, EventKind, Message, NotificationSummary, Role
from gochat.domain.permissions import can_delete_message
from gochat.domain.protocol import encode_event, encode_frame
from gochat.domain.validation import clean_body, field_error
from gochat.domain.wire import event_json
from gochat.errors import Forbidden, NotFound
from gochat.services.context import ServiceContext
from gochat.services.conversations import ConversationService
from gochat.services.loading import message_with_reactions
from gochat.storage.uow import SqlUnitOfWork


class ChatStateService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    async def edit(self, user_id: int, conversation_id: int, seq: int, body: str) -> Message:
        text = clean_body(body, self._ctx.limits.message_max_chars)
        now = self._ctx.clock.now()
        async with self._ctx.uow() as uow:
            await ConversationService.load_active(uow, user_id, conversation_id)
            message = await _message(uow, conversation_id, seq)
            if message.deleted:
                raise NotFound("the message was deleted")
            refusal = edit_allowed(message, user_id, now, self._ctx.limits.message_edit_window_s)
            if refusal:
                raise Forbidden(refusal)
            await uow.messages.update_body(message.id, text, now)
            event = await _log(uow, conversation_id, EventKind.MESSAGE_UPDATED, seq, user_id, now)
            edited = dataclasses.replace(message, body=text, edited_at=now)
            edited = await message_with_reactions(uow, edited, self._ctx.links)
            await uow.commit()
        await self._publish(event, edited)
        return edited

    async def delete(self, user_id: int, conversation_id: int, seq: int) -> Message:
        """Tombstone a message: it keeps its seq; body, mentions and reactions go."""
        now = self._ctx.clock.now()
        async with self._ctx.uow() as uow:
            conv, mine = await ConversationService.load_active(uow, user_id, conversation_id)
            message = await _message(uow, conversation_id, seq)
            if not await _may_delete(uow, conv.kind, mine.role, user_id, message):
                raise Forbidden("only the sender, or a group owner or admin above them, deletes a message")
            if message.deleted:
                return message
            await uow.messages.tombstone(message.id, now)
            await uow.reactions.clear(conversation_id, seq)
            await uow.mentions.clear(conversation_id, seq)
            if message.media_count:  # its media stop being served at once, for everyone
                await uow.media.detach_message(conversation_id, seq, now)
            event = await _log(uow, conversation_id, EventKind.MESSAGE_DELETED, seq, user_id, now)
            await uow.commit()
        tombstone = dataclasses.replace(message, body=None, deleted_at=now, mention_ids=(), reactions=())
        await self._publish(event, tombstone)
        return tombstone

    async def react(self, user_id: int, conversation_id: int, seq: int, emoji: str, *, add: bool) -> Message:
        """Add or remove one emoji; returns the message with its reactions as they now are."""
        emoji = clean_emoji(emoji)
        now = self._ctx.clock.now()
        async with self._ctx.uow() as uow:
            await ConversationService.load_active(uow, user_id, conversation_id)
            message = await _message(uow, conversation_id, seq)
            if message.deleted:
                raise NotFound("the message was deleted")
            changed = await self._apply_reaction(uow, message, user_id, emoji, add, now)
            event = (
                await _log(uow, conversation_id, EventKind.REACTION_CHANGED, seq, user_id, now)
                if changed
                else None
            )
            current = await message_with_reactions(uow, message)
            await uow.commit()
        if event is not None:
            await self._publish(event, current)
        return current

    async def _apply_reaction(
        self, uow: SqlUnitOfWork, message: Message, user_id: int, emoji: str, add: bool, now: datetime
    ) -> bool:
        conv_id, seq = message.conversation_id, message.seq
        if not add:
            return await uow.reactions.remove(conv_id, seq, user_id, emoji)
        # Take the conversation's row lock first (a +0 advance), as every writer of it does:
        # otherwise concurrent adds each see 19 kinds and the message ends up with more than 20.
        await uow.conversations.advance(conv_id, 0, 0, now)
        kinds = await uow.reactions.distinct_emojis(conv_id, seq)
        if emoji not in kinds and len(kinds) >= MAX_REACTION_KINDS:
            raise field_error("emoji", f"at most {MAX_REACTION_KINDS} different reactions per message")
        return await uow.reactions.add(conv_id, seq, user_id, emoji, now)

    async def _publish(self, event: Event, message: Message) -> None:
        frame = encode_frame(event_json(event, message=message))
        await self._ctx.publisher.to_conversation(event.conversation_id, frame)

    async def set_muted(self, user_id: int, conversation_id: int, muted: bool) -> None:
        async with self._ctx.uow() as uow:
            await ConversationService.load_active(uow, user_id, conversation_id)
            await uow.members.set_muted(conversation_id, user_id, muted)
            await uow.commit()
        frame = encode_event("conversation.muted", conversation_id=str(conversation_id), muted=muted)
        await self._ctx.publisher.to_user(user_id, frame)

    async def summary(self, user_id: int) -> NotificationSummary:
        """Badges for every conversation: unread and mention counts; muted ones don't add up."""
        async with self._ctx.uow() as uow:
            muted = await uow.members.muted_flags(user_id)
            ids = list(muted)
            unread = await uow.messages.unread_counts(user_id, ids)
            mentioned = await uow.mentions.unread_counts(user_id, ids)
        badges = [Badge(c, unread[c], mentioned[c], muted[c]) for c in ids]
        total = sum(b.unread_count for b in badges if not b.muted)
        return NotificationSummary(total, sum(b.mention_count for b in badges), badges)


async def _may_delete(
    uow: SqlUnitOfWork, kind: ConversationKind, actor_role: Role, actor_id: int, message: Message
) -> bool:
    """Senders delete their own; in groups owners and admins delete those ranked below them."""
    if message.sender_id == actor_id:
        return True
    if kind is not ConversationKind.GROUP:
        return False
    sender = await uow.members.get(message.conversation_id, message.sender_id)
    sender_role = sender.role if sender is not None and sender.active else Role.MEMBER
    return can_delete_message(actor_id, actor_role, message.sender_id, sender_role)


async def _message(uow: SqlUnitOfWork, conversation_id: int, seq: int) -> Message:
    message = await uow.messages.by_seq(conversation_id, seq)
    if message is None:
        raise NotFound("no such message")
    return message


async def _log(
    uow: SqlUnitOfWork, conversation_id: int, kind: EventKind, seq: int, user_id: int, now: datetime
) -> Event:
    _, pos = await uow.conversations.advance(conversation_id, 0, 1, now)
    event = Event(conversation_id, pos, kind, seq, user_id, now)
    await uow.events.add(event)
    return event
