"""The unit of work: one transaction, the repositories bound to it, commit or roll back."""

from __future__ import annotations

import contextlib
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from gochat.errors import Unavailable
from gochat.storage.accounts_repo import SqlSessionRepo, SqlUserRepo
from gochat.storage.chat_repo import (
    SqlConversationRepo,
    SqlEventRepo,
    SqlMemberRepo,
    SqlMessageRepo,
)
from gochat.storage.database import is_connection_error
from gochat.storage.media_repo import SqlMediaRepo
from gochat.storage.send_repo import SqlSendRepo
from gochat.storage.state_repo import SqlMentionRepo, SqlReactionRepo


class SqlUnitOfWork:
    """``async with uow: ...; await uow.commit()`` - leaving without commit rolls back."""

    users: SqlUserRepo
    sessions: SqlSessionRepo
    conversations: SqlConversationRepo
    members: SqlMemberRepo
    messages: SqlMessageRepo
    events: SqlEventRepo
    reactions: SqlReactionRepo
    mentions: SqlMentionRepo
    media: SqlMediaRepo
    send: SqlSendRepo

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None
        self._tx: AsyncTransaction | None = None

    async def __aenter__(self) -> SqlUnitOfWork:
        try:
            self._conn = await self._engine.connect()
            self._tx = await self._conn.begin()
        except Exception as exc:
            await self._close()
            if is_connection_error(exc) or isinstance(exc, OSError | TimeoutError):
                raise Unavailable("the database is unavailable; retry") from exc
            raise
        conn = self._conn
        self.users = SqlUserRepo(conn)
        self.sessions = SqlSessionRepo(conn)
        self.conversations = SqlConversationRepo(conn)
        self.members = SqlMemberRepo(conn)
        self.messages = SqlMessageRepo(conn)
        self.events = SqlEventRepo(conn)
        self.reactions = SqlReactionRepo(conn)
        self.mentions = SqlMentionRepo(conn)
        self.media = SqlMediaRepo(conn)
        self.send = SqlSendRepo(conn)
        return self

    async def commit(self) -> None:
        assert self._tx is not None
        await self._tx.commit()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._tx is not None and self._tx.is_active:
                await self._tx.rollback()
        except Exception:  # noqa: S110 - the connection is discarded below anyway
            pass
        finally:
            await self._close()
        if exc is not None and not isinstance(exc, Unavailable) and is_connection_error(exc):
            raise Unavailable("the database is unavailable; retry") from exc

    async def _close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):  # best effort on a broken connection
                await conn.close()


class SqlUnitOfWorkFactory:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine)
