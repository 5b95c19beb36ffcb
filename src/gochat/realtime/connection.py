"""Per-socket outbound queue and the paced flusher of the fan-out hot path.

Fan-out never awaits a socket (STYLE rule 7): ``Connection.enqueue`` only appends, and the
:class:`Flusher` turns each socket's pending payloads into ONE text frame (JSON objects joined
by ``b"\\n"``) and hands it to the socket's :class:`FrameSink`. Sockets that received the same
payloads share one frame object (FANOUT.md: "per-room coalescing"). A socket whose buffer passes
the bound is closed with 4008 and dropped; nobody else waits for it.

When flushes are cheap the flusher runs on the next loop tick. When one was expensive (a large
room under load: one transport write per socket costs microseconds of kernel time each), the
next waits ``pacing`` times as long as that flush took, at most ``max_delay``: with the default
3x the flusher uses at most about a quarter of the loop, and what arrives meanwhile is packed
into the same frames, as the write pump of a Go hub packs what queued up while it was writing.
(Measured in bench/ scenario a, a group of 1,000: about 1.7x the deliveries/s of flushing every
tick, for ~57 ms p99 at 100-200 messages/s in; see docs/benchmarks.md.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Protocol

from starlette.websockets import WebSocket

from gochat.realtime.wsproto import direct_channel, encode_text_frame, text_frame_payload

__all__ = [
    "DEFAULT_MAX_BUFFER_BYTES",
    "SLOW_CLOSE_CODE",
    "AsgiSink",
    "Connection",
    "Flusher",
    "FrameSink",
    "RoomBatch",
    "open_sink",
]

SLOW_CLOSE_CODE = 4008
SLOW_CLOSE_REASON = "too slow"
DEFAULT_MAX_BUFFER_BYTES = 1 << 20
# Hard cap on what one flush may take for one socket, as a multiple of the buffer bound.
PENDING_FACTOR = 4
# Flush pacing: a flush cheaper than PACE_FROM_S never delays the next one; a dearer one delays
# it by FLUSH_PACING x its cost, never more than MAX_FLUSH_DELAY_S.
PACE_FROM_S = 0.001
FLUSH_PACING = 3.0
MAX_FLUSH_DELAY_S = 0.05

_logger = logging.getLogger(__name__)


class FrameSink(Protocol):
    """Where one socket's text frames go.

    Guarantee: no method blocks or awaits. ``write`` returns False and writes nothing once the
    socket is closing; ``buffered`` is the bytes accepted but not yet handed to the OS;
    ``close`` sends the close frame after what was already written, gives up on a peer that
    does not take it within a bounded time, and is idempotent.
    """

    def write(self, frame: bytes) -> bool: ...

    def buffered(self) -> int: ...

    @property
    def closing(self) -> bool: ...

    def close(self, code: int, reason: str) -> None: ...


class AsgiSink:
    """Fallback sink for ASGI servers without the direct hook (TestClient, other servers).

    One owned writer task sends the frames' payloads with ``send_text``; the frames are
    queued without awaiting, so the flusher's contract holds, only slower.
    """

    close_timeout: float = 2.0

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()
        self._closing = False
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        self._closer: asyncio.Task[None] | None = None

    @property
    def closing(self) -> bool:
        return self._closing or self._writer.done()

    def write(self, frame: bytes) -> bool:
        if self.closing:
            return False
        self._queue.append(frame)
        self._queued_bytes += len(frame)
        self._wakeup.set()
        return True

    def buffered(self) -> int:
        return self._queued_bytes

    def close(self, code: int, reason: str = "") -> None:
        """Refuse further writes and hand the queue to a closer task (see ``_close``)."""
        if self._closing:
            return
        self._closing = True
        self._closer = asyncio.get_running_loop().create_task(self._close(code, reason))

    async def aclose(self) -> None:
        """Stop the writer and wait for a started close; call when the socket's handler ends."""
        self._closing = True
        self._writer.cancel()
        tasks = [self._writer] if self._closer is None else [self._writer, self._closer]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                await self._drain()
        except Exception:  # task boundary: a dead socket just stops this sink
            _logger.debug("ASGI sink writer stopped", exc_info=True)

    async def _drain(self) -> None:
        while self._queue:
            frame = self._queue[0]
            await self._websocket.send_text(str(text_frame_payload(frame), "utf-8"))
            self._queue.popleft()
            self._queued_bytes -= len(frame)

    async def _close(self, code: int, reason: str) -> None:
        """Send what is queued, then the close; each step bounded, as the peer may be stuck."""
        self._writer.cancel()  # a cancelled send was not sent: it is still at the queue's head
        await asyncio.gather(self._writer, return_exceptions=True)
        for step in (self._drain, partial(self._websocket.close, code, reason)):
            try:
                async with asyncio.timeout(self.close_timeout):
                    await step()
            except Exception:  # task boundary: the socket may be stuck or already gone
                _logger.debug("ASGI sink close step failed", exc_info=True)
        self._queue.clear()
        self._queued_bytes = 0


