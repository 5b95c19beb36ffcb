"""The embedded SQLite connection: statements inline, commit and close on the disk thread."""

from __future__ import annotations

import sqlite3
import threading
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
