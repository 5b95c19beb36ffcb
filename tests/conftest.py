"""Shared fixtures. `db_kind` runs a test on SQLite and on MariaDB.

`db_url` is a clean database: an empty SQLite file, or - for speed - one MariaDB database
migrated once per session whose rows are wiped before each test (creating and migrating a
MariaDB database costs over a second). Tests of migrations themselves use `fresh_db_url`,
a brand-new empty database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gochat.storage import migrate
from gochat.storage.database import create_engine
from tests.support import (
    LiveServer,
    create_mysql_database,
    database_url,
    drop_mysql_database,
    live_server,
    make_settings,
    wipe_database,
)

# The media tests' fixtures (a SeaweedFS S3 server per session).
pytest_plugins = ["tests.media_fixtures"]

T = TypeVar("T")


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


def run_aside(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on its own thread and loop (callable from inside a loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="session")
def shared_mysql_url() -> Iterator[str]:
    url = run_aside(create_mysql_database())
    run_aside(_migrate(url))
    yield url
    run_aside(drop_mysql_database(url))


@pytest.fixture
async def db_url(db_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    if db_kind == "mysql":
        url: str = request.getfixturevalue("shared_mysql_url")
        await wipe_database(url)
        yield url
        return
    async with database_url(db_kind, tmp_path) as url:
        yield url


@pytest.fixture
async def fresh_db_url(db_kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """A brand-new, empty database (for migration tests)."""
    async with database_url(db_kind, tmp_path) as url:
        yield url


@pytest.fixture
async def migrated_db_url(db_url: str) -> AsyncIterator[str]:
    await _migrate(db_url)
    yield db_url


@pytest.fixture
async def server(db_url: str, tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with live_server(make_settings(db_url, tmp_path)) as live:
        yield live
