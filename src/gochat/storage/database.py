"""Engine construction for SQLite (embedded) and MySQL/MariaDB (cluster), and error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gochat.errors import Unavailable
from gochat.storage import sqlite_inline


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An engine tuned for the backend; SQLite gets one connection (one writer at a time)."""
    if is_sqlite(url):
        return _sqlite_engine(url)
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        pool_timeout=10,
        connect_args={"charset": "utf8mb4", "connect_timeout": 5},
        isolation_level="READ COMMITTED",
    )


def _sqlite_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    database = parsed.database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # Statements run on the event loop, commits on a disk thread (storage/sqlite_inline.py):
    # aiosqlite's thread hop per DBAPI call cost more CPU than the queries. A URL with
    # driver options (?uri=true...) keeps plain aiosqlite.
    options: dict[str, Any] = {}
    if database and not parsed.query:
        options["async_creator"] = sqlite_inline.connect(database, LOCK_WAIT_S)
    inline = bool(options)
    # SQLite has one writer; a single pooled connection serialises writes in process order
    # instead of failing with "database is locked" under concurrency.
    engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=30, **options)
    # Inline connections wait for another process's lock on their disk thread, never in SQLite's
    # busy handler (it would sleep on the event loop).
    busy_ms = 0 if inline else int(LOCK_WAIT_S * 1000)
    event.listen(engine.sync_engine, "connect", partial(_sqlite_pragmas, busy_ms=busy_ms))
    return engine


LOCK_WAIT_S = 5.0


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, busy_ms: int) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed during a write; synchronous=FULL makes a commit durable
    # before the ack (guarantee 1) even across power loss.
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", f"busy_timeout={busy_ms}"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def is_connection_error(exc: BaseException) -> bool:
    """True when the database is unreachable, the connection broke, or no pooled connection
    could be had in time (all retryable)."""
    if isinstance(exc, OperationalError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


@asynccontextmanager
async def translate_db_errors() -> AsyncIterator[None]:
    """Map driver failures to Unavailable once, at the adapter edge."""
    try:
        yield
    except (OperationalError, DBAPIError) as exc:
        if is_connection_error(exc):
            raise Unavailable("the database is unavailable; retry") from exc
        raise
    except (ConnectionError, OSError, TimeoutError) as exc:
        raise Unavailable("the database is unavailable; retry") from exc


async def ping(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
