"""End-to-end: real `gochat serve` processes, real sockets, the public client, no fakes.

Each test runs on the embedded SQLite default and on MariaDB. What they prove is the
contract's five guarantees as a user sees them: acked messages survive crashes, retries
never duplicate, every member sees one gapless order, slow sockets cannot slow others down,
and sessions and shutdown close sockets with the documented codes.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import re
import secrets
import signal
import socket
import statistics
import struct
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from gochat.client import ClientClosed, GoChatClient, ReconnectPolicy, RequestFailed
from gochat.security.tokens import TokenCodec
from gochat.storage import migrate
from gochat.storage.database import create_engine
from tests.support import (
    TEST_SECRET,
    ServeProcess,
    create_mysql_database,
    drop_mysql_database,
    serve_process,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

Json = dict[str, Any]
PASSWORD = "correct horse battery"
FAST_RECONNECT = ReconnectPolicy(initial_delay=0.05, max_delay=0.5)
SEED = int(os.environ.get("GOCHAT_E2E_SEED", "20261130"))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def serve_db(db_kind: str, request: pytest.FixtureRequest) -> str | None:
    """None for the embedded SQLite default; otherwise the suite's clean, migrated MariaDB."""
    if db_kind == "sqlite":
        return None
    url: str = request.getfixturevalue("migrated_db_url")
    return url


@contextmanager
def gochat(tmp_path: Path, db: str | None, **env: str) -> Iterator[ServeProcess]:
    with serve_process(tmp_path, db_url=db, GOCHAT_RATE_LIMITS_ENABLED="false", **env) as server:
        yield server


