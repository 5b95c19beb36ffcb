"""SQL repositories for users, sessions and refresh tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gochat.domain.models import Session, User
from gochat.errors import UsernameTaken
from gochat.storage.rows import from_db_time, session_from_row, to_db_time, user_from_row
from gochat.storage.tables import refresh_tokens, sessions, users

USER_COLUMNS = [c for c in users.c if c.name != "password_hash"]


class SqlUserRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, user: User, username_key: str, password_hash: str) -> None:
        values = {
            "id": user.id,
            "username": user.username,
            "username_key": username_key,
            "display_name": user.display_name,
            "bio": user.bio,
            "avatar_media_id": None,
            "password_hash": password_hash,
            "presence_hidden": False,
            "created_at": to_db_time(user.created_at),
        }
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(users.insert().values(**values))
        except IntegrityError as exc:
            raise UsernameTaken() from exc

    async def get(self, user_id: int) -> User | None:
        query = select(*USER_COLUMNS).where(users.c.id == user_id, users.c.deleted_at.is_(None))
        row = (await self._conn.execute(query)).first()
        return user_from_row(row) if row else None

    async def get_public(self, user_id: int) -> User | None:
        """A profile as others see it, including a deleted account's placeholder."""
        row = (await self._conn.execute(select(*USER_COLUMNS).where(users.c.id == user_id))).first()
        return user_from_row(row) if row else None

    async def get_with_password(self, username_key: str) -> tuple[User, str] | None:
        query = select(users).where(users.c.username_key == username_key, users.c.deleted_at.is_(None))
        row = (await self._conn.execute(query)).first()
        return (user_from_row(row), row.password_hash) if row else None

    async def existing_ids(self, user_ids: set[int]) -> set[int]:
        if not user_ids:
            return set()
        query = select(users.c.id).where(users.c.id.in_(user_ids), users.c.deleted_at.is_(None))
        return set((await self._conn.execute(query)).scalars())

    async def get_many(self, user_ids: set[int]) -> list[User]:
        if not user_ids:
            return []
        query = select(*USER_COLUMNS).where(users.c.id.in_(user_ids))
        return [user_from_row(r) for r in await self._conn.execute(query)]

    async def update_profile(self, user_id: int, changes: dict[str, object]) -> None:
        if changes:
            await self._conn.execute(update(users).where(users.c.id == user_id).values(changes))

    async def scrub(self, user_id: int, now: datetime, shown_as: str) -> None:
        """Delete an account in place: its name is freed, its profile and password gone.

        The row stays so messages keep a sender; reads of it show ``shown_as``.
        """
        values = {
            "username": f"deleted-{user_id % 10**10}",
            "username_key": f"~deleted~{user_id}",
            "display_name": shown_as,
            "bio": "",
            "avatar_media_id": None,
            "password_hash": "!",
            "presence_hidden": True,
            "deleted_at": to_db_time(now),
        }
        await self._conn.execute(update(users).where(users.c.id == user_id).values(values))

    async def set_last_seen(self, user_id: int, moment: datetime) -> None:
        query = update(users).where(users.c.id == user_id).values(last_seen_at=to_db_time(moment))
        await self._conn.execute(query)

    async def presence_facts(self, user_ids: set[int]) -> dict[int, tuple[bool, datetime | None]]:
        """(hidden, last seen) per user."""
        if not user_ids:
            return {}
        rows = await self._conn.execute(_PRESENCE_FACTS, {"user_ids": sorted(user_ids)})
        return {r.id: (bool(r.presence_hidden), from_db_time(r.last_seen_at)) for r in rows}

    async def set_password(self, user_id: int, password_hash: str) -> None:
        query = update(users).where(users.c.id == user_id).values(password_hash=password_hash)
        await self._conn.execute(query)

    async def search_prefix(self, key_prefix: str, limit: int) -> list[User]:
        # Escape LIKE wildcards so "_" and "%" in a query are literal, on both backends.
        escaped = key_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = (
            select(*USER_COLUMNS)
            .where(
                users.c.username_key.like(escaped + "%", escape="\\"),
                users.c.deleted_at.is_(None),
            )
            .order_by(users.c.username_key)
            .limit(limit)
        )
        return [user_from_row(r) for r in await self._conn.execute(query)]

    async def count(self) -> int:
        return int((await self._conn.execute(select(func.count()).select_from(users))).scalar_one())


class SqlSessionRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, session: Session) -> None:
        await self._conn.execute(
            sessions.insert().values(
                id=session.id,
                user_id=session.user_id,
                device=session.device,
                created_at=to_db_time(session.created_at),
                last_used_at=to_db_time(session.created_at),
                expires_at=to_db_time(session.expires_at),
                revoked_at=None,
            )
        )

    async def get(self, session_id: int) -> Session | None:
        row = (await self._conn.execute(_SESSION_BY_ID, {"session_id": session_id})).first()
        return session_from_row(row) if row else None

    async def list_active(self, user_id: int, now: datetime) -> list[Session]:
        query = select(sessions).where(
            sessions.c.user_id == user_id,
            sessions.c.revoked_at.is_(None),
            sessions.c.expires_at > to_db_time(now),
        )
        return [session_from_row(r) for r in await self._conn.execute(query)]

    async def revoke(self, session_id: int, now: datetime) -> bool:
        """Revoke; True if this call did it (it was active)."""
        query = (
            update(sessions)
            .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=to_db_time(now))
        )
        return (await self._conn.execute(query)).rowcount == 1

    async def extend(self, session_id: int, now: datetime, expires_at: datetime) -> None:
        query = (
            update(sessions)
            .where(sessions.c.id == session_id)
            .values(last_used_at=to_db_time(now), expires_at=to_db_time(expires_at))
        )
        await self._conn.execute(query)

    async def add_refresh_token(self, token_hash: str, session_id: int, now: datetime) -> None:
        await self._conn.execute(
            refresh_tokens.insert().values(
                token_hash=token_hash, session_id=session_id, created_at=to_db_time(now)
            )
        )

    async def find_refresh_token(self, token_hash: str) -> tuple[int, datetime | None] | None:
        """(session id, used at) of a token ever issued, or None if it never was."""
        query = select(refresh_tokens.c.session_id, refresh_tokens.c.used_at).where(
            refresh_tokens.c.token_hash == token_hash
        )
        row = (await self._conn.execute(query)).first()
        return (row.session_id, from_db_time(row.used_at)) if row else None

    async def use_refresh_token(self, token_hash: str, now: datetime) -> bool:
        """Mark used; False if another request used it first (concurrent replay)."""
        query = (
            update(refresh_tokens)
            .where(refresh_tokens.c.token_hash == token_hash, refresh_tokens.c.used_at.is_(None))
            .values(used_at=to_db_time(now))
        )
        return (await self._conn.execute(query)).rowcount == 1


# Built once: these run on every WebSocket connect (see chat_repo's note on prebuilt statements).
_PRESENCE_FACTS = select(users.c.id, users.c.presence_hidden, users.c.last_seen_at).where(
    users.c.id.in_(bindparam("user_ids", expanding=True))
)
_SESSION_BY_ID = select(sessions).where(sessions.c.id == bindparam("session_id"))
