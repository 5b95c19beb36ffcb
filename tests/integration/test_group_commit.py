"""Group commit: concurrent sends share transactions without bending any guarantee."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import event

from gochat.config import Settings
from gochat.domain.models import Message
from gochat.errors import InvalidRequest, NotFound
from gochat.services.registry import Services
from tests.support import LiveServer, live_server, make_settings


async def make_users(server: LiveServer, *names: str) -> list[int]:
    ids = []
    for name in names:
        r = await server.http.post(
            "/api/v1/auth/register", json={"username": name, "password": "password123"}
        )
        assert r.status_code == 201, r.text
        ids.append(int(r.json()["id"]))
    return ids


def services(server: LiveServer) -> Services:
    found: Services = server.app.state.services
    return found


async def test_concurrent_sends_get_gapless_seqs_in_every_conversation(server: LiveServer) -> None:
    a, b, c = await make_users(server, "gc_a", "gc_b", "gc_c")
    svc = services(server)
    group = await svc.conversations.create_group(a, "g", [b, c])
    direct, _ = await svc.conversations.create_direct(a, b)
    sends = [
        svc.messages.send(sender, conv.id, f"{sender}-{conv.id}-{i}", f"hello {i}")
        for i in range(60)
        for sender in (a, b)
        for conv in (group, direct)
    ] + [svc.messages.send(c, group.id, f"c-{i}", "from c") for i in range(60)]
    results = await asyncio.gather(*sends)
    assert all(created for _, created in results)
    for conv, expected in ((group, 180), (direct, 120)):
        seqs = sorted(m.seq for m, _ in results if m.conversation_id == conv.id)
        assert seqs == list(range(1, expected + 1))
        page = await svc.messages.history(a, conv.id, None, None, 200)
        assert [m.seq for m in page] == list(range(1, expected + 1))
        assert len({m.pos for m in page}) == expected


async def test_the_same_client_msg_id_twice_in_one_batch_makes_one_message(server: LiveServer) -> None:
    a, b = await make_users(server, "tw_a", "tw_b")
    svc = services(server)
    conv, _ = await svc.conversations.create_direct(a, b)
    results = await asyncio.gather(*(svc.messages.send(a, conv.id, "same-id", "once") for _ in range(20)))
    messages = {m.id for m, _ in results}
    assert len(messages) == 1
    assert sum(1 for _, created in results if created) == 1
    assert [m.seq for m in await svc.messages.history(a, conv.id, None, None, 50)] == [1]


async def test_a_refused_item_leaves_no_gap_for_the_rest_of_its_batch(server: LiveServer) -> None:
    a, b, outsider = await make_users(server, "rf_a", "rf_b", "rf_out")
    svc = services(server)
    conv, _ = await svc.conversations.create_direct(a, b)
    await svc.messages.send(a, conv.id, "first", "first")
    attempts = [
        svc.messages.send(a, conv.id, "ok-1", "fine"),
        svc.messages.send(outsider, conv.id, "intruder", "let me in"),
        svc.messages.send(b, conv.id, "bad-reply", "reply to the future", reply_to_seq=99),
        svc.messages.send(b, conv.id, "ok-2", "reply to the first", reply_to_seq=1),
    ]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    assert isinstance(results[1], NotFound)
    assert isinstance(results[2], InvalidRequest)
    assert [m.seq for m in await svc.messages.history(a, conv.id, None, None, 50)] == [1, 2, 3]


async def test_a_batch_costs_a_constant_number_of_statements(server: LiveServer) -> None:
    a, b = await make_users(server, "st_a", "st_b")
    svc = services(server)
    conv, _ = await svc.conversations.create_direct(a, b)
    await svc.messages.send(a, conv.id, "warm-up", "warm")  # the committer's worker is running
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.split()[0].upper())

    engine = server.app.state.components.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        results = await asyncio.gather(*(svc.messages.send(a, conv.id, f"m{i}", "x") for i in range(100)))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert all(created for _, created in results)
    data = [s for s in statements if s in ("SELECT", "INSERT", "UPDATE")]
    # 100 messages: existing + members + lock + one UPDATE + messages + events per batch; the
    # first send commits alone, the other 99 share the next batch.
    assert len(data) <= 2 * 6, statements


async def test_overlapping_batches_of_several_workers_keep_seqs_gapless(db_url: str, tmp_path: Path) -> None:
    """Three committers in flight at once (MariaDB: row locks serialise each conversation;
    SQLite: its one pooled connection serialises the batches): nothing lost, nothing doubled."""
    async with live_server(make_settings(db_url, tmp_path, commit_workers=3)) as server:
        a, b, c = await make_users(server, "ow_a", "ow_b", "ow_c")
        svc = services(server)
        group = await svc.conversations.create_group(a, "g", [b, c])
        direct, _ = await svc.conversations.create_direct(a, b)
        committer = svc.messages._committer
        real_write, in_flight, most = committer._write, 0, 0

        async def counting_write(batch: list[Any]) -> Any:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            try:
                return await real_write(batch)
            finally:
                in_flight -= 1

        committer._write = counting_write  # type: ignore[method-assign]
        pending: list[asyncio.Task[tuple[Message, bool]]] = []
        for wave in range(12):  # waves, so later batches start while earlier ones still commit
            for sender, conv in ((a, group), (b, group), (c, group), (a, direct), (b, direct)):
                for i in range(5):
                    send = svc.messages.send(sender, conv.id, f"{sender}-{conv.id}-{wave}-{i}", "hi")
                    pending.append(asyncio.ensure_future(send))
            await asyncio.sleep(0)
        retries = [svc.messages.send(a, group.id, f"{a}-{group.id}-0-0", "hi") for _ in range(5)]
        results = await asyncio.gather(*pending, *retries)
        assert sum(created for _, created in results) == len(pending)
        first = results[0][0]
        assert all(m.id == first.id and not created for m, created in results[len(pending) :])
        assert most >= 2  # the batches did overlap
        for conv, expected in ((group, 180), (direct, 120)):
            page = await svc.messages.history(a, conv.id, None, None, 200)
            assert [m.seq for m in page] == list(range(1, expected + 1))
            assert len({m.pos for m in page}) == expected


def test_commit_workers_default_to_one_on_sqlite_and_two_on_a_server_database(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).effective_commit_workers == 1
    mysql = "mysql+asyncmy://root@127.0.0.1/test"
    assert Settings(data_dir=tmp_path, database_url=mysql).effective_commit_workers == 2
    assert Settings(data_dir=tmp_path, database_url=mysql, commit_workers=4).effective_commit_workers == 4
