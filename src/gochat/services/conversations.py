"""Direct and group conversations: creation, listing, renaming and membership."""

from __future__ import annotations

from datetime import UTC, datetime

from gochat import ids
from gochat.domain.models import (
    Conversation,
    ConversationKind,
    ConversationSummary,
    Event,
    EventKind,
    Membership,
    Role,
)
from gochat.domain.permissions import can_manage, can_remove, require_active
from gochat.domain.protocol import encode_event, encode_frame
from gochat.domain.validation import clean_title, field_error
from gochat.domain.wire import conversation_json, event_json
from gochat.errors import Forbidden, InvalidRequest, NotFound
from gochat.services.context import ServiceContext
from gochat.services.loading import message_with_reactions
from gochat.storage.chat_repo import DuplicateKey
from gochat.storage.uow import SqlUnitOfWork


def direct_key(a: int, b: int) -> str:
    low, high = sorted((a, b))
    return f"{low}:{high}"


def encode_cursor(moment: datetime, conversation_id: int) -> str:
    return f"{int(moment.timestamp() * 1_000_000)}.{conversation_id}"


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        micros, conv = cursor.split(".")
        return datetime.fromtimestamp(int(micros) / 1_000_000, UTC), int(conv)
    except (ValueError, OverflowError, OSError) as exc:
        raise field_error("cursor", "not a cursor returned by this API") from exc