@asynccontextmanager
async def open_sink(websocket: WebSocket) -> AsyncIterator[FrameSink]:
    """Yield the socket's direct channel, or an :class:`AsgiSink` owned by this block.

    Call after ``websocket.accept()``.
    """
    channel = direct_channel(websocket.scope)
    if channel is not None:
        yield channel
        return
    sink = AsgiSink(websocket)
    try:
        yield sink
    finally:
        await sink.aclose()


class RoomBatch:
    """One conversation's events between two flushes, queued once for all its local followers.

    The hub hands each follower a reference (``Connection.enqueue_batch``) and then appends
    the room's further events to the batch itself: one append per event instead of one per
    follower. Per-socket order holds because a batch stops taking events (``sealed``) as soon
    as any follower queues something after it, its followers change, or a flush takes it;
    the hub then starts a new batch.
    """

    __slots__ = ("nbytes", "payloads", "sealed")

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.nbytes = 0
        self.sealed = False

    def add(self, payload: bytes) -> None:
        self.payloads.append(payload)
        self.nbytes += len(payload)


Pending = bytes | RoomBatch
# One flush's frames by the identity of the pending items (the items are kept alive with them).
FrameCache = dict[tuple[int, ...], tuple[bytes, list[Pending]]]


def payloads_of(pending: list[Pending]) -> list[bytes]:
    """The JSON objects of a socket's pending items, in order."""
    out: list[bytes] = []
    for item in pending:
        if isinstance(item, RoomBatch):
            out.extend(item.payloads)
        else:
            out.append(item)
    return out


class Connection:
    """One authenticated socket: identity, sink, and what is pending for the next flush."""

    __slots__ = (
        "_closed",
        "_dirty",
        "_flusher",
        "_pending",
        "_pending_bytes",
        "close_code",
        "session_id",
        "sink",
        "user_id",
    )

    def __init__(self, user_id: int, session_id: int, sink: FrameSink, flusher: Flusher) -> None:
        self.user_id = user_id
        self.session_id = session_id
        self.sink = sink
        self.close_code: int | None = None
        self._flusher = flusher
        self._pending: list[Pending] = []
        self._pending_bytes = 0  # own payloads; batches count their own bytes
        self._dirty = False
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed or self.sink.closing

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes + sum(i.nbytes for i in self._pending if isinstance(i, RoomBatch))

    def enqueue(self, payload: bytes) -> None:
        """Queue one encoded JSON object for the next flush; never awaits, never blocks."""
        if self._closed:
            return
        self._seal_tail()
        self._pending.append(payload)
        self._pending_bytes += len(payload)
        if not self._dirty:
            self._dirty = True
            self._flusher.mark_dirty(self)

    def enqueue_batch(self, batch: RoomBatch) -> None:
        """Queue a room's batch: whatever the hub adds to it until it is sealed comes next."""
        if self._closed:
            return
        self._seal_tail()
        self._pending.append(batch)
        if not self._dirty:
            self._dirty = True
            self._flusher.mark_dirty(self)

    def _seal_tail(self) -> None:
        """A batch followed by anything else must take no more events (they would overtake it)."""
        if self._pending:
            tail = self._pending[-1]
            if type(tail) is RoomBatch:
                tail.sealed = True

    def take_pending(self) -> list[Pending]:
        """Hand the pending items to the flusher and start afresh; the batches taken are sealed."""
        pending = self._pending
        self._pending = []
        self._pending_bytes = 0
        self._dirty = False
        for item in pending:
            if type(item) is RoomBatch:
                item.sealed = True
        return pending

    def close(self, code: int, reason: str = "") -> None:
        """Stop queueing and start the socket's close handshake. Idempotent.

        What is still pending (say, the error explaining the close) goes out ahead of the close
        frame; a slow reader's batch was already taken by the flusher, so it gets nothing more.
        """
        if self._closed:
            return
        self._closed = True
        self.close_code = code
        pending = payloads_of(self.take_pending())
        if pending:
            self.sink.write(encode_text_frame(b"\n".join(pending)))
        self.sink.close(code, reason)


