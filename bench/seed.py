"""Seed a GoChat database for the benchmarks: real users, sessions and conversations.

Users and sessions are bulk-inserted through GoChat's own table definitions (one argon2 hash
of a known password is shared, so `POST /auth/login` works for every bench user); groups,
direct conversations and the storm's missed messages go through GoChat's services, so the
member, event and sequence rows are exactly what the server would have written. Access
tokens are minted at run time with the server's secret (``mint_tokens``).

Layout (user indexes, in order): scenario a's big group, scenario b's groups, scenario c's
direct pairs, scenario e's storm groups (with ``storm_missed`` messages each after the
cursor the clients hold), then every remaining user in groups of 50 (scenario d connects
everybody).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gochat import ids
from gochat.broker.memory import MemoryBroker
from gochat.clock import SystemClock
from gochat.security.passwords import PasswordHasher
from gochat.security.tokens import TokenCodec
from gochat.services.context import Limits, ServiceContext
from gochat.services.conversations import ConversationService
from gochat.services.messages import MessageService
from gochat.services.publisher import Publisher
from gochat.storage import migrate
from gochat.storage.database import create_engine, is_sqlite
from gochat.storage.rows import to_db_time
from gochat.storage.tables import conversations, sessions, users
from gochat.storage.uow import SqlUnitOfWorkFactory

PASSWORD = "bench-password-1"
REST_GROUP = 50


@dataclass(frozen=True)
class Plan:
    users: int = 20_000
    group_a: int = 1000
    groups_b: int = 100
    group_b_size: int = 10
    directs_c: int = 1000
    storm_groups: int = 250
    storm_group_size: int = 20
    storm_missed: int = 20

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def _fast_sqlite_engine(url: str) -> AsyncEngine:
    """Seeding only: the same schema, without an fsync per commit (the server uses FULL)."""
    engine = create_async_engine(url, pool_size=1, max_overflow=0)

    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=OFF", "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    event.listen(engine.sync_engine, "connect", pragmas)
    return engine


async def seed_database(url: str, plan: Plan, log: Any = print) -> dict[str, Any]:
    engine = _fast_sqlite_engine(url) if is_sqlite(url) else create_engine(url, pool_size=4)
    try:
        return await _seed(engine, plan, log)
    finally:
        await engine.dispose()


async def _seed(engine: AsyncEngine, plan: Plan, log: Any) -> dict[str, Any]:
    t0 = time.perf_counter()
    await migrate.upgrade(engine)
    now = datetime.now(UTC)
    password_hash = await PasswordHasher().hash(PASSWORD)
    user_ids = [ids.new_id() for _ in range(plan.users)]
    session_ids = [ids.new_id() for _ in range(plan.users)]
    tag = hashlib.sha1(str(user_ids[0]).encode()).hexdigest()[:6]
    user_rows = [
        {
            "id": uid,
            "username": f"b{tag}_{i}",
            "username_key": f"b{tag}_{i}",
            "display_name": f"Bench {i}",
            "bio": "",
            "avatar_media_id": None,
            "password_hash": password_hash,
            "presence_hidden": False,
            "created_at": to_db_time(now),
        }
        for i, uid in enumerate(user_ids)
    ]
    expires = now + timedelta(days=365)
    session_rows = [
        {
            "id": sid,
            "user_id": uid,
            "device": "bench",
            "created_at": to_db_time(now),
            "last_used_at": to_db_time(now),
            "expires_at": to_db_time(expires),
            "revoked_at": None,
        }
        for uid, sid in zip(user_ids, session_ids, strict=True)
    ]
    async with engine.begin() as conn:
        for start in range(0, plan.users, 2000):
            await conn.execute(users.insert(), user_rows[start : start + 2000])
            await conn.execute(sessions.insert(), session_rows[start : start + 2000])
    log(f"seed: {plan.users} users and sessions in {time.perf_counter() - t0:.1f}s")

    ctx = ServiceContext(
        SqlUnitOfWorkFactory(engine),
        SystemClock(),
        Publisher(MemoryBroker()),
        Limits(group_max_members=max(1000, plan.group_a)),
    )
    convs = ConversationService(ctx)
    out: dict[str, Any] = {"plan": asdict(plan), "user_ids": user_ids, "session_ids": session_ids}
    cursor = 0

    async def group(members: list[int], title: str) -> int:
        conv = await convs.create_group(user_ids[members[0]], title, [user_ids[m] for m in members[1:]])
        return conv.id

    t1 = time.perf_counter()
    members = list(range(cursor, cursor + plan.group_a))
    out["a"] = {"conv": await group(members, "bench a"), "members": members} if plan.group_a else None
    cursor += plan.group_a
    out["b"] = []
    for g in range(plan.groups_b):
        members = list(range(cursor, cursor + plan.group_b_size))
        out["b"].append({"conv": await group(members, f"bench b {g}"), "members": members})
        cursor += plan.group_b_size
    out["c"] = []
    for _ in range(plan.directs_c):
        conv, _created = await convs.create_direct(user_ids[cursor], user_ids[cursor + 1])
        out["c"].append({"conv": conv.id, "members": [cursor, cursor + 1]})
        cursor += 2
    out["e"] = []
    for g in range(plan.storm_groups):
        members = list(range(cursor, cursor + plan.storm_group_size))
        out["e"].append({"conv": await group(members, f"bench e {g}"), "members": members})
        cursor += plan.storm_group_size
    out["rest"] = []
    while cursor < plan.users:
        members = list(range(cursor, min(cursor + REST_GROUP, plan.users)))
        if len(members) >= 2:
            out["rest"].append({"conv": await group(members, "bench idle"), "members": members})
        cursor += REST_GROUP
    log(f"seed: conversations in {time.perf_counter() - t1:.1f}s")

    if out["e"]:
        t2 = time.perf_counter()
        storm_ids = [g["conv"] for g in out["e"]]
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(conversations.c.id, conversations.c.last_pos).where(conversations.c.id.in_(storm_ids))
            )
            positions = {r.id: int(r.last_pos) for r in rows}
        messages = MessageService(ctx, typing=None)  # type: ignore[arg-type]
        for g in out["e"]:
            g["cursor"] = positions[g["conv"]]
            sender = user_ids[g["members"][0]]
            for k in range(plan.storm_missed):
                await messages.send(
                    sender, g["conv"], f"missed-{g['conv']}-{k}", f"MISSED:{k} while you were away"
                )
        if hasattr(messages, "aclose"):
            await messages.aclose()
        log(f"seed: {len(out['e']) * plan.storm_missed} missed messages in {time.perf_counter() - t2:.1f}s")
    return out


def mint_tokens(seed: dict[str, Any], secret: str, ttl_s: int = 86_400) -> list[str]:
    """An access token per bench user for its seeded session (the server must share ``secret``)."""
    codec = TokenCodec(secret, "gochat", "gochat", ttl_s)
    now = datetime.now(UTC)
    return [codec.issue(u, s, now) for u, s in zip(seed["user_ids"], seed["session_ids"], strict=True)]


def seed_sqlite_cached(
    cache_dir: Path, plan: Plan, fingerprint: str, log: Any = print
) -> tuple[Path, dict[str, Any]]:
    """The seeded SQLite file and its layout, reused while the plan and schema are unchanged."""
    key = hashlib.sha256((plan.key() + fingerprint).encode()).hexdigest()[:16]
    folder = cache_dir / f"sqlite-{key}"
    db, layout = folder / "gochat.db", folder / "seed.json"
    if db.exists() and layout.exists():
        log(f"seed: reusing {folder}")
        return db, json.loads(layout.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("gochat.db*"):
        stale.unlink()
    seed = asyncio.run(seed_database(f"sqlite+aiosqlite:///{db}", plan, log))
    _checkpoint(db)
    layout.write_text(json.dumps(seed))
    return db, seed


def _checkpoint(db: Path) -> None:
    """Fold the WAL into the main file, so a copy of gochat.db alone is the whole database."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
