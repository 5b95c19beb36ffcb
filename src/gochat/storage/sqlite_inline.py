"""An asyncio SQLite connection that runs statements on the event loop thread.

SQLAlchemy's aiosqlite driver sends every DBAPI call (cursor, execute, fetch, close) to a worker
thread and back: measured here, ~65 us of CPU per hop and ~200 us per statement, against ~1 us
for the same indexed read done inline. The embedded server spent most of a reconnect's CPU on
those hops. This class gives SQLAlchemy's aiosqlite dialect (through ``async_creator``) the
same awaitable interface with the statements run inline: an indexed read or a write into the
WAL takes microseconds, less than the hop it replaces.

What may wait runs on a dedicated thread instead, so the event loop never stalls on it:
``commit`` (with ``synchronous=FULL`` it fsyncs the WAL), ``close`` (which may checkpoint), and
any statement that finds the database locked by another process (an admin CLI writing the same
file): the connection's own ``busy_timeout`` is 0, so such a statement fails at once on the
loop and is retried on the thread until the lock is free or ``lock_wait`` seconds have passed.
The one pooled connection is used by one transaction at a time, so the thread and the loop
never use the connection at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

__all__ = ["InlineConnection", "InlineCursor", "connect"]

T = TypeVar("T")


def _locked(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


class InlineCursor:
    """The awaitable cursor SQLAlchemy's asyncio adapter expects, executing inline."""

    __slots__ = ("_cursor", "_owner")

    def __init__(self, cursor: sqlite3.Cursor, owner: InlineConnection) -> None:
        self._cursor = cursor
        self._owner = owner

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, operation: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        return await self._run(partial(self._cursor.execute, operation, parameters or ()))

    async def executemany(self, operation: str, seq_of_parameters: Iterable[Sequence[Any]]) -> InlineCursor:
        rows = list(seq_of_parameters)  # a retry must see the same rows again
        return await self._run(partial(self._cursor.executemany, operation, rows))

    async def _run(self, call: Callable[[], object]) -> InlineCursor:
        """Run ``call`` inline; one that finds the database locked waits on the disk thread."""
        try:
            call()
        except sqlite3.OperationalError as exc:
            if not _locked(exc):
                raise
            await self._owner.wait_for_lock(call)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class InlineConnection:
    """The awaitable connection for ``create_async_engine(..., async_creator=...)``."""

    def __init__(self, conn: sqlite3.Connection, lock_wait: float = 5.0) -> None:
        self._conn: sqlite3.Connection | None = conn
        self.lock_wait = lock_wait
        # One thread for what may wait; named so it shows in profiles.
        self._disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gochat-sqlite-disk")

    @property
    def _connection(self) -> sqlite3.Connection | None:
        """SQLAlchemy's adapter checks this before commit and rollback (aiosqlite's name)."""
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        return self._live().isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._live().cursor(), self)

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._live().create_function(*args, **kwargs)

    async def commit(self) -> None:
        if self._live().in_transaction:  # nothing written: nothing to flush, no thread hop
            conn = self._live()
            await self._on_disk_thread(partial(self._retry_while_locked, conn.commit))

    async def wait_for_lock(self, call: Callable[[], T]) -> T:
        """Run ``call`` on the disk thread, retrying while another process holds the lock."""
        return await self._on_disk_thread(partial(self._retry_while_locked, call))

    def _retry_while_locked(self, call: Callable[[], T]) -> T:
        deadline = time.monotonic() + self.lock_wait
        pause = 0.001
        while True:
            try:
                return call()
            except sqlite3.OperationalError as exc:
                if not _locked(exc) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def rollback(self) -> None:
        if self._live().in_transaction:
            self._live().rollback()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await self._on_disk_thread(conn.close)
            finally:
                self._disk.shutdown(wait=False)

    def stop(self) -> None:
        """Terminate without waiting (SQLAlchemy's force close)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self._disk.shutdown(wait=False)

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError("no active connection")
        return self._conn

    async def _on_disk_thread(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._disk, call)


def connect(database: str, lock_wait: float = 5.0) -> Callable[[], Any]:
    """An ``async_creator`` opening ``database`` (a path or ``:memory:``) for inline use.

    The connection never waits for a lock itself (``timeout=0``: SQLite's busy handler would
    sleep on the event loop); a locked statement is retried on the disk thread instead.
    """

    async def create() -> InlineConnection:
        # check_same_thread=False: commit, close and lock waits run on the disk thread.
        conn = sqlite3.connect(database, timeout=0, check_same_thread=False)
        return InlineConnection(conn, lock_wait)

    return create
