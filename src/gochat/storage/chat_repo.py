"""SQL repositories for conversations, members, messages and the change log."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, func, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gochat.domain.models import Conversation, Event, Membership, Message, Role
from gochat.storage.rows import (
    conversation_from_row,
    event_from_row,
    event_values,
    membership_from_row,
    message_from_row,
    message_values,
    to_db_time,
)
from gochat.storage.tables import conversations, events, members, messages, users


class DuplicateKey(Exception):
    """A unique index refused the insert (a concurrent twin got there first)."""


class SqlConversationRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, conversation: Conversation, created_by: int, direct_key: str | None) -> None:
        values = {
            "id": conversation.id,
            "kind": conversation.kind.value,
            "title": conversation.title,
            "direct_key": direct_key,
            "created_by": created_by,
            "created_at": to_db_time(conversation.created_at),
            "last_seq": 0,
            "last_pos": 0,
            "last_activity_at": to_db_time(conversation.created_at),
        }
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(conversations.insert().values(**values))
        except IntegrityError as exc:
            raise DuplicateKey() from exc

    async def get(self, conversation_id: int) -> Conversation | None:
        query = select(conversations).where(conversations.c.id == conversation_id)
        row = (await self._conn.execute(query)).first()
        return conversation_from_row(row) if row else None

    async def find_direct(self, direct_key: str) -> Conversation | None:
        query = select(conversations).where(conversations.c.direct_key == direct_key)
        row = (await self._conn.execute(query)).first()
        return conversation_from_row(row) if row else None

    async def advance(
        self, conversation_id: int, seqs: int, positions: int, now: datetime
    ) -> tuple[int, int]:
        """Take the next ``seqs`` message numbers and ``positions`` log positions.

        The UPDATE takes the row lock that serialises writers of one conversation until
        commit: this is what makes ``seq`` gapless and ordered under concurrent senders.
        Returns the new (last_seq, last_pos).
        """
        values: dict[str, Any] = {
            "last_seq": conversations.c.last_seq + seqs,
            "last_pos": conversations.c.last_pos + positions,
        }
        if seqs:
            values["last_activity_at"] = to_db_time(now)
        await self._conn.execute(
            update(conversations).where(conversations.c.id == conversation_id).values(values)
        )
        query = select(conversations.c.last_seq, conversations.c.last_pos).where(
            conversations.c.id == conversation_id
        )
        row = (await self._conn.execute(query)).one()
        return int(row.last_seq), int(row.last_pos)

    async def set_title(self, conversation_id: int, title: str) -> None:
        await self._conn.execute(
            update(conversations).where(conversations.c.id == conversation_id).values(title=title)
        )

    async def list_for_user(
        self, user_id: int, limit: int, before: tuple[datetime, int] | None
    ) -> list[tuple[Conversation, Membership]]:
        """Active conversations of a user, most recent activity first, keyset-paged."""
        query = (
            select(conversations, members)
            .join(members, members.c.conversation_id == conversations.c.id)
            .where(members.c.user_id == user_id, members.c.left_pos.is_(None))
        )
        if before is not None:
            moment, conv_id = before
            query = query.where(
                tuple_(conversations.c.last_activity_at, conversations.c.id)
                < tuple_(to_db_time(moment), conv_id)
            )
        query = query.order_by(conversations.c.last_activity_at.desc(), conversations.c.id.desc()).limit(
            limit
        )
        rows = await self._conn.execute(query)
        return [(conversation_from_row(r), membership_from_row(r)) for r in rows]

    async def activity_of(self, conversation_id: int) -> datetime | None:
        query = select(conversations.c.last_activity_at).where(conversations.c.id == conversation_id)
        return (await self._conn.execute(query)).scalar_one_or_none()


class SqlMemberRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get(self, conversation_id: int, user_id: int) -> Membership | None:
        query = select(members).where(
            members.c.conversation_id == conversation_id, members.c.user_id == user_id
        )
        row = (await self._conn.execute(query)).first()
        return membership_from_row(row) if row else None

    async def active(self, conversation_id: int) -> list[Membership]:
        query = (
            select(members)
            .where(members.c.conversation_id == conversation_id, members.c.left_pos.is_(None))
            .order_by(members.c.joined_pos, members.c.user_id)
        )
        return [membership_from_row(r) for r in await self._conn.execute(query)]

    async def join(
        self, conversation_id: int, user_id: int, role: Role, pos: int, now: datetime, read_seq: int = 0
    ) -> None:
        """Insert a membership, or reactivate a former member's row.

        ``read_seq`` starts at the conversation's last seq: history from before joining is
        readable but not "unread".
        """
        values = {"role": role.value, "joined_pos": pos, "left_pos": None, "read_seq": read_seq}
        result = await self._conn.execute(
            update(members)
            .where(members.c.conversation_id == conversation_id, members.c.user_id == user_id)
            .values(values)
        )
        if result.rowcount == 0:
            await self._conn.execute(
                members.insert().values(
                    conversation_id=conversation_id,
                    user_id=user_id,
                    muted=False,
                    joined_at=to_db_time(now),
                    **values,
                )
            )

    async def leave(self, conversation_id: int, user_id: int, pos: int) -> None:
        await self._conn.execute(
            update(members)
            .where(members.c.conversation_id == conversation_id, members.c.user_id == user_id)
            .values(left_pos=pos)
        )

    async def set_role(self, conversation_id: int, user_id: int, role: Role) -> None:
        await self._conn.execute(
            update(members)
            .where(members.c.conversation_id == conversation_id, members.c.user_id == user_id)
            .values(role=role.value)
        )

    async def raise_read_seq(self, conversation_id: int, user_id: int, seq: int) -> bool:
        """Move the read position forward only; True if it moved."""
        query = (
            update(members)
            .where(
                members.c.conversation_id == conversation_id,
                members.c.user_id == user_id,
                members.c.read_seq < seq,
            )
            .values(read_seq=seq)
        )
        return (await self._conn.execute(query)).rowcount == 1

    async def set_muted(self, conversation_id: int, user_id: int, muted: bool) -> None:
        await self._conn.execute(
            update(members)
            .where(members.c.conversation_id == conversation_id, members.c.user_id == user_id)
            .values(muted=muted)
        )

    async def muted_flags(self, user_id: int) -> dict[int, bool]:
        """Active conversations of the user and whether each is muted."""
        rows = await self._conn.execute(_MUTED_FLAGS, {"user_id": user_id})
        return {row.conversation_id: bool(row.muted) for row in rows}

    async def ids_by_username(self, conversation_id: int, keys: set[str]) -> list[int]:
        """Active members whose username key is among ``keys`` (resolving @mentions)."""
        if not keys:
            return []
        query = (
            select(users.c.id)
            .join(members, members.c.user_id == users.c.id)
            .where(
                members.c.conversation_id == conversation_id,
                members.c.left_pos.is_(None),
                users.c.username_key.in_(keys),
            )
        )
        return list((await self._conn.execute(query)).scalars())

    async def contacts_among(self, user_id: int, candidates: set[int]) -> set[int]:
        """Those of ``candidates`` who share an active conversation with the user."""
        if not candidates:
            return set()
        mine = members.alias("mine")
        theirs = members.alias("theirs")
        query = (
            select(theirs.c.user_id)
            .join(mine, mine.c.conversation_id == theirs.c.conversation_id)
            .where(
                mine.c.user_id == user_id,
                mine.c.left_pos.is_(None),
                theirs.c.left_pos.is_(None),
                theirs.c.user_id.in_(candidates),
            )
            .distinct()
        )
        return set((await self._conn.execute(query)).scalars())

    async def of_user(self, user_id: int) -> list[tuple[Membership, int]]:
        """Every membership of a user, past and present, with the conversation's last pos."""
        rows = await self._conn.execute(_MEMBERSHIPS_OF_USER, {"user_id": user_id})
        return [(membership_from_row(r), int(r.last_pos)) for r in rows]

    async def active_conversation_ids(self, user_id: int) -> list[int]:
        return list((await self._conn.execute(_ACTIVE_CONVERSATION_IDS, {"user_id": user_id})).scalars())

    async def member_ids_of(self, conversation_ids: Iterable[int]) -> dict[int, list[int]]:
        ids = list(conversation_ids)
        if not ids:
            return {}
        query = select(members.c.conversation_id, members.c.user_id).where(
            members.c.conversation_id.in_(ids), members.c.left_pos.is_(None)
        )
        result: dict[int, list[int]] = {i: [] for i in ids}
        for row in await self._conn.execute(query):
            result[row.conversation_id].append(row.user_id)
        return result


class SqlMessageRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, message: Message) -> None:
        try:
            await self._conn.execute(messages.insert().values(**message_values(message)))
        except IntegrityError as exc:
            raise DuplicateKey() from exc

    async def by_client_id(self, sender_id: int, client_msg_id: str) -> Message | None:
        query = select(messages).where(
            messages.c.sender_id == sender_id, messages.c.client_msg_id == client_msg_id
        )
        row = (await self._conn.execute(query)).first()
        return message_from_row(row) if row else None

    async def by_seq(self, conversation_id: int, seq: int) -> Message | None:
        query = select(messages).where(messages.c.conversation_id == conversation_id, messages.c.seq == seq)
        row = (await self._conn.execute(query)).first()
        return message_from_row(row) if row else None

    async def by_seqs(self, conversation_id: int, seqs: set[int]) -> dict[int, Message]:
        if not seqs:
            return {}
        rows = await self._conn.execute(_BY_SEQS, {"conversation_id": conversation_id, "seqs": sorted(seqs)})
        return {r.seq: message_from_row(r) for r in rows}

    async def page(
        self, conversation_id: int, after_seq: int | None, before_seq: int | None, limit: int
    ) -> list[Message]:
        """Ascending by seq: the first ``limit`` after ``after_seq``, or the last before ``before_seq``."""
        query = select(messages).where(messages.c.conversation_id == conversation_id)
        if before_seq is not None:
            query = query.where(messages.c.seq < before_seq).order_by(messages.c.seq.desc())
        else:
            query = query.where(messages.c.seq > (after_seq or 0)).order_by(messages.c.seq)
        rows = [message_from_row(r) for r in await self._conn.execute(query.limit(limit))]
        return sorted(rows, key=lambda m: m.seq) if before_seq is not None else rows

    async def update_body(self, message_id: int, body: str, now: datetime) -> None:
        await self._conn.execute(
            update(messages).where(messages.c.id == message_id).values(body=body, edited_at=to_db_time(now))
        )

    async def tombstone(self, message_id: int, now: datetime) -> None:
        await self._conn.execute(
            update(messages)
            .where(messages.c.id == message_id)
            .values(body=None, mention_ids=None, deleted_at=to_db_time(now))
        )

    async def unread_counts(self, user_id: int, conversation_ids: list[int]) -> dict[int, int]:
        """Messages from others after the user's read_seq, not deleted, per conversation."""
        if not conversation_ids:
            return {}
        counts = dict.fromkeys(conversation_ids, 0)
        params = {"user_id": user_id, "conversation_ids": conversation_ids}
        for row in await self._conn.execute(_UNREAD_COUNTS, params):
            counts[row[0]] = int(row[1])
        return counts

    async def last_messages(self, conversation_ids: list[int]) -> dict[int, Message]:
        if not conversation_ids:
            return {}
        query = (
            select(messages)
            .join(
                conversations,
                and_(
                    conversations.c.id == messages.c.conversation_id,
                    conversations.c.last_seq == messages.c.seq,
                ),
            )
            .where(conversations.c.id.in_(conversation_ids))
        )
        return {r.conversation_id: message_from_row(r) for r in await self._conn.execute(query)}


class SqlEventRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, event: Event) -> None:
        await self._conn.execute(events.insert().values(**event_values(event)))

    async def add_many(self, batch: list[Event]) -> None:
        for event in batch:
            await self.add(event)

    async def between(self, conversation_id: int, after_pos: int, upto_pos: int) -> list[Event]:
        params = {"conversation_id": conversation_id, "after_pos": after_pos, "upto_pos": upto_pos}
        return [event_from_row(r) for r in await self._conn.execute(_EVENTS_BETWEEN, params)]


# Statements on the connect and sync paths, built once (bind parameters filled per call): building
# a Select and its clauses per call cost more CPU than running it on SQLite (bench/ profile e).
_MUTED_FLAGS = select(members.c.conversation_id, members.c.muted).where(
    members.c.user_id == bindparam("user_id"), members.c.left_pos.is_(None)
)
_MEMBERSHIPS_OF_USER = (
    select(members, conversations.c.last_pos)
    .join(conversations, conversations.c.id == members.c.conversation_id)
    .where(members.c.user_id == bindparam("user_id"))
)
_ACTIVE_CONVERSATION_IDS = select(members.c.conversation_id).where(
    members.c.user_id == bindparam("user_id"), members.c.left_pos.is_(None)
)
_BY_SEQS = select(messages).where(
    messages.c.conversation_id == bindparam("conversation_id"),
    messages.c.seq.in_(bindparam("seqs", expanding=True)),
)
def own_membership(conversation_id: ColumnElement[int]) -> ColumnElement[bool]:
    """Join condition: the membership of the user bound as ``user_id`` in that conversation."""
    return and_(members.c.conversation_id == conversation_id, members.c.user_id == bindparam("user_id"))


_UNREAD_COUNTS = (
    select(messages.c.conversation_id, func.count())
    .join(members, own_membership(messages.c.conversation_id))
    .where(
        messages.c.conversation_id.in_(bindparam("conversation_ids", expanding=True)),
        messages.c.seq > members.c.read_seq,
        messages.c.sender_id != bindparam("user_id"),
        messages.c.deleted_at.is_(None),
    )
    .group_by(messages.c.conversation_id)
)
_EVENTS_BETWEEN = (
    select(events)
    .where(
        events.c.conversation_id == bindparam("conversation_id"),
        events.c.pos > bindparam("after_pos"),
        events.c.pos <= bindparam("upto_pos"),
    )
    .order_by(events.c.pos)
)
