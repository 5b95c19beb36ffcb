"""The fan-out write path: frame encoding, per-tick coalescing, slow-reader drops, ASGI fallback."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest
from starlette.websockets import WebSocket
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from gochat.realtime.connection import (
    PENDING_FACTOR,
    SLOW_CLOSE_CODE,
    AsgiSink,
    Connection,
    Flusher,
    open_sink,
)
from gochat.realtime.wsproto import ReceiveQueue, encode_text_frame, fit_close_reason, text_frame_payload

LIMIT = 1000


class MemorySink:
    """In-memory twin of FrameSink: records frames; its buffer level is set by the test."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.level = 0
        self.level_after_write = 0
        self.closing = False
        self.closed_with: tuple[int, str] | None = None

    def write(self, frame: bytes) -> bool:
        if self.closing:
            return False
        self.frames.append(frame)
        self.level = self.level_after_write
        return True

    def buffered(self) -> int:
        return self.level

    def close(self, code: int, reason: str) -> None:
        self.closing = True
        self.closed_with = (code, reason)


def parse_frame(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False, max_size=None)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("incomplete frame")


def payloads_of(frame: bytes) -> list[bytes]:
    return bytes(parse_frame(frame).data).split(b"\n")


def connect(flusher: Flusher, n: int = 1) -> list[tuple[Connection, MemorySink]]:
    pairs = []
    for i in range(n):
        sink = MemorySink()
        pairs.append((Connection(user_id=i, session_id=i, sink=sink, flusher=flusher), sink))
    return pairs


@pytest.mark.parametrize(("length", "header_len"), [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)])
def test_text_frame_round_trips_through_websockets_parser(length: int, header_len: int) -> None:
    payload = b"a" * length
    frame = encode_text_frame(payload)
    parsed = parse_frame(frame)
    assert (parsed.opcode, parsed.fin, bytes(parsed.data)) == (Opcode.TEXT, True, payload)
    assert len(frame) == header_len + length
    assert text_frame_payload(frame) == payload


def test_close_reason_is_cut_to_123_bytes_on_a_character_boundary() -> None:
    assert fit_close_reason("too slow") == "too slow"
    cut = fit_close_reason("é" * 100)
    assert cut == "é" * 61 and len(cut.encode()) == 122


async def test_payloads_of_one_tick_become_one_newline_joined_frame() -> None:
    [(conn, sink)] = connect(Flusher(LIMIT))
    conn.enqueue(b'{"n":1}')
    conn.enqueue(b'{"n":2}')
    assert sink.frames == []  # enqueue never writes inline
    await asyncio.sleep(0)
    assert [payloads_of(f) for f in sink.frames] == [[b'{"n":1}', b'{"n":2}']]
    conn.enqueue(b'{"n":3}')
    await asyncio.sleep(0)
    assert payloads_of(sink.frames[1]) == [b'{"n":3}']


async def test_same_event_to_many_connections_shares_one_frame_object() -> None:
    flusher = Flusher(LIMIT)
    pairs = connect(flusher, 3)
    event = b'{"type":"message.created"}'
    for conn, _ in pairs:
        conn.enqueue(event)
    pairs[2][0].enqueue(b'{"extra":1}')
    await asyncio.sleep(0)
    first, second, third = (sink.frames[0] for _, sink in pairs)
    assert first is second
    assert third is not first
    assert payloads_of(third) == [event, b'{"extra":1}']


async def test_one_flush_is_scheduled_per_tick() -> None:
    flusher = Flusher(LIMIT)
    calls = 0
    real_flush = flusher.flush

    def counting_flush() -> None:
        nonlocal calls
        calls += 1
        real_flush()

    flusher.flush = counting_flush  # type: ignore[method-assign]
    for conn, _ in connect(flusher, 50):
        conn.enqueue(b"{}")
        conn.enqueue(b"{}")
    await asyncio.sleep(0)
    assert calls == 1


