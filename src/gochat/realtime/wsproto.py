"""The direct server-to-client write path on uvicorn's sans-I/O WebSocket protocol.

ASGI's ``await send(...)`` per recipient is the fan-out bottleneck (design note FANOUT.md): the hot
path instead builds one text frame and writes the same bytes straight to each socket's
transport. uvicorn has no public hook for that, so this module subclasses its sans-I/O
protocol and publishes a :class:`DirectChannel` in the ASGI scope under
``scope["extensions"]["gochat.transport"]``. REST and WebSocket keep sharing one port.

The server must be started with::

    uvicorn.Config(app, ws=GochatWebSocketProtocol, ws_per_message_deflate=False, ...)

Direct writes bypass the protocol's compressor, so a socket that negotiated an extension
(permessage-deflate) gets no channel and the gateway falls back to the ASGI send path.
Ping, pong and the close handshake stay with uvicorn; every frame we write is complete, and
everything runs on the event loop thread, so our frames never interleave with uvicorn's.

This depends on uvicorn internals (``conn``, ``transport``, ``queue``, ``close_sent``,
``close_timer``...): the version is pinned in pyproject.toml and
tests/integration/test_wsproto_hook.py fails loudly if the hook breaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

__all__ = [
    "TRANSPORT_EXTENSION",
    "DirectChannel",
    "GochatWebSocketProtocol",
    "direct_channel",
    "encode_text_frame",
    "fit_close_reason",
    "text_frame_payload",
    "uvicorn_ws_protocol",
]

TRANSPORT_EXTENSION = "gochat.transport"

_logger = logging.getLogger(__name__)
_FIN_TEXT = 0x81


def encode_text_frame(payload: bytes) -> bytes:
    """Return an unmasked, final text frame (RFC 6455 section 5.2) carrying ``payload``.

    Servers never mask, so the frame is built once and shared by every recipient. The payload
    must already be valid UTF-8 (it is JSON from orjson).
    """
    n = len(payload)
    if n < 126:
        header = bytes((_FIN_TEXT, n))
    elif n < 1 << 16:
        header = struct.pack("!BBH", _FIN_TEXT, 126, n)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, 127, n)
    return header + payload


def fit_close_reason(reason: str) -> str:
    """Cut ``reason`` to the 123 UTF-8 bytes a close frame allows, on a character boundary."""
    return reason.encode()[:123].decode("utf-8", "ignore")


def text_frame_payload(frame: bytes) -> memoryview:
    """Return the payload of a frame made by :func:`encode_text_frame`, without copying.

    Lets a sink that can only send whole messages (the ASGI fallback) reuse the frames the
    flusher built for direct writers.
    """
    length_byte = frame[1] & 0x7F
    offset = 2 if length_byte < 126 else 4 if length_byte == 126 else 10
    return memoryview(frame)[offset:]


class DirectChannel:
    """Writes pre-built frames to one socket's transport without awaiting.

    Guarantees: ``write`` never blocks and never writes after a close started or the peer
    went away; ``close`` runs the real close handshake through uvicorn's state machine and
    aborts the transport after ``close_grace`` seconds, so a peer that stopped reading cannot
    keep the socket (and its write buffer) alive.
    """

    __slots__ = ("_protocol", "close_grace")

    def __init__(self, protocol: WebSocketsSansIOProtocol, close_grace: float = 2.0) -> None:
        if protocol.conn.extensions:
            # A compressed socket expects compressed frames (RSV1): raw bytes would corrupt it.
            raise RuntimeError(
                "DirectChannel needs a WebSocket without extensions; "
                "start uvicorn with ws_per_message_deflate=False"
            )
        self._protocol = protocol
        self.close_grace = close_grace

    @property
    def closing(self) -> bool:
        """True once nothing may be written: not yet open, close started, or peer gone."""
        p = self._protocol
        return p.close_sent or p.disconnected or p.conn.state is not State.OPEN or p.transport.is_closing()

    def write(self, frame: bytes) -> bool:
        """Queue ``frame`` on the transport; False (nothing written) if the socket is closing."""
        if self.closing:
            return False
        self._protocol.transport.write(frame)
        return True

    def buffered(self) -> int:
        """Bytes in the transport's user-space buffer (under uvloop the kernel's is not seen)."""
        return self._protocol.transport.get_write_buffer_size()

    def forget_handshake(self) -> None:
        """Let go of the opening handshake's request and response (headers included).

        uvicorn keeps both for the life of the socket but reads them only until the accept
        is sent; call once the socket is open. Idempotent.
        """
        p = self._protocol
        if p.handshake_complete and p.request is not None:
            # websockets' parser generator keeps the request alive in its frame: empty it.
            p.request.headers.clear()
            p.request = None  # type: ignore[assignment]
            p.response = None  # type: ignore[assignment]

    def close(self, code: int, reason: str = "") -> None:
        """Start the close handshake, as uvicorn does for an ASGI ``websocket.close``.

        The app's pending ``receive()`` gets ``websocket.disconnect`` so the gateway unwinds;
        the app must not send ASGI messages on this socket afterwards. Idempotent.
        """
        if self.closing:
            return
        p = self._protocol
        reason = fit_close_reason(reason)
        p.conn.send_close(code, reason)  # first: it rejects a bad code before any state changes
        p.transport.write(b"".join(p.conn.data_to_send()))
        p.close_sent = True
        p.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        if p.read_paused:
            # Keep reading so the peer's close reply can complete the handshake.
            p.read_paused = False
            p.transport.resume_reading()
        # uvicorn cancels this timer when the peer's close reply arrives or the socket is lost.
        p.close_timer = p.loop.call_later(self.close_grace, _reset, p.transport)


def _reset(transport: asyncio.Transport) -> None:
    """Drop a peer that did not finish closing in time, with its buffers.

    ``close()`` would wait for a slow reader's buffer to drain; ``abort()`` drops the user-space
    buffer, and a zero linger makes the kernel send RST instead of keeping up to ``tcp_wmem``
    of unsent data per dropped socket until the orphan timeout.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