def run_aside(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine on its own thread and loop (the fixtures below are synchronous)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


async def migrate_database(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def shared_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeProcess]:
    """One server per database for the tests that neither restart it nor need settings.

    Starting `gochat serve` costs seconds, so tests b, c, e and f share it (each with its
    own users). MariaDB gets its own database: the per-test `db_url` wipe must not reach it.
    """
    tmp = tmp_path_factory.mktemp("shared")
    if request.param == "sqlite":
        with gochat(tmp, None) as server:
            yield server
        return
    url = ""

    async def create() -> None:
        nonlocal url
        url = await create_mysql_database()
        await migrate_database(url)

    run_aside(create())
    try:
        with gochat(tmp, url) as server:
            yield server
    finally:
        run_aside(drop_mysql_database(url))


@pytest.fixture
def shared(shared_server: ServeProcess) -> ServeProcess:
    if shared_server.proc is None or shared_server.proc.poll() is not None:
        shared_server.start()  # an earlier test took it down: later tests still get a server
    return shared_server


@pytest.fixture
async def clients() -> AsyncIterator[AsyncExitStack]:
    """Every client a test makes is closed (all its tasks awaited) at the end."""
    async with AsyncExitStack() as stack:
        yield stack


async def new_user(stack: AsyncExitStack, server: ServeProcess, name: str) -> GoChatClient:
    client = await device(stack, server)
    await client.register(name, PASSWORD)
    await client.login(name, PASSWORD)
    return client


async def device(stack: AsyncExitStack, server: ServeProcess, name: str | None = None) -> GoChatClient:
    """A client (one device); logged in as ``name`` when given."""
    client = GoChatClient(server.base_url, reconnect=FAST_RECONNECT, request_timeout=5.0)
    stack.push_async_callback(client.close)
    if name is not None:
        await client.login(name, PASSWORD)
    return client


async def restart(server: ServeProcess, sig: int) -> None:
    """Stop the process with ``sig`` and start it again on the same port and data."""
    await asyncio.to_thread(server.stop, sig)
    await asyncio.to_thread(server.start)


def has_all(client: GoChatClient, conv_id: str, count: int) -> bool:
    view = client.views.get(conv_id)
    return view is not None and view.contiguous_seq >= count


def summary(messages: list[Json]) -> list[tuple[Any, ...]]:
    return [(m["seq"], m["id"], m["sender_id"], m["client_msg_id"], m["body"]) for m in messages]


def assert_gapless(messages: list[Json], count: int) -> None:
    assert [m["seq"] for m in messages] == list(range(1, count + 1))
    assert len({m["id"] for m in messages}) == count
    assert len({(m["sender_id"], m["client_msg_id"]) for m in messages}) == count


async def until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------- a. chaos


async def test_a_thousand_messages_survive_dropped_sockets_and_a_server_crash(
    serve_db: str | None, tmp_path: Path, clients: AsyncExitStack
) -> None:
    rng = random.Random(SEED)
    # A small replay limit: the devices that were away catch up through resync_required.
    with gochat(tmp_path, serve_db, GOCHAT_SYNC_REPLAY_LIMIT="200") as server:
        alice = await new_user(clients, server, "alice")
        bob = await new_user(clients, server, "bob")
        tablet = await device(clients, server, "bob")  # bob's second device, offline meanwhile
        for client in (alice, bob, tablet):
            await client.connect()
        conv = (await alice.create_direct(str(bob.user_id)))["id"]
        await tablet.wait_for(lambda: tablet.cursor(conv) is not None, timeout=10)
        await tablet.disconnect()

        acked: list[Json] = []
        per_sender = 500
        killed_at: list[int] = []

        async def send_all(client: GoChatClient, tag: str) -> None:
            window = asyncio.Semaphore(16)

            async def one(i: int) -> None:
                async with window:
                    acked.append(await client.send(conv, f"{tag} {i}", timeout=50))

            await asyncio.gather(*(one(i) for i in range(per_sender)))

        done = asyncio.Event()

        async def chaos() -> None:
            # Never cancelled mid-restart (a thread cannot be cancelled): it checks ``done``.
            # Drops follow progress (every 30-70 acks), not the clock, so a fast server gets as
            # many as a slow one.
            next_drop = rng.randint(30, 70)
            while not done.is_set():
                await asyncio.sleep(0.01)
                if len(acked) >= next_drop:
                    next_drop += rng.randint(30, 70)
                    rng.choice([alice, bob]).drop_connection()
                if not killed_at and len(acked) >= 350:
                    killed_at.append(len(acked))
                    await restart(server, signal.SIGKILL)

        started = time.monotonic()
        chaos_task = asyncio.create_task(chaos())
        try:
            await asyncio.gather(send_all(alice, "alice"), send_all(bob, "bob"))
        finally:
            done.set()
            await chaos_task
        elapsed = time.monotonic() - started

        total = 2 * per_sender
        assert killed_at and killed_at[0] < total, "the server was not killed mid-run"
        assert len(acked) == total
        drops = [c for c in alice.close_codes + bob.close_codes if c == 1006]
        assert len(drops) >= 5, f"too few abrupt disconnects to mean anything: {drops}"

        database = await alice.history_all(conv)
        assert_gapless(database, total)
        assert await bob.history_all(conv) == database
        by_seq = {m["seq"]: m for m in database}
        for message in acked:  # every acked message is in the database, exactly as acked
            stored = by_seq[message["seq"]]
            assert (stored["id"], stored["client_msg_id"], stored["body"]) == (
                message["id"],
                message["client_msg_id"],
                message["body"],
            )
        assert len({m["id"] for m in acked}) == total

        # Back online after 1,000 messages: past the replay limit, so resync_required and the
        # history route; a brand-new device (no cursors) gets there the same way.
        await tablet.connect()
        fresh = await device(clients, server, "bob")
        await fresh.connect()
        last_pos = (await alice.conversation(conv))["last_pos"]
        for client in (alice, bob, tablet, fresh):
            await client.wait_for(
                lambda c=client: has_all(c, conv, total) and (c.cursor(conv) or 0) >= last_pos, timeout=30
            )
            assert summary(client.messages(conv)) == summary(database)
        for client in (tablet, fresh):
            assert "resync_required" in {e["type"] for e in client.drain_events()}
        print(f"\n[a] {total} messages in {elapsed:.1f} s; {len(drops)} client drops; killed at {killed_at}")


# --------------------------------------------------------------------------- b. one order


async def test_b_concurrent_senders_in_a_group_see_one_gapless_order(
    shared: ServeProcess, clients: AsyncExitStack
) -> None:
    server = shared
    members = [await new_user(clients, server, f"b_member{i}") for i in range(5)]
    owner = members[0]
    for member in members:
        await member.connect()
    group = (await owner.create_group("busy", [str(m.user_id) for m in members[1:]]))["id"]
    for member in members:
        await member.wait_for(lambda m=member: m.cursor(group) is not None, timeout=10)

    async def send_100(client: GoChatClient, n: int) -> list[Json]:
        window = asyncio.Semaphore(10)

        async def one(i: int) -> Json:
            async with window:
                return await client.send(group, f"m{n}-{i}", timeout=40)

        return list(await asyncio.gather(*(one(i) for i in range(100))))

    started = time.monotonic()
    acked = await asyncio.gather(*(send_100(m, n) for n, m in enumerate(members)))
    elapsed = time.monotonic() - started

    database = await owner.history_all(group)
    assert_gapless(database, 500)
    assert {m["id"] for batch in acked for m in batch} == {m["id"] for m in database}
    for member in members:
        await member.wait_for(lambda m=member: has_all(m, group, 500), timeout=20)
        assert summary(member.messages(group)) == summary(database)
    # Each sender's acks came back with the seqs the database holds.
    for batch in acked:
        assert all(database[m["seq"] - 1]["id"] == m["id"] for m in batch)
    print(f"\n[b] 5 x 100 concurrent sends in {elapsed:.1f} s")


# --------------------------------------------------------------------------- c. idempotency


async def test_c_retries_of_one_client_msg_id_create_one_message(
    shared: ServeProcess, clients: AsyncExitStack
) -> None:
    server = shared
    alice = await new_user(clients, server, "c_alice")
    bob = await new_user(clients, server, "c_bob")
    await alice.connect()
    conv = (await alice.create_direct(str(bob.user_id)))["id"]

    first = await alice.send(conv, "once", client_msg_id="same-1")
    again = await alice.send(conv, "once", client_msg_id="same-1")
    assert again["id"] == first["id"] and again["seq"] == first["seq"]

    # Concurrent duplicates race inside the server: still one message.
    racing = await asyncio.gather(*(alice.send(conv, "race", client_msg_id="same-2") for _ in range(8)))
    assert len({m["id"] for m in racing}) == 1

    # A retry after a reconnect, and the same id over REST.
    alice.drop_connection()
    after_drop = await alice.send(conv, "once", client_msg_id="same-1")
    assert after_drop["id"] == first["id"]
    over_rest = await alice.send_rest(conv, "once", client_msg_id="same-1")
    assert over_rest["id"] == first["id"]
    raw = await alice.http.post(
        f"/api/v1/conversations/{conv}/messages",
        json={"client_msg_id": "same-1", "body": "once"},
        headers={"Authorization": f"Bearer {alice.access_token}"},
    )
    assert raw.status_code == 200 and raw.json()["id"] == first["id"]

    # REST first, then the socket.
    created = await alice.http.post(
        f"/api/v1/conversations/{conv}/messages",
        json={"client_msg_id": "same-3", "body": "rest first"},
        headers={"Authorization": f"Bearer {alice.access_token}"},
    )
    assert created.status_code == 201
    assert (await alice.send(conv, "rest first", client_msg_id="same-3"))["id"] == created.json()["id"]

    # The connection dies right after the frame went out, before the ack could arrive:
    # the client re-sends the same id on the next connection.
    for i in range(5):
        pending = asyncio.create_task(alice.send(conv, f"cut {i}", client_msg_id=f"cut-{i}", timeout=20))
        await asyncio.sleep(0.002 * i)
        alice.drop_connection()
        await pending

    # Another user may use the same client_msg_id: ids are per sender.
    bobs = await bob.send_rest(conv, "mine", client_msg_id="same-1")
    assert bobs["id"] != first["id"]

    database = await alice.history_all(conv)
    ids = [m["client_msg_id"] for m in database if m["sender_id"] == alice.user_id]
    assert sorted(ids) == sorted({"same-1", "same-2", "same-3", *(f"cut-{i}" for i in range(5))})
    assert_gapless(database, len(database))


# --------------------------------------------------------------------------- d. slow reader


class SlowReader:
    """A raw WebSocket that authenticates on the upgrade and then does not read.

    Only the server side buffers what it does not read: its kernel socket buffer, then the
    transport buffer that the 4008 bound applies to.
    """

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        # A small MSS keeps the server's kernel send buffer small (it grows with MSS x cwnd,
        # and loopback's 64 KiB MSS lets it reach MiBs), so the flood can be short.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1400)
        self.sock.setblocking(False)

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.sock_connect(self.sock, ("127.0.0.1", self.port))
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        request = (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {self.token}\r\n\r\n"
        )
        await loop.sock_sendall(self.sock, request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await loop.sock_recv(self.sock, 1)
            assert chunk, "the server closed during the handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head

    async def read_to_end(self, timeout: float) -> tuple[int | None, str]:
        """Read everything now; return (close code found, how the stream ended).

        In a thread, so the busy event loop of the other clients cannot slow the read down
        (the server resets a peer that has not read its close frame within 2 s).
        """
        return await asyncio.to_thread(self._read_blocking, timeout)

    def _read_blocking(self, timeout: float) -> tuple[int | None, str]:
        data = bytearray()
        ending = "eof"
        self.sock.setblocking(True)
        self.sock.settimeout(timeout)
        try:
            while chunk := self.sock.recv(1 << 20):
                data += chunk
        except ConnectionResetError:
            ending = "reset"
        except TimeoutError:
            ending = "still open"
        return close_code_in(bytes(data)), ending

    def close(self) -> None:
        self.sock.close()


def close_code_in(stream: bytes) -> int | None:
    """Walk the server's (unmasked) frames; the code of a close frame, if one is complete."""
    i = 0
    while i + 2 <= len(stream):
        opcode, length = stream[i] & 0x0F, stream[i + 1] & 0x7F
        i += 2
        if length == 126:
            (length,) = struct.unpack_from("!H", stream, i)
            i += 2
        elif length == 127:
            (length,) = struct.unpack_from("!Q", stream, i)
            i += 8
        if i + length > len(stream):
            return None
        if opcode == 0x8 and length >= 2:
            return int(struct.unpack_from("!H", stream, i)[0])
        i += length
    return None


async def open_sockets(server: ServeProcess) -> float:
    response = await asyncio.to_thread(httpx.get, server.base_url + "/metrics", timeout=5)
    found = re.search(r"^gochat_ws_connections (\S+)$", response.text, re.MULTILINE)
    assert found, "gochat_ws_connections missing from /metrics"
    return float(found.group(1))


async def test_d_a_reader_that_stops_reading_is_closed_and_slows_nobody(
    serve_db: str | None, tmp_path: Path, clients: AsyncExitStack
) -> None:
    # Big messages fill the buffers in a few dozen sends. The bound is 256 KiB, not less: the
    # server also drops a socket whose payloads queued in ONE loop tick exceed it, and a tick
    # may carry several of these 30 KB messages.
    settings = {"GOCHAT_WS_SEND_BUFFER_BYTES": "262144", "GOCHAT_MESSAGE_MAX_CHARS": "30000"}
    with gochat(tmp_path, serve_db, **settings) as server:
        flooder = await new_user(clients, server, "flooder")
        prober = await new_user(clients, server, "prober")
        healthy = await new_user(clients, server, "healthy")
        stuck = await new_user(clients, server, "stuck")
        for client in (flooder, prober, healthy):
            await client.connect()
        others = [str(c.user_id) for c in (prober, healthy, stuck)]
        group = (await flooder.create_group("flood", others))["id"]
        await healthy.wait_for(lambda: healthy.cursor(group) is not None, timeout=10)

        slow = SlowReader(server.port, str(stuck.access_token))
        await slow.open()
        deadline = time.monotonic() + 5
        while await open_sockets(server) < 4:
            assert time.monotonic() < deadline, "the slow socket was not attached"
            await asyncio.sleep(0.05)

        received: dict[str, float] = {}

        async def watch() -> None:
            while True:
                event = await healthy.next_event("message.created", timeout=60)
                received.setdefault(event["message"]["client_msg_id"], time.perf_counter())

        async def probe(tag: str, latencies: list[float], stop: asyncio.Event, at_least: int = 0) -> None:
            i = 0
            while not stop.is_set() or i < at_least:
                cmid = f"{tag}-{i}"
                sent = time.perf_counter()
                await prober.send(group, "probe", client_msg_id=cmid)
                await until(lambda c=cmid: c in received, 5, f"probe {cmid} at the healthy member")
                latencies.append(received[cmid] - sent)
                i += 1
                await asyncio.sleep(0.02)

        body = "x" * 30_000
        flood_done = asyncio.Event()
        flooded = 0

        async def flood() -> None:
            nonlocal flooded

            async def lane() -> None:
                nonlocal flooded
                while not flood_done.is_set():
                    await flooder.send(group, body)
                    flooded += 1

            await asyncio.gather(*(lane() for _ in range(4)))

        before: list[float] = []
        during: list[float] = []
        watcher = asyncio.create_task(watch())
        try:
            no_more = asyncio.Event()
            no_more.set()
            await probe("before", before, no_more, at_least=15)
            stuck_open = asyncio.Event()
            flood_task = asyncio.create_task(flood())
            probing = asyncio.create_task(probe("during", during, stuck_open))
            try:
                # Flood until the server drops the stuck socket, probing the healthy one meanwhile.
                deadline = time.monotonic() + 30
                while await open_sockets(server) > 3:
                    assert time.monotonic() < deadline, f"slow socket still open after {flooded} messages"
                    await asyncio.sleep(0.05)
                stuck_open.set()
                # ... and it was the stuck socket that went, not one of ours.
                assert [c.close_codes for c in (flooder, prober, healthy)] == [[], [], []]
                dropped_after = flooded
                # Read at once: the server resets a peer that has not answered its close in 2 s.
                code, ending = await slow.read_to_end(timeout=10)
            finally:
                stuck_open.set()
                flood_done.set()
                await asyncio.gather(flood_task, probing)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            slow.close()

        # The close frame is read unless the server's reset (2 s after its close) won the race.
        assert code == 4008 or (code is None and ending == "reset"), (code, ending)
        assert healthy.close_codes == [] and prober.close_codes == [] and flooder.close_codes == []
        # Not dropped before the bound could fill, and the healthy member was measured meanwhile.
        assert dropped_after * len(body) > 262_144 and len(during) >= 3, (dropped_after, during)
        p50_before, p50_during = statistics.median(before), statistics.median(during)
        assert p50_during < 1.0, (p50_before, p50_during)
        total = (await healthy.conversation(group))["last_seq"]
        await healthy.wait_for(lambda: has_all(healthy, group, total), timeout=20)
        print(
            f"\n[d] slow socket dropped after {dropped_after} x 30 KB (close code {code}, {ending}); "
            f"healthy p50 {p50_before * 1000:.1f} ms before, {p50_during * 1000:.1f} ms during "
            f"({len(during)} probes)"
        )


# --------------------------------------------------------------------------- e. devices


async def test_e_two_devices_see_everything_and_membership_changes(
    shared: ServeProcess, clients: AsyncExitStack
) -> None:
    server = shared
    phone = await new_user(clients, server, "e_carol")
    laptop = await device(clients, server, "e_carol")
    dave = await new_user(clients, server, "e_dave")
    for client in (phone, laptop, dave):
        await client.connect()
    assert phone.session_id != laptop.session_id

    direct = (await dave.create_direct(str(phone.user_id)))["id"]
    for client in (phone, laptop):
        created = await client.next_event("conversation.created", timeout=5)
        assert created["conversation"]["id"] == direct

    sent = await phone.send(direct, "from my phone")
    for client in (phone, laptop, dave):  # my own send reaches my other device too
        event = await client.next_event("message.created", timeout=5)
        assert event["message"]["id"] == sent["id"]
    from_dave = await dave.send(direct, "hello carol")
    for client in (phone, laptop):
        assert (await client.next_event("message.created", timeout=5))["message"]["id"] == from_dave["id"]

    group = (await dave.create_group("team", []))["id"]
    await dave.add_members(group, [str(phone.user_id)])
    for client in (phone, laptop):
        created = await client.next_event("conversation.created", timeout=5)
        assert created["conversation"]["id"] == group
        assert str(phone.user_id) in {m["user_id"] for m in created["conversation"]["members"]}
    in_group = await dave.send(group, "welcome")
    for client in (phone, laptop):
        event = await client.next_event("message.created", timeout=5)
        assert event["message"]["id"] == in_group["id"]

    await dave.remove_member(group, str(phone.user_id))
    for client in (phone, laptop):
        left = await client.next_event("member.left", timeout=5)
        assert (left["conversation_id"], left["user_id"]) == (group, phone.user_id)
        await client.wait_for(lambda c=client: not c.view(group).active, timeout=5)
        client.drain_events()

    unseen = await dave.send(group, "after you left")
    marker = await dave.send(direct, "marker")
    # The group message was published before the marker (same node, acked first): once
    # the marker arrived, the group message would have arrived too if it were delivered.
    for client in (phone, laptop):
        event = await client.next_event("message.created", timeout=5)
        assert event["message"]["id"] == marker["id"]
        assert unseen["id"] not in {m["id"] for m in client.messages(group)}
        assert all(e.get("conversation_id") != group for e in client.drain_events())
    with pytest.raises(Exception) as refused:
        await phone.history(group)
    assert getattr(refused.value, "status", None) == 404


# --------------------------------------------------------------------------- f. sessions


def mint_access_token(user_id: str, session_id: str, expires_in: float) -> str:
    """An access token signed like the server's, expiring ``expires_in`` s from now.

    Lets the test see expiry without waiting the 30 s minimum TTL; the server's
    verification and the socket's expiry timer are the real ones.
    """
    ttl = 900
    codec = TokenCodec(TEST_SECRET, "gochat", "gochat", ttl)
    issued = datetime.now(UTC) - timedelta(seconds=ttl - expires_in)
    return codec.issue(int(user_id), int(session_id), issued)


async def raw_close_code(server: ServeProcess, token: str, timeout: float) -> tuple[int | None, float]:
    """Connect, authenticate with ``token``, read until closed: (close code, seconds open)."""
    started = time.monotonic()
    async with ws_connect(server.ws_url, compression=None) as ws:
        await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
        try:
            async with asyncio.timeout(timeout):
                async for _ in ws:
                    pass
        except ConnectionClosed:
            pass
        return ws.close_code, time.monotonic() - started


async def test_f_logout_and_token_expiry_close_sockets_with_4001(
    shared: ServeProcess, clients: AsyncExitStack
) -> None:
    server = shared
    phone = await new_user(clients, server, "f_erin")
    laptop = await device(clients, server, "f_erin")
    await phone.connect()
    await laptop.connect()
    old_token = str(phone.access_token)

    started = time.monotonic()
    await phone.logout()
    closed = await phone.next_event("client.disconnected", timeout=5)
    assert closed["code"] == 4001 and time.monotonic() - started < 5
    await phone.wait_for(lambda: phone.stopped, timeout=5)
    assert phone.stop_code == 4001
    with pytest.raises(ClientClosed):
        await phone.send("1", "after logout", timeout=2)
    # The revoked session's token is refused at connect; the other device is untouched.
    assert (await raw_close_code(server, old_token, 5))[0] == 4001
    assert await laptop.ping() < 1 and laptop.close_codes == []

    # Re-auth on a live socket with a fresh access token of the same session.
    ack = await laptop.reauth()
    assert ack["type"] == "ack" and ack["expires_at"] > time.time() + 60
    other = await new_user(clients, server, "f_frank")
    with pytest.raises(RequestFailed) as refused:
        await laptop.request({"type": "auth", "token": other.access_token}, timeout=5)
    assert refused.value.code == "invalid_token"
    assert await laptop.ping() < 1 and laptop.close_codes == []

    # An expired token is refused at connect (socket and REST alike) ...
    expired = mint_access_token(str(laptop.user_id), str(laptop.session_id), -60)
    assert (await raw_close_code(server, expired, 5))[0] == 4001
    me = await laptop.http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {expired}"})
    assert me.status_code == 401
    # ... and a socket whose token runs out is closed with 4001 when it does.
    short = mint_access_token(str(laptop.user_id), str(laptop.session_id), 3)
    code, lasted = await raw_close_code(server, short, 10)
    assert code == 4001 and 1 < lasted < 7, (code, lasted)


# --------------------------------------------------------------------------- g. shutdown


async def test_g_sigterm_closes_sockets_with_going_away_and_keeps_acked_messages(
    serve_db: str | None, tmp_path: Path, clients: AsyncExitStack
) -> None:
    with gochat(tmp_path, serve_db) as server:
        alice = await new_user(clients, server, "alice")
        bob = await new_user(clients, server, "bob")
        await alice.connect()
        await bob.connect()
        conv = (await alice.create_direct(str(bob.user_id)))["id"]
        acked = [await alice.send(conv, f"before shutdown {i}") for i in range(20)]

        started = time.monotonic()
        exit_code = await asyncio.to_thread(server.stop, signal.SIGTERM)
        stopping = time.monotonic() - started
        codes = [(await c.next_event("client.disconnected", timeout=10))["code"] for c in (alice, bob)]
        assert exit_code == 0, server.logs()[-2000:]
        assert stopping < 10

        await asyncio.to_thread(server.start)
        database = await alice.history_all(conv)
        assert [m["id"] for m in database] == [m["id"] for m in acked]
        await alice.wait_for(lambda: alice.connected, timeout=10)
        after = await alice.send(conv, "after restart")
        assert after["seq"] == 21
        await bob.wait_for(lambda: has_all(bob, conv, 21), timeout=10)

        # 1001 (going away), not uvicorn's own 1012 (service restart): the app closes its
        # sockets before uvicorn's shutdown would.
        assert codes == [1001, 1001], codes