class Flusher:
    """Writes every dirty connection once per flush; one per event loop.

    Coalescing turns N small events into one frame and one transport write per socket, and
    identical batches are encoded once for all their recipients. A flush is scheduled on the
    next loop tick, or, after an expensive flush, ``pacing`` x its cost later (see the module
    docstring); ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        pacing: float = FLUSH_PACING,
        max_delay: float = MAX_FLUSH_DELAY_S,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.max_buffer_bytes = max_buffer_bytes
        self.pacing = pacing
        self.max_delay = max_delay
        self.slow_closed = 0
        self.flushes = 0
        self.frames_written = 0
        self._loop = loop
        self._clock = clock
        self._dirty: list[Connection] = []
        self._scheduled = False
        self._not_before = 0.0
        self._after_flush: list[Callable[[], None]] = []

    def add_flush_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every flush (the hub forgets its room batches there)."""
        self._after_flush.append(callback)

    def mark_dirty(self, conn: Connection) -> None:
        """Remember ``conn`` for the next flush, scheduling that flush once."""
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            loop = self._loop or asyncio.get_running_loop()
            delay = self._not_before - self._clock()
            if delay > 0:
                loop.call_later(min(delay, self.max_delay), self.flush)
            else:
                loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write one frame to each dirty connection; drop the slow ones."""
        started = self._clock()
        dirty, self._dirty = self._dirty, []
        self._scheduled = False
        # Values keep the payload lists alive, so their id()s stay unique during this flush.
        frames: FrameCache = {}
        for conn in dirty:
            try:
                self._flush_one(conn, frames)
            except Exception:  # loop-callback boundary: one bad socket must not stall the rest
                _logger.exception("flush failed for user %s", conn.user_id)
                conn.close(1011, "internal error")
        for callback in self._after_flush:
            callback()
        ended = self._clock()
        cost = ended - started
        self._not_before = ended + self.pacing * cost if cost >= PACE_FROM_S else 0.0
        self.flushes += 1

    def _flush_one(self, conn: Connection, frames: FrameCache) -> None:
        # One tick's batch may exceed the bound (a burst after a broker reconnect) and still be
        # taken at once by a healthy reader; only a batch far past it is refused unwritten.
        over_pending = conn.pending_bytes > PENDING_FACTOR * self.max_buffer_bytes
        pending = conn.take_pending()
        if not pending or conn.closed:
            return
        if over_pending or conn.sink.buffered() > self.max_buffer_bytes:
            self._drop_slow(conn)
            return
        conn.sink.write(self._frame_for(pending, frames))
        self.frames_written += 1
        if conn.sink.buffered() > self.max_buffer_bytes:
            self._drop_slow(conn)

    @staticmethod
    def _frame_for(pending: list[Pending], frames: FrameCache) -> bytes:
        key = tuple(map(id, pending))
        cached = frames.get(key)
        if cached is not None:
            return cached[0]
        frame = encode_text_frame(b"\n".join(payloads_of(pending)))
        frames[key] = (frame, pending)
        return frame

    def _drop_slow(self, conn: Connection) -> None:
        self.slow_closed += 1
        conn.close(SLOW_CLOSE_CODE, SLOW_CLOSE_REASON)
