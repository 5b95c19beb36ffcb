"""Sending, reading history and marking read: the only code that writes messages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from gochat import ids
from gochat.domain.chat_rules import MAX_MENTIONS, mentioned_keys
from gochat.domain.media_rules import check_media_ids
from gochat.domain.models import ConversationKind, Event, EventKind, Message
from gochat.domain.protocol import encode_frame
from gochat.domain.validation import clean_body, clean_client_msg_id, field_error
from gochat.domain.wire import event_json, read_json
from gochat.errors import Conflict, InvalidRequest
from gochat.ports import TypingThrottle
from gochat.services.context import ServiceContext
from gochat.services.conversations import ConversationService
from gochat.services.loading import with_reactions
from gochat.services.media_attach import attach_media, with_media
from gochat.services.send_batch import Draft, GroupCommitter
from gochat.storage.chat_repo import DuplicateKey
from gochat.storage.uow import SqlUnitOfWork


class MessageService:
    def __init__(self, ctx: ServiceContext, typing: TypingThrottle, commit_workers: int = 1) -> None:
        self._ctx = ctx
        self._typing = typing
        self._committer = GroupCommitter(ctx, self._one_by_one, workers=commit_workers)

    async def aclose(self) -> None:
        await self._committer.aclose()

    async def send(
        self,
        sender_id: int,
        conversation_id: int,
        client_msg_id: str,
        body: str | None,
        media_ids: tuple[int, ...] = (),
        reply_to_seq: int | None = None,
    ) -> tuple[Message, bool]:
        """Commit a message and only then publish it. A retry returns the first (created=False)."""
        check_media_ids(media_ids)
        clean_client_msg_id(client_msg_id)
        text = clean_body(body or "", self._ctx.limits.message_max_chars, allow_empty=bool(media_ids))
        draft = Draft(
            sender_id,
            conversation_id,
            client_msg_id,
            text,
            reply_to_seq,
            _mention_finder(sender_id, conversation_id, text),
        )
        try:
            if media_ids:  # attached inside the message's own transaction: never group-committed
                message, created = await self._insert(
                    sender_id, conversation_id, client_msg_id, text, reply_to_seq, media_ids
                )
            else:
                message, created = await self._committer.submit(draft)
        except DuplicateKey:  # a concurrent retry of the same client_msg_id won the race
            async with self._ctx.uow() as uow:
                existing = await uow.messages.by_client_id(sender_id, client_msg_id)
            if existing is None:
                raise
            return await self._with_media(_check_retry(existing, conversation_id)), False
        if created:
            await self._ctx.publisher.to_conversation(conversation_id, _created_frame(message))
        return (message if created else await self._with_media(message)), created

    async def _with_media(self, message: Message) -> Message:
        """A retried message as first sent: with its media (a query only if it has some)."""
        if not message.media_count or message.deleted:
            return message
        async with self._ctx.uow() as uow:
            found = await with_media(uow, self._ctx.links, message.conversation_id, [message])
        return found[0]

    async def _one_by_one(self, draft: Draft) -> tuple[Message, bool]:
        """The unbatched path, used when a batch met a concurrent twin."""
        return await self._insert(
            draft.sender_id, draft.conversation_id, draft.client_msg_id, draft.text, draft.reply_to_seq
        )

    async def _insert(
        self,
        sender_id: int,
        conversation_id: int,
        client_msg_id: str,
        text: str,
        reply_to_seq: int | None,
        media_ids: tuple[int, ...] = (),
    ) -> tuple[Message, bool]:
        now = self._ctx.clock.now()
        async with self._ctx.uow() as uow:
            existing = await uow.messages.by_client_id(sender_id, client_msg_id)
            if existing is not None:
                return _check_retry(existing, conversation_id), False
            conv, _ = await ConversationService.load_active(uow, sender_id, conversation_id)
            if reply_to_seq is not None and reply_to_seq > conv.last_seq:
                raise field_error("reply_to_seq", "no such message in this conversation")
            mentioned = await _mentioned(uow, conv.id, conv.kind, sender_id, text)
            seq, pos = await uow.conversations.advance(conversation_id, 1, 1, now)
            media = await attach_media(uow, self._ctx.links, sender_id, conversation_id, seq, media_ids)
            message = Message(
                ids.new_id(),
                conversation_id,
                seq,
                sender_id,
                client_msg_id,
                text,
                reply_to_seq,
                now,
                pos=pos,
                mention_ids=mentioned,
                media_count=len(media),
                media=media,
            )
            await uow.messages.add(message)
            await uow.mentions.add(conversation_id, seq, mentioned)
            await uow.events.add(Event(conversation_id, pos, EventKind.MESSAGE_CREATED, seq, sender_id, now))
            await uow.commit()
        return message, True

    async def typing(self, conversation_id: int, user_id: int, frame: bytes) -> bool:
        """Typing is ephemeral: throttled, published to the other members, never stored."""
        if not await self._typing.allow(conversation_id, user_id):
            return False
        await self._ctx.publisher.to_conversation(conversation_id, frame, except_user=user_id)
        return True

    async def history(
        self, user_id: int, conversation_id: int, after_seq: int | None, before_seq: int | None, limit: int
    ) -> list[Message]:
        if after_seq is not None and before_seq is not None:
            raise InvalidRequest("give after_seq or before_seq, not both")
        limit = max(1, min(limit, self._ctx.limits.history_page_max))
        async with self._ctx.uow() as uow:
            await ConversationService.load_active(uow, user_id, conversation_id)
            page = await uow.messages.page(conversation_id, after_seq, before_seq, limit)
            return await with_reactions(uow, conversation_id, page, self._ctx.links)

    async def mark_read(self, user_id: int, conversation_id: int, seq: int) -> int:
        """Move my read position forward (never back); returns the position now in force."""
        now = self._ctx.clock.now()
        async with self._ctx.uow() as uow:
            conv, mine = await ConversationService.load_active(uow, user_id, conversation_id)
            if seq > conv.last_seq:
                raise field_error("seq", "beyond the last message of the conversation")
            if seq <= mine.read_seq:
                return mine.read_seq
            event = await _record_read(uow, conversation_id, user_id, seq, now)
            if event is None:  # a concurrent read (another device) moved it further first
                current = await uow.members.get(conversation_id, user_id)
                return max(seq, current.read_seq if current else 0)
            await uow.commit()
        await self._publish_read(event, user_id)
        return seq

    async def _publish_read(self, event: Event, reader_id: int) -> None:
        publisher = self._ctx.publisher
        others = encode_frame(read_json(event, own=False))
        await publisher.to_conversation(event.conversation_id, others, except_user=reader_id)
        await publisher.to_user(reader_id, encode_frame(read_json(event, own=True)))


async def _record_read(
    uow: SqlUnitOfWork, conversation_id: int, user_id: int, seq: int, now: datetime
) -> Event | None:
    """Log the read, or None if the stored position is already at or past ``seq``.

    The conversation row is locked first, as by every other writer of a conversation (one
    lock order, no deadlocks); if the read did not move, the caller does not commit and the
    position taken is rolled back.
    """
    _, pos = await uow.conversations.advance(conversation_id, 0, 1, now)
    if not await uow.members.raise_read_seq(conversation_id, user_id, seq):
        return None
    event = Event(conversation_id, pos, EventKind.RECEIPT_READ, seq, user_id, now)
    await uow.events.add(event)
    return event


def _mention_finder(
    sender_id: int, conversation_id: int, text: str
) -> Callable[[SqlUnitOfWork, ConversationKind], Awaitable[tuple[int, ...]]]:
    async def find(uow: SqlUnitOfWork, kind: ConversationKind) -> tuple[int, ...]:
        return await _mentioned(uow, conversation_id, kind, sender_id, text)

    return find


async def _mentioned(
    uow: SqlUnitOfWork, conversation_id: int, kind: ConversationKind, sender_id: int, text: str
) -> tuple[int, ...]:
    """Members of a group named as @username in the text (not the sender)."""
    if kind is not ConversationKind.GROUP or "@" not in text:
        return ()
    keys = set(sorted(mentioned_keys(text))[:MAX_MENTIONS])
    found = await uow.members.ids_by_username(conversation_id, keys)
    return tuple(sorted(u for u in found if u != sender_id))


def _created_frame(message: Message) -> bytes:
    event = Event(
        message.conversation_id,
        message.pos,
        EventKind.MESSAGE_CREATED,
        message.seq,
        message.sender_id,
        message.created_at,
    )
    return encode_frame(event_json(event, message=message))


def _check_retry(existing: Message, conversation_id: int) -> Message:
    if existing.conversation_id != conversation_id:
        raise Conflict("client_msg_id was already used in another conversation")
    return existing