class StepClock:
    """A clock the test moves: each read returns ``now``; a sink's write can advance it."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_an_expensive_flush_delays_the_next_and_packs_what_arrives_meanwhile() -> None:
    clock = StepClock()
    flusher = Flusher(LIMIT, pacing=1.0, max_delay=0.5, clock=clock)
    pairs = connect(flusher, 2)
    for _, sink in pairs:
        real_write = sink.write

        def slow_write(frame: bytes, real_write: Any = real_write) -> bool:
            clock.now += 0.05  # each write "costs" 50 ms: the flush costs 100 ms
            return bool(real_write(frame))

        sink.write = slow_write  # type: ignore[method-assign]
    for conn, _ in pairs:
        conn.enqueue(b'{"n":1}')
    await asyncio.sleep(0)
    assert [len(sink.frames) for _, sink in pairs] == [1, 1]
    assert flusher.flushes == 1 and flusher.frames_written == 2
    for n in (2, 3, 4):
        for conn, _ in pairs:
            conn.enqueue(b'{"n":%d}' % n)
        await asyncio.sleep(0)
    # Not on the next tick: the flusher waits as long as the last flush took (100 ms here).
    assert [len(sink.frames) for _, sink in pairs] == [1, 1]
    await asyncio.sleep(0.15)
    for _, sink in pairs:
        assert [payloads_of(f) for f in sink.frames[1:]] == [[b'{"n":2}', b'{"n":3}', b'{"n":4}']]
    assert flusher.flushes == 2


async def test_cheap_flushes_never_delay_and_the_delay_is_capped() -> None:
    clock = StepClock()
    flusher = Flusher(LIMIT, pacing=1.0, max_delay=0.02, clock=clock)
    [(conn, sink)] = connect(flusher)
    conn.enqueue(b"{}")
    await asyncio.sleep(0)
    conn.enqueue(b"{}")
    await asyncio.sleep(0)
    assert len(sink.frames) == 2  # a flush costing nothing: the next tick flushes again

    def very_slow_write(frame: bytes) -> bool:
        clock.now += 60.0  # a flush of one minute: the next still waits only max_delay
        sink.frames.append(frame)
        return True

    sink.write = very_slow_write  # type: ignore[method-assign]
    conn.enqueue(b"{}")
    await asyncio.sleep(0)
    assert len(sink.frames) == 3
    conn.enqueue(b"{}")
    await asyncio.sleep(0)
    assert len(sink.frames) == 3
    await asyncio.sleep(0.05)
    assert len(sink.frames) == 4


async def test_full_buffer_before_write_closes_4008_without_writing() -> None:
    flusher = Flusher(LIMIT)
    (slow, slow_sink), (fast, fast_sink) = connect(flusher, 2)
    slow_sink.level = LIMIT + 1
    for conn in (slow, fast):
        conn.enqueue(b"{}")
    flusher.flush()
    assert slow_sink.frames == []
    assert slow_sink.closed_with == (SLOW_CLOSE_CODE, "too slow")
    assert slow.closed and slow.close_code == SLOW_CLOSE_CODE
    assert len(fast_sink.frames) == 1 and not fast.closed
    assert flusher.slow_closed == 1


async def test_buffer_over_the_bound_after_write_closes_4008() -> None:
    flusher = Flusher(LIMIT)
    [(conn, sink)] = connect(flusher)
    sink.level_after_write = LIMIT + 1
    conn.enqueue(b"{}")
    flusher.flush()
    assert len(sink.frames) == 1
    assert sink.closed_with == (SLOW_CLOSE_CODE, "too slow")
    assert flusher.slow_closed == 1


async def test_one_batch_over_the_bound_is_written_to_a_reader_that_keeps_up() -> None:
    flusher = Flusher(LIMIT)
    [(conn, sink)] = connect(flusher)
    for _ in range(2 * LIMIT // 100):
        conn.enqueue(b"x" * 100)
    flusher.flush()
    assert len(sink.frames) == 1 and not conn.closed
    assert flusher.slow_closed == 0


async def test_pending_far_over_the_bound_closes_4008_at_flush() -> None:
    flusher = Flusher(LIMIT)
    [(conn, sink)] = connect(flusher)
    for _ in range(PENDING_FACTOR * LIMIT // 100 + 1):
        conn.enqueue(b"x" * 100)
    flusher.flush()
    assert sink.frames == []
    assert conn.close_code == SLOW_CLOSE_CODE
    assert conn.pending_bytes == 0


async def test_closed_connections_get_no_writes() -> None:
    flusher = Flusher(LIMIT)
    (closed, closed_sink), (gone, gone_sink) = connect(flusher, 2)
    closed.close(4001, "auth expired")
    closed.enqueue(b"{}")
    gone.enqueue(b"{}")
    gone_sink.closing = True  # the peer went away between enqueue and flush
    await asyncio.sleep(0)
    assert closed_sink.frames == [] and gone_sink.frames == []
    assert closed_sink.closed_with == (4001, "auth expired")
    assert gone.closed and gone.pending_bytes == 0
    closed.close(4008, "again")  # idempotent
    assert closed.close_code == 4001


async def test_close_sends_what_is_pending_ahead_of_the_close() -> None:
    [(conn, sink)] = connect(Flusher(LIMIT))
    conn.enqueue(b'{"error":"token_expired"}')
    conn.close(4001, "auth expired")
    assert [payloads_of(f) for f in sink.frames] == [[b'{"error":"token_expired"}']]
    assert sink.closed_with == (4001, "auth expired")
    await asyncio.sleep(0)  # the flush scheduled by enqueue finds nothing more to write
    assert len(sink.frames) == 1


async def test_a_failing_sink_does_not_stall_the_others() -> None:
    flusher = Flusher(LIMIT)
    (bad, bad_sink), (good, good_sink) = connect(flusher, 2)

    def explode(frame: bytes) -> bool:
        raise OSError("boom")

    bad_sink.write = explode  # type: ignore[method-assign]
    bad.enqueue(b"{}")
    good.enqueue(b"{}")
    flusher.flush()
    assert bad.close_code == 1011
    assert len(good_sink.frames) == 1
    good.enqueue(b"{}")  # the dirty flag was reset, so later events still flow
    flusher.flush()
    assert len(good_sink.frames) == 2


class AsgiPeer:
    """Both ASGI callables for one Starlette WebSocket, held in memory; sends can be gated."""

    def __init__(self) -> None:
        self.sent: list[MutableMapping[str, Any]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.incoming.put_nowait({"type": "websocket.connect"})

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "websocket.send":
            await self.gate.wait()
        self.sent.append(message)

    async def accepted_socket(self) -> WebSocket:
        scope = {"type": "websocket", "path": "/ws", "headers": [], "extensions": {}}
        websocket: WebSocket = WebSocket(scope, self.receive, self.send)
        await websocket.accept()
        return websocket


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_asgi_sink_sends_payloads_and_counts_unsent_bytes() -> None:
    peer = AsgiPeer()
    sink = AsgiSink(await peer.accepted_socket())
    peer.gate.clear()
    frame = encode_text_frame(b'{"a":1}\n{"b":2}')
    assert sink.write(frame)
    await settle()
    assert sink.buffered() == len(frame)
    peer.gate.set()
    await settle()
    assert sink.buffered() == 0
    assert peer.sent[-1] == {"type": "websocket.send", "text": '{"a":1}\n{"b":2}'}
    await sink.aclose()
    assert not sink.write(frame)


async def test_asgi_sink_close_sends_the_queue_then_the_close() -> None:
    peer = AsgiPeer()
    sink = AsgiSink(await peer.accepted_socket())
    peer.gate.clear()
    sink.write(encode_text_frame(b'{"last":1}'))
    await settle()
    sink.close(4001, "auth expired")
    assert sink.closing and not sink.write(encode_text_frame(b"{}"))
    peer.gate.set()
    await sink.aclose()
    assert [m.get("text", m.get("code")) for m in peer.sent[1:]] == ['{"last":1}', 4001]


async def test_asgi_sink_close_gives_up_on_a_stuck_writer() -> None:
    peer = AsgiPeer()
    sink = AsgiSink(await peer.accepted_socket())
    sink.close_timeout = 0.05
    peer.gate.clear()
    sink.write(encode_text_frame(b"{}"))
    sink.write(encode_text_frame(b"{}"))
    await settle()
    sink.close(SLOW_CLOSE_CODE, "too slow")
    async with asyncio.timeout(1):
        await sink.aclose()
    assert sink.buffered() == 0
    assert peer.sent[-1] == {
        "type": "websocket.close",
        "code": SLOW_CLOSE_CODE,
        "reason": "too slow",
    }
    assert not [m for m in peer.sent if m["type"] == "websocket.send"]


async def test_open_sink_falls_back_to_an_owned_asgi_sink() -> None:
    peer = AsgiPeer()
    async with open_sink(await peer.accepted_socket()) as sink:
        assert isinstance(sink, AsgiSink)
        conn = Connection(user_id=1, session_id=1, sink=sink, flusher=Flusher(LIMIT))
        conn.enqueue(b"{}")
        conn.enqueue(b"[]")
        await settle()
    assert sink.closing
    assert peer.sent[-1] == {"type": "websocket.send", "text": "{}\n[]"}


async def test_receive_queue_is_fifo_wakes_its_waiter_and_survives_a_cancelled_get() -> None:
    queue: ReceiveQueue[int] = ReceiveQueue()
    assert queue.empty() and queue.qsize() == 0
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()
    queue.put_nowait(1)
    queue.put_nowait(2)
    assert queue.qsize() == 2 and await queue.get() == 1 and queue.get_nowait() == 2
    waiting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    queue.put_nowait(3)
    assert await asyncio.wait_for(waiting, 1) == 3
    cancelled = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    queue.put_nowait(4)  # no waiter left behind to swallow it
    assert await asyncio.wait_for(queue.get(), 1) == 4 and queue.empty()