GOING_AWAY = 1001
T = TypeVar("T")


class ReceiveQueue(Generic[T]):
    """What uvicorn's protocol needs of its per-socket ``asyncio.Queue``, at a tenth of its size.

    One consumer (the socket's ASGI task) and an unbounded buffer: a list and at most one
    waiter, instead of a Queue's three deques and its ``join()`` Event (~2.4 KiB per idle
    socket, measured with bench/memory_probe.py).
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[T] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> T:
        while not self._items:
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def get_nowait(self) -> T:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


class GochatWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol plus a :class:`DirectChannel` in the scope."""

    close_grace: float = 2.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = ReceiveQueue()  # type: ignore[assignment]

    async def run_asgi(self) -> None:
        # The parent builds self.scope in handle_connect and then creates this task; installing
        # the channel here, before the app is called, holds even under an eager task factory.
        self._install_channel()
        await super().run_asgi()

    def shutdown(self) -> None:
        """Server shutdown: close open sockets with 1001 "going away" (uvicorn sends 1012).

        The contract tells clients 1001 means: reconnect (to another node) and sync.
        """
        if not self.handshake_complete or self.close_sent:
            super().shutdown()
            return
        self.stop_keepalive()
        self.queue.put_nowait({"type": "websocket.disconnect", "code": GOING_AWAY})
        self.conn.send_close(GOING_AWAY, "server shutting down")
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.transport.close()

    def _install_channel(self) -> None:
        if self.conn.extensions:
            _logger.warning("WebSocket extension negotiated: direct fan-out path disabled")
            return
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
        extensions[TRANSPORT_EXTENSION] = DirectChannel(self, self.close_grace)


def uvicorn_ws_protocol() -> type[GochatWebSocketProtocol]:
    """The class to pass as ``uvicorn.Config(ws=...)``."""
    return GochatWebSocketProtocol


def direct_channel(scope: Mapping[str, Any]) -> DirectChannel | None:
    """The socket's :class:`DirectChannel`, or None on servers without the hook."""
    channel = scope.get("extensions", {}).get(TRANSPORT_EXTENSION)
    return channel if isinstance(channel, DirectChannel) else None
