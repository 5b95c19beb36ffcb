"""The embedded SQLite connection: statements inline, commit and close on the disk thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from gochat.storage import sqlite_inline
from gochat.storage.database import create_engine


class RecordingConnection(sqlite3.Connection):
    """Notes the thread that commits (sqlite3's methods cannot be patched on an instance)."""

    commit_threads: list[str] = []

    def commit(self) -> None:
        RecordingConnection.commit_threads.append(threading.current_thread().name)
        super().commit()


async def test_a_plain_file_url_gets_the_inline_connection(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            assert isinstance(raw.driver_connection, sqlite_inline.InlineConnection)
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
            assert mode == "wal"  # the engine's pragmas still apply
    finally:
        await engine.dispose()


async def test_a_url_with_driver_options_keeps_aiosqlite(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///file:{tmp_path / 'b.db'}?uri=true")
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            assert not isinstance(raw.driver_connection, sqlite_inline.InlineConnection)
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()


async def test_writes_commit_on_the_disk_thread_and_roll_back_inline(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    RecordingConnection.commit_threads.clear()
    raw = sqlite3.connect(db, check_same_thread=False, factory=RecordingConnection)
    conn = sqlite_inline.InlineConnection(raw)
    cursor = conn.cursor()
    await cursor.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    await cursor.executemany("INSERT INTO t (id, v) VALUES (?, ?)", [(1, "a"), (2, "b")])
    assert cursor.rowcount == 2
    await conn.commit()
    assert RecordingConnection.commit_threads == ["gochat-sqlite-disk_0"]
    await conn.commit()  # nothing written since: no hop, no second commit
    assert len(RecordingConnection.commit_threads) == 1
    await cursor.execute("INSERT INTO t (id, v) VALUES (?, ?)", (3, "c"))
    await conn.rollback()
    await cursor.execute("SELECT id, v FROM t ORDER BY id")
    assert cursor.description is not None and [d[0] for d in cursor.description] == ["id", "v"]
    assert await cursor.fetchall() == [(1, "a"), (2, "b")]
    await cursor.close()
    await conn.close()
    await conn.close()  # idempotent
    with pytest.raises(ValueError, match="no active connection"):
        conn.cursor()
    again = sqlite3.connect(db)
    assert again.execute("SELECT count(*) FROM t").fetchone() == (2,)
    again.close()


async def test_errors_reach_sqlalchemy_as_its_own_exceptions(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE u (k TEXT PRIMARY KEY)"))
            await conn.execute(text("INSERT INTO u (k) VALUES ('x')"))
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO u (k) VALUES ('x')"))
        with pytest.raises(OperationalError):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT * FROM missing"))
        async with engine.connect() as conn:  # the pooled connection survived both
            assert (await conn.execute(text("SELECT count(*) FROM u"))).scalar() == 1
    finally:
        await engine.dispose()


async def test_a_write_waiting_for_another_process_lock_does_not_block_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE w (k INTEGER PRIMARY KEY)"))
        other = sqlite3.connect(str(path), isolation_level=None)  # an admin CLI, say
        other.execute("BEGIN IMMEDIATE")  # holds the write lock
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        async def write() -> None:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO w (k) VALUES (1)"))

        ticking = asyncio.create_task(ticker())
        writing = asyncio.create_task(write())
        await asyncio.sleep(0.3)
        assert not writing.done() and ticks >= 10  # the loop kept running while the write waited
        other.execute("COMMIT")
        await asyncio.wait_for(writing, 5)
        ticking.cancel()
        other.close()
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM w"))).scalar() == 1
    finally:
        await engine.dispose()


async def test_a_lock_held_past_the_wait_fails_with_database_locked(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    setup = sqlite3.connect(str(path))
    setup.execute("CREATE TABLE w (k INTEGER PRIMARY KEY)")
    setup.commit()
    setup.isolation_level = None
    setup.execute("BEGIN IMMEDIATE")
    conn = await sqlite_inline.connect(str(path), lock_wait=0.2)()
    cursor = conn.cursor()
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        await cursor.execute("INSERT INTO w (k) VALUES (?)", (1,))
    assert 0.1 < time.monotonic() - started < 2
    setup.execute("ROLLBACK")
    await cursor.execute("INSERT INTO w (k) VALUES (?)", (2,))  # free again: inline, no wait
    await conn.commit()
    await conn.close()
    setup.close()
