"""Pinned SQL statement counts on the hot paths: send, retry, history page, sync.

What is counted: every statement the app's engine hands to a DBAPI cursor
(``before_cursor_execute`` on ``app.state.components.engine.sync_engine``) while one request
is served, minus transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE SAVEPOINT,
ROLLBACK TO SAVEPOINT), which depends on the driver and on nesting, not on the query plan.
Connection set-up (SQLite pragmas, MySQL pings) does not go through cursor events and never
shows up. Nothing else touches the database during a measurement: every socket is connected
and drained before, and nobody connects or disconnects during it.

The numbers are exact on purpose: a change that adds a query to a hot path must change them
here, knowingly. Each statement is listed where it is pinned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from tests.integration.chat_helpers import (
    WAIT,
    User,
    WsClient,
    create_group,
    get_conversation,
    history,
    post_message,
    send_rest,
    users,
    ws_connect,
)
from tests.support import LiveServer

TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")

# message.send over WebSocket (authenticated once, at connect), a lone send through the
# group committer (services/send_batch.py; a batch of sends costs the same few statements):
#   1 SELECT messages by (sender, client_msg_id)   - the retry check, for the whole batch
#   2 SELECT members (sender, conversation) pairs  - membership, for the whole batch
#   3 SELECT conversations ... FOR UPDATE          - the row locks, last_seq/last_pos
#   4 UPDATE conversations (last_seq, last_pos)    - one per conversation in the batch
#   5 INSERT messages                              - the batch's messages
#   6 INSERT events                                - their log entries
# (a group message naming @someone adds the mention lookup and the mentions insert)
SEND_NEW = 6
SEND_RETRY = 2  # the retry check and the membership screen; the first message is returned as is
AUTH = 1  # REST only: SELECT sessions for the bearer token
# GET /messages: auth, membership (2), the page, the reactions of the page
HISTORY_PAGE = AUTH + 2 + 1 + 1
# sync: SELECT members (every membership of the user, with the conversation's last pos), then
# per stale conversation holding only new messages: SELECT events, SELECT messages by seqs,
# SELECT reactions of those messages; then the notification badges: SELECT members (muted
# flags), SELECT unread counts, SELECT mention counts.
SYNC_BASE = 1 + 3
SYNC_PER_STALE = 3


class StatementCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(TRANSACTION_CONTROL):
            self.statements.append(" ".join(statement.split())[:100])

    @property
    def count(self) -> int:
        return len(self.statements)


@contextmanager
def counting(server: LiveServer) -> Iterator[StatementCounter]:
    engine = server.app.state.components.engine.sync_engine
    counter = StatementCounter()
    event.listen(engine, "before_cursor_execute", counter)
    try:
        yield counter
    finally:
        event.remove(engine, "before_cursor_execute", counter)


def send_frame(conv: str, client_msg_id: str) -> dict[str, Any]:
    return {
        "type": "message.send",
        "id": client_msg_id,
        "conversation_id": conv,
        "client_msg_id": client_msg_id,
        "body": "hello",
    }


async def test_send_and_retry(server: LiveServer) -> None:
    alice, bob = await users(server, "alice", "bob")
    conv = (await create_group(server, alice, "g", bob))["id"]
    # REST first: a socket closing later would update presence (users.last_seen_at) meanwhile
    with counting(server) as rest_new:
        r = await post_message(server, alice, conv, {"client_msg_id": "r1", "body": "x"})
        assert r.status_code == 201
    assert rest_new.count == AUTH + SEND_NEW, rest_new.statements
    with counting(server) as rest_retry:
        r = await post_message(server, alice, conv, {"client_msg_id": "r1", "body": "x"})
        assert r.status_code == 200
    assert rest_retry.count == AUTH + SEND_RETRY, rest_retry.statements
    async with ws_connect(server, alice) as ws:
        await ws.drain()
        for n in range(3):  # the count does not grow with the conversation
            with counting(server) as new:
                assert (await ws.request(send_frame(conv, f"k{n}")))["type"] == "ack"
            assert new.count == SEND_NEW, new.statements
        with counting(server) as retry:
            assert (await ws.request(send_frame(conv, "k0")))["message"]["seq"] == 2
        assert retry.count == SEND_RETRY, retry.statements


async def test_history_page(server: LiveServer) -> None:
    alice, bob = await users(server, "alice", "bob")
    conv = (await create_group(server, alice, "g", bob))["id"]
    for i in range(12):
        await send_rest(server, bob if i % 2 else alice, conv, f"k{i}", f"m{i}")
    r = await server.http.put(f"/api/v1/conversations/{conv}/messages/3/reactions/👍", headers=bob.headers)
    assert r.status_code == 200
    for params in ({"limit": 10}, {"limit": 200}, {"after_seq": 5, "limit": 3}, {"before_seq": 10}):
        with counting(server) as page:
            messages = await history(server, alice, conv, **params)
        assert messages, params
        assert page.count == HISTORY_PAGE, (params, page.statements)


async def stale_world(
    server: LiveServer, reader: User, writer: User, stale: int, fresh: int, missed: int
) -> dict[str, int]:
    """``stale`` conversations with ``missed`` new messages each and ``fresh`` up-to-date ones."""
    cursors: dict[str, int] = {}
    for i in range(stale + fresh):
        conv = (await create_group(server, writer, f"{reader.name}{i}", reader))["id"]
        cursors[conv] = (await get_conversation(server, reader, conv))["last_pos"]
        if i < stale:
            for m in range(missed):
                await send_rest(server, writer, conv, f"{reader.name}-{i}-{m}", "x")
    return cursors


async def offline(server: LiveServer, user: User) -> None:
    """Wait until the user's last socket has gone and its last_seen_at was written."""
    async with asyncio.timeout(WAIT):
        while True:
            r = await server.http.get("/api/v1/presence", params={"user_ids": user.id}, headers=user.headers)
            [me] = r.json()["presence"]
            if me["status"] == "offline" and me["last_seen_at"] is not None:
                return
            await asyncio.sleep(0.01)


async def counted_sync(
    server: LiveServer, ws: WsClient, cursors: dict[str, int]
) -> tuple[int, list[str], int]:
    """(statements, the statements, replayed messages) for one sync, through its notification."""
    await ws.drain()
    with counting(server) as counter:
        ack = await ws.request({"type": "sync", "id": "s", "cursors": cursors})
        await ws.event("notification")
    assert ack["type"] == "ack" and ack["resync"] == []
    replayed = [o for o in list(ws.inbox) if o["type"] == "message.created"]
    ws.inbox.clear()
    return counter.count, counter.statements, len(replayed)


async def test_sync_costs_a_constant_per_stale_conversation(server: LiveServer) -> None:
    writer, *readers = await users(server, "writer", "reader1", "reader2", "reader3", "reader4")
    scenarios = [  # (reader, stale conversations, up-to-date ones, missed messages in each)
        (readers[0], 1, 0, 1),
        (readers[1], 3, 0, 1),
        (readers[2], 3, 0, 4),  # more missed messages: still one batch per conversation
        (readers[3], 2, 5, 2),  # up-to-date conversations cost nothing
    ]
    for reader, stale, fresh, missed in scenarios:
        cursors = await stale_world(server, reader, writer, stale, fresh, missed)
        async with ws_connect(server, reader) as ws:
            count, statements, replayed = await counted_sync(server, ws, cursors)
        await offline(server, reader)  # its disconnect's presence update is done
        assert replayed == stale * missed
        assert count == SYNC_BASE + SYNC_PER_STALE * stale, (reader.name, statements)