class ConversationService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    async def create_direct(self, user_id: int, other_id: int) -> tuple[Conversation, bool]:
        """The one direct conversation of a pair, created on first use; True if created now."""
        if other_id == user_id:
            raise field_error("member_ids", "a direct conversation needs another user")
        key = direct_key(user_id, other_id)
        async with self._ctx.uow() as uow:
            existing = await uow.conversations.find_direct(key)
            if existing is not None:
                return existing, False
            if not await uow.users.existing_ids({other_id}):
                raise NotFound("no such user")
            try:
                conv = await self._create(uow, ConversationKind.DIRECT, None, user_id, [other_id], key)
            except DuplicateKey:
                conv = None
            if conv is not None:
                await uow.commit()
        if conv is None:  # a concurrent request created it first
            return await self._existing_direct(key), False
        await self._announce_created(conv)
        return conv, True

    async def _existing_direct(self, key: str) -> Conversation:
        async with self._ctx.uow() as uow:
            found = await uow.conversations.find_direct(key)
        if found is None:
            raise NotFound()
        return found

    async def create_group(self, user_id: int, title: str, member_ids: list[int]) -> Conversation:
        clean = clean_title(title)
        others = list(dict.fromkeys(m for m in member_ids if m != user_id))
        if len(others) + 1 > self._ctx.limits.group_max_members:
            raise field_error("member_ids", f"at most {self._ctx.limits.group_max_members} members")
        async with self._ctx.uow() as uow:
            missing = set(others) - await uow.users.existing_ids(set(others))
            if missing:
                raise NotFound("no such user: " + ", ".join(str(m) for m in sorted(missing)))
            conv = await self._create(uow, ConversationKind.GROUP, clean, user_id, others, None)
            await uow.commit()
        await self._announce_created(conv)
        return conv

    async def _create(
        self,
        uow: SqlUnitOfWork,
        kind: ConversationKind,
        title: str | None,
        creator: int,
        others: list[int],
        key: str | None,
    ) -> Conversation:
        now = self._ctx.clock.now()
        draft = Conversation(ids.new_id(), kind, title, now, 0, 0)
        await uow.conversations.add(draft, creator, key)
        creator_role = Role.OWNER if kind is ConversationKind.GROUP else Role.MEMBER
        roles = [(creator, creator_role)] + [(o, Role.MEMBER) for o in others]
        _, last_pos = await uow.conversations.advance(draft.id, 0, len(roles), now)
        for pos, (member_id, role) in enumerate(roles, start=1):
            await uow.members.join(draft.id, member_id, role, pos, now)
            await uow.events.add(Event(draft.id, pos, EventKind.MEMBER_JOINED, None, member_id, now))
        return Conversation(draft.id, kind, title, now, 0, last_pos)

    async def _announce_created(self, conv: Conversation) -> None:
        async with self._ctx.uow() as uow:
            members = await uow.members.active(conv.id)
        for member in members:
            body = conversation_json(conv, members=members)
            frame = encode_event("conversation.created", conversation=body, joined_pos=member.joined_pos)
            await self._ctx.publisher.to_user(member.user_id, frame, route=f"join:{conv.id}")

    async def get(self, user_id: int, conversation_id: int) -> tuple[ConversationSummary, list[Membership]]:
        """The conversation as this member sees it, and its members; NotFound for non-members."""
        ids = [conversation_id]
        async with self._ctx.uow() as uow:
            conv, mine = await self.load_active(uow, user_id, conversation_id)
            members = await uow.members.active(conversation_id)
            unread = await uow.messages.unread_counts(user_id, ids)
            mentioned = await uow.mentions.unread_counts(user_id, ids)
            last = await uow.messages.last_messages(ids)
        summary = ConversationSummary(
            conv, mine.read_seq, unread[conv.id], last.get(conv.id), mentioned[conv.id], mine.muted
        )
        return summary, members

    @staticmethod
    async def load_active(
        uow: SqlUnitOfWork, user_id: int, conversation_id: int
    ) -> tuple[Conversation, Membership]:
        mine = require_active(await uow.members.get(conversation_id, user_id))
        conv = await uow.conversations.get(conversation_id)
        if conv is None:
            raise NotFound()
        return conv, mine

    async def list_for(
        self, user_id: int, limit: int, cursor: str | None
    ) -> tuple[list[ConversationSummary], str | None]:
        limit = max(1, min(limit, 100))
        before = decode_cursor(cursor) if cursor else None
        async with self._ctx.uow() as uow:
            rows = await uow.conversations.list_for_user(user_id, limit + 1, before)
            page = rows[:limit]
            conv_ids = [c.id for c, _ in page]
            unread = await uow.messages.unread_counts(user_id, conv_ids)
            mentioned = await uow.mentions.unread_counts(user_id, conv_ids)
            last = await uow.messages.last_messages(conv_ids)
            activity = await uow.conversations.activity_of(page[-1][0].id) if len(rows) > limit else None
        summaries = [
            ConversationSummary(c, m.read_seq, unread[c.id], last.get(c.id), mentioned[c.id], m.muted)
            for c, m in page
        ]
        next_cursor = encode_cursor(activity.replace(tzinfo=UTC), page[-1][0].id) if activity else None
        return summaries, next_cursor

    async def rename(self, user_id: int, conversation_id: int, title: str) -> Conversation:
        clean = clean_title(title)
        now = self._ctx.clock.now()
        async with self._ctx.uow() as uow:
            conv, mine = await self.load_active(uow, user_id, conversation_id)
            _require_group_manager(conv, mine)
            await uow.conversations.set_title(conv.id, clean)
            _, pos = await uow.conversations.advance(conv.id, 0, 1, now)
            event = Event(conv.id, pos, EventKind.CONVERSATION_UPDATED, None, user_id, now)
            await uow.events.add(event)
            await uow.commit()
        renamed = Conversation(conv.id, conv.kind, clean, conv.created_at, conv.last_seq, pos)
        await self._ctx.publisher.to_conversation(
            conv.id, encode_frame(event_json(event, conversation=renamed))
        )
        return renamed

    async def add_members(self, user_id: int, conversation_id: int, user_ids: list[int]) -> None:
        now = self._ctx.clock.now()
        async with self._ctx.uow() as uow:
            conv, mine = await self.load_active(uow, user_id, conversation_id)
            _require_group_manager(conv, mine)
            current = {m.user_id for m in await uow.members.active(conv.id)}
            new = [u for u in dict.fromkeys(user_ids) if u not in current]
            if len(current) + len(new) > self._ctx.limits.group_max_members:
                raise field_error("user_ids", f"at most {self._ctx.limits.group_max_members} members")
            if set(new) - await uow.users.existing_ids(set(new)):
                raise NotFound("no such user")
            if not new:
                return
            last_seq, last_pos = await uow.conversations.advance(conv.id, 0, len(new), now)
            joined = await self._record_joins(uow, conv.id, new, last_pos - len(new) + 1, now, last_seq)
            await uow.commit()
        await self._announce_joins(conv.id, joined)

    async def _record_joins(
        self, uow: SqlUnitOfWork, conv_id: int, new: list[int], first_pos: int, now: datetime, read_seq: int
    ) -> list[tuple[Event, Membership]]:
        joined = []
        for pos, member_id in enumerate(new, start=first_pos):
            await uow.members.join(conv_id, member_id, Role.MEMBER, pos, now, read_seq)
            event = Event(conv_id, pos, EventKind.MEMBER_JOINED, None, member_id, now)
            await uow.events.add(event)
            joined.append((event, Membership(conv_id, member_id, Role.MEMBER, read_seq, pos, None)))
        return joined

    async def _announce_joins(self, conv_id: int, joined: list[tuple[Event, Membership]]) -> None:
        for event, member in joined:
            await self._ctx.publisher.to_conversation(conv_id, encode_frame(event_json(event, member=member)))
        async with self._ctx.uow() as uow:
            conv = await uow.conversations.get(conv_id)
            members = await uow.members.active(conv_id)
            last = (await uow.messages.last_messages([conv_id])).get(conv_id)
            if last is not None:
                last = await message_with_reactions(uow, last, self._ctx.links)
        if conv is None:
            return
        for _, member in joined:
            # The newcomer's own view: history before the join counts as read.
            body = conversation_json(conv, members=members, read_seq=member.read_seq, last_message=last)
            # The newcomer syncs from its join: events published before its sockets followed
            # the conversation are replayed rather than lost.
            frame = encode_event("conversation.created", conversation=body, joined_pos=member.joined_pos)
            await self._ctx.publisher.to_user(member.user_id, frame, route=f"join:{conv_id}")

    async def remove_member(self, user_id: int, conversation_id: int, target_id: int) -> None:
        """Leave (target is yourself) or remove someone (owner/admin)."""
        now = self._ctx.clock.now()
        async with self._ctx.uow() as uow:
            conv, mine = await self.load_active(uow, user_id, conversation_id)
            if conv.kind is ConversationKind.DIRECT:
                raise Forbidden("direct conversations have no membership to change")
            target = mine if target_id == user_id else await uow.members.get(conv.id, target_id)
            if target is None or not target.active:
                raise NotFound("not a member")
            if target_id != user_id and not can_remove(mine.role, target.role):
                raise Forbidden("only owners and admins remove members, and not their betters")
            _, pos = await uow.conversations.advance(conv.id, 0, 1, now)
            await uow.members.leave(conv.id, target_id, pos)
            event = Event(conv.id, pos, EventKind.MEMBER_LEFT, None, target_id, now)
            await uow.events.add(event)
            if target.role is Role.OWNER:
                await _hand_over_ownership(uow, conv.id)
            await uow.commit()
        await self._ctx.publisher.to_conversation(conv.id, encode_frame(event_json(event)))
        await self._ctx.publisher.to_user(target_id, b"", route=f"leave:{conv.id}")

    async def set_role(self, user_id: int, conversation_id: int, target_id: int, role: Role) -> None:
        async with self._ctx.uow() as uow:
            conv, mine = await self.load_active(uow, user_id, conversation_id)
            if conv.kind is ConversationKind.DIRECT or mine.role is not Role.OWNER:
                raise Forbidden("only the owner changes roles")
            target = await uow.members.get(conv.id, target_id)
            if target is None or not target.active:
                raise NotFound("not a member")
            if role is Role.OWNER or target_id == user_id:
                raise InvalidRequest("ownership is handed over by leaving")
            await uow.members.set_role(conv.id, target_id, role)
            _, pos = await uow.conversations.advance(conv.id, 0, 1, self._ctx.clock.now())
            event = Event(conv.id, pos, EventKind.MEMBER_UPDATED, None, target_id, self._ctx.clock.now())
            await uow.events.add(event)
            await uow.commit()
        changed = Membership(conv.id, target_id, role, target.read_seq, target.joined_pos, None)
        await self._ctx.publisher.to_conversation(conv.id, encode_frame(event_json(event, member=changed)))


async def _hand_over_ownership(uow: SqlUnitOfWork, conversation_id: int) -> None:
    remaining = await uow.members.active(conversation_id)
    if not remaining:
        return
    ranked = sorted(remaining, key=lambda m: (m.role is not Role.ADMIN, m.joined_pos))
    await uow.members.set_role(conversation_id, ranked[0].user_id, Role.OWNER)


def _require_group_manager(conv: Conversation, mine: Membership) -> None:
    if conv.kind is ConversationKind.DIRECT:
        raise Forbidden("direct conversations cannot be changed")
    if not can_manage(mine.role):
        raise Forbidden("only owners and admins may do that")
