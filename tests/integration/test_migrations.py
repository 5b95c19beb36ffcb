"""Schema migrations and text storage, on SQLite and on MariaDB.

Upgrade from empty, downgrade, upgrade again (and step by step); the migrated schema is
exactly what the code queries (tables.py); every script and emoji round-trips, MySQL tables
being utf8mb4 even in a database whose default is not.
"""

# Characters of every script, look-alikes included, are the point of these tests.
# ruff: noqa: RUF001

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gochat.storage import migrate
from gochat.storage.database import create_engine
from gochat.storage.tables import metadata, users
from tests.support import MYSQL_URL, drop_mysql_database, live_server, make_settings, service_missing

API = "/api/v1"
APP_TABLES = set(metadata.tables)


def revisions() -> list[str]:
    """Every revision from the first to the head, in order."""
    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS_DIR))
    script = ScriptDirectory.from_config(config)
    assert len(script.get_heads()) == 1, f"migrations have several heads: {script.get_heads()}"
    return [r.revision for r in reversed(list(script.walk_revisions("base", "heads")))]


async def tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        names: list[str] = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    return set(names) - {"alembic_version"}


async def drift(engine: AsyncEngine) -> list[Any]:
    """Differences between the migrated database and the tables the code is written against."""
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), metadata
            )
        )


@pytest.fixture
async def engine(fresh_db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(fresh_db_url)
    yield engine
    await engine.dispose()


async def test_upgrade_from_empty_downgrade_and_upgrade_again(engine: AsyncEngine) -> None:
    head = revisions()[-1]
    assert await migrate.current_revision(engine) is None
    assert await tables(engine) == set()

    await migrate.upgrade(engine)
    assert await migrate.current_revision(engine) == head
    assert await tables(engine) == APP_TABLES
    assert await drift(engine) == []

    await migrate.upgrade(engine)  # idempotent: at head, nothing to do
    assert await migrate.current_revision(engine) == head

    await migrate.downgrade(engine, "base")
    assert await migrate.current_revision(engine) is None
    assert await tables(engine) == set()

    await migrate.upgrade(engine)
    assert await migrate.current_revision(engine) == head
    assert await tables(engine) == APP_TABLES
    assert await drift(engine) == []


async def test_each_migration_steps_up_and_down(engine: AsyncEngine) -> None:
    seen: list[set[str]] = [set()]
    for revision in revisions():
        await migrate.upgrade(engine, revision)
        assert await migrate.current_revision(engine) == revision
        seen.append(await tables(engine))
        assert seen[-1] >= seen[-2], f"{revision} dropped tables"
    for revision, expected in zip(reversed([None, *revisions()[:-1]]), reversed(seen[:-1]), strict=True):
        await migrate.downgrade(engine, revision or "base")
        assert await migrate.current_revision(engine) == revision
        assert await tables(engine) == expected, f"downgrade to {revision}"


async def test_data_survives_a_restart_of_the_schema_tooling(fresh_db_url: str, tmp_path: Path) -> None:
    db_url = fresh_db_url
    """Migrating an up-to-date database (every start of an embedded server does) keeps the data."""
    settings = make_settings(db_url, tmp_path)
    async with live_server(settings) as server:
        r = await server.http.post(
            f"{API}/auth/register", json={"username": "alice", "password": "password123"}
        )
        assert r.status_code == 201
    async with live_server(settings) as server:
        r = await server.http.post(f"{API}/auth/login", json={"username": "alice", "password": "password123"})
        assert r.status_code == 200, r.text


# -- text round trips ---------------------------------------------------------------------

SCRIPTS = {
    "emoji with skin tone": "👋🏽 😀 🚀",
    "zwj family": "👨\u200d👩\u200d👧\u200d👦",
    "flag with tag characters": "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
    "CJK": "你好，世界 こんにちは 안녕하세요",
    "CJK extension B (4-byte UTF-8)": "𠀋𠀍𠀎𪚥",
    "Arabic": "مرحبا بالعالم",
    "Hebrew with points": "שָׁלוֹם",
    "Devanagari": "नमस्ते दुनिया",
    "Thai": "สวัสดีชาวโลก",
    "combining marks without precomposed forms": "q\u0303 x\u0323\u0301",
    "decomposed accents (stored as NFC)": "Zoe\u0308 cafe\u0301",
    "mathematical letters": "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "64 four-byte characters": "😀" * 64,
}


async def test_any_script_round_trips_through_display_name_and_bio(db_url: str, tmp_path: Path) -> None:
    async with live_server(make_settings(db_url, tmp_path)) as server:
        http = server.http
        for i, (sample, value) in enumerate(SCRIPTS.items()):
            expected = unicodedata.normalize("NFC", value)
            bio = unicodedata.normalize("NFC", f"{value}\n{value}")
            body = {"username": f"writer{i}", "password": "password123", "display_name": value}
            r = await http.post(f"{API}/auth/register", json=body)
            assert r.status_code == 201, (sample, r.text)
            assert r.json()["display_name"] == expected, sample
            r = await http.post(f"{API}/auth/login", json=body)
            headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
            r = await http.patch(f"{API}/users/me", json={"bio": f"{value}\n{value}"}, headers=headers)
            assert r.status_code == 200, (sample, r.text)

            r = await http.get(f"{API}/users/me", headers=headers)
            assert (r.json()["display_name"], r.json()["bio"]) == (expected, bio), sample
            async with server.app.state.components.engine.connect() as conn:
                query = select(users.c.display_name, users.c.bio).where(users.c.username == f"writer{i}")
                row = (await conn.execute(query)).one()
            # the characters in the database, not an echo of the request
            assert (row.display_name, row.bio) == (expected, bio), sample


# -- MySQL specifics ----------------------------------------------------------------------------


@pytest.fixture
async def latin1_mysql_url() -> AsyncIterator[str]:
    """A MariaDB database whose default character set is NOT utf8mb4."""
    import secrets

    base = make_url(MYSQL_URL)
    name = f"gochat_l1_{secrets.token_hex(4)}"
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET latin1")
    except Exception as exc:
        service_missing("MariaDB", repr(exc))
    finally:
        await admin.dispose()
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        await drop_mysql_database(url)


@pytest.mark.mysql
async def test_mysql_tables_are_utf8mb4_whatever_the_database_default(latin1_mysql_url: str) -> None:
    engine = create_engine(latin1_mysql_url)
    try:
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME != 'alembic_version'"
                )
            )
            collations = {r[0]: r[1] for r in rows}
            rows = await conn.execute(
                text(
                    "SELECT TABLE_NAME, COLUMN_NAME, CHARACTER_SET_NAME FROM information_schema.COLUMNS "
                    "WHERE TABLE_SCHEMA = DATABASE() AND CHARACTER_SET_NAME IS NOT NULL "
                    "AND TABLE_NAME != 'alembic_version'"
                )
            )
            charsets = {f"{r[0]}.{r[1]}": r[2] for r in rows}
        assert set(collations) == APP_TABLES
        assert set(collations.values()) == {"utf8mb4_bin"}, collations
        assert "users.display_name" in charsets
        assert set(charsets.values()) == {"utf8mb4"}, charsets
    finally:
        await engine.dispose()
