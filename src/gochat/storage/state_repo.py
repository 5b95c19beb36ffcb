"""SQL repositories for chat state: reactions and mentions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import and_, bindparam, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gochat.domain.models import ReactionSummary
from gochat.storage.chat_repo import own_membership
from gochat.storage.rows import to_db_time
from gochat.storage.tables import members, mentions, messages, reactions


class SqlReactionRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, conversation_id: int, seq: int, user_id: int, emoji: str, now: datetime) -> bool:
        """True if added; False if this user already reacted with this emoji."""
        values = {
            "conversation_id": conversation_id,
            "seq": seq,
            "user_id": user_id,
            "emoji": emoji,
            "created_at": to_db_time(now),
        }
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(reactions.insert().values(**values))
        except IntegrityError:
            return False
        return True

    async def remove(self, conversation_id: int, seq: int, user_id: int, emoji: str) -> bool:
        query = delete(reactions).where(
            reactions.c.conversation_id == conversation_id,
            reactions.c.seq == seq,
            reactions.c.user_id == user_id,
            reactions.c.emoji == emoji,
        )
        return (await self._conn.execute(query)).rowcount == 1

    async def distinct_emojis(self, conversation_id: int, seq: int) -> set[str]:
        query = select(reactions.c.emoji).where(
            reactions.c.conversation_id == conversation_id, reactions.c.seq == seq
        )
        return set((await self._conn.execute(query.distinct())).scalars())

    async def clear(self, conversation_id: int, seq: int) -> None:
        await self._conn.execute(
            delete(reactions).where(reactions.c.conversation_id == conversation_id, reactions.c.seq == seq)
        )

    async def for_messages(
        self, conversation_id: int, seqs: Iterable[int]
    ) -> dict[int, tuple[ReactionSummary, ...]]:
        wanted = list(seqs)
        if not wanted:
            return {}
        grouped: dict[int, dict[str, list[int]]] = defaultdict(dict)
        params = {"conversation_id": conversation_id, "seqs": wanted}
        for row in await self._conn.execute(_REACTIONS_OF, params):
            grouped[row.seq].setdefault(row.emoji, []).append(row.user_id)
        return {
            seq: tuple(ReactionSummary(emoji, tuple(users)) for emoji, users in by_emoji.items())
            for seq, by_emoji in grouped.items()
        }


class SqlMentionRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, conversation_id: int, seq: int, user_ids: Iterable[int]) -> None:
        rows = [{"user_id": u, "conversation_id": conversation_id, "seq": seq} for u in user_ids]
        if rows:
            await self._conn.execute(mentions.insert(), rows)

    async def clear(self, conversation_id: int, seq: int) -> None:
        await self._conn.execute(
            delete(mentions).where(mentions.c.conversation_id == conversation_id, mentions.c.seq == seq)
        )

    async def unread_counts(self, user_id: int, conversation_ids: list[int]) -> dict[int, int]:
        """Mentions of the user after their read position, per conversation."""
        if not conversation_ids:
            return {}
        counts = dict.fromkeys(conversation_ids, 0)
        params = {"user_id": user_id, "conversation_ids": conversation_ids}
        for row in await self._conn.execute(_UNREAD_MENTIONS, params):
            counts[row[0]] = int(row[1])
        return counts


# Built once: these run on every sync (see chat_repo's note on prebuilt statements).
_REACTIONS_OF = (
    select(reactions.c.seq, reactions.c.emoji, reactions.c.user_id)
    .where(
        reactions.c.conversation_id == bindparam("conversation_id"),
        reactions.c.seq.in_(bindparam("seqs", expanding=True)),
    )
    .order_by(reactions.c.seq, reactions.c.created_at, reactions.c.user_id)
)
_UNREAD_MENTIONS = (
    select(mentions.c.conversation_id, func.count())
    .join(members, own_membership(mentions.c.conversation_id))
    .join(
        messages,
        and_(messages.c.conversation_id == mentions.c.conversation_id, messages.c.seq == mentions.c.seq),
    )
    .where(
        mentions.c.user_id == bindparam("user_id"),
        mentions.c.conversation_id.in_(bindparam("conversation_ids", expanding=True)),
        mentions.c.seq > members.c.read_seq,
        messages.c.deleted_at.is_(None),
    )
    .group_by(mentions.c.conversation_id)
)
