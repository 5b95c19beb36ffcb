"""Shared fixtures. `db_kind` runs a test on SQLite and on MariaDB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gochat.storage import migrate
from gochat.storage.database import create_engine
from tests.support import LiveServer, database_url, live_server, make_settings


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def db_url(db_kind: str, tmp_path: Path) -> AsyncIterator[str]:
    async with database_url(db_kind, tmp_path) as url:
        yield url


@pytest.fixture
async def migrated_db_url(db_url: str) -> AsyncIterator[str]:
    engine = create_engine(db_url)
    await migrate.upgrade(engine)
    await engine.dispose()
    yield db_url


@pytest.fixture
async def server(db_url: str, tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with live_server(make_settings(db_url, tmp_path)) as live:
        yield live
