"""The direct-write hook on a real uvicorn server: if a uvicorn upgrade breaks it, this fails.

Each test runs its own event loop (uvloop, as in production, and plain asyncio) holding the
server, the app and the clients; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, Frame, Opcode
from websockets.streams import StreamReader

from gochat.realtime.connection import SLOW_CLOSE_CODE, AsgiSink, Connection, Flusher, open_sink
from gochat.realtime.wsproto import (
    TRANSPORT_EXTENSION,
    DirectChannel,
    GochatWebSocketProtocol,
    uvicorn_ws_protocol,
)

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "uvloop": uvloop.new_event_loop,
    "asyncio": asyncio.new_event_loop,
}
BIG = b'{"pad":"' + b"x" * 65_000 + b'"}'


def run(scenario: Callable[[], Awaitable[None]], loop: str, budget: float = 15.0) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(budget):
            await scenario()

    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        runner.run(bounded())


class ChatApp:
    """The smallest gateway: accept, wrap the socket in a Connection, read until disconnect."""

    def __init__(self) -> None:
        self.flusher = Flusher(max_buffer_bytes=1 << 20)
        self.conns: dict[str, Connection] = {}
        self.hooks: dict[str, object] = {}
        self.arrived: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.ended: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.errors: list[BaseException] = []
        self.asgi = Starlette(routes=[WebSocketRoute("/ws", self.endpoint)])

    async def endpoint(self, websocket: WebSocket) -> None:
        name = websocket.query_params["name"]
        try:
            await websocket.accept()
            self.hooks[name] = websocket.scope["extensions"].get(TRANSPORT_EXTENSION)
            async with open_sink(websocket) as sink:
                self.conns[name] = Connection(1, len(self.conns), sink, self.flusher)
                self.arrived[name].set()
                while True:
                    await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        except Exception as exc:
            self.errors.append(exc)
        finally:
            self.ended[name].set()

    async def conn(self, name: str) -> Connection:
        async with asyncio.timeout(2):
            await self.arrived[name].wait()
        return self.conns[name]

    def channel(self, name: str) -> DirectChannel:
        hook = self.hooks[name]
        assert isinstance(hook, DirectChannel), (
            f"scope['extensions'][{TRANSPORT_EXTENSION!r}] is {hook!r}: the uvicorn hook in "
            "gochat.realtime.wsproto no longer works with this uvicorn version"
        )
        return hook


@dataclass
class Served:
    app: ChatApp
    server: uvicorn.Server
    port: int

    def url(self, name: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws?name={name}"

    async def wait_no_connections(self, within: float) -> float:
        started = time.monotonic()
        async with asyncio.timeout(within):
            while self.server.server_state.connections:
                await asyncio.sleep(0.01)
        return time.monotonic() - started


@asynccontextmanager
async def serving(deflate: bool = False) -> AsyncIterator[Served]:
    app = ChatApp()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app.asgi,
        ws=uvicorn_ws_protocol(),
        ws_per_message_deflate=deflate,
        loop="uvloop",
        lifespan="off",
        log_config=None,
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(5):
            while not server.started:
                assert not task.done(), task.exception()
                await asyncio.sleep(0.01)
        yield Served(app, server, sock.getsockname()[1])
        assert app.errors == []
    finally:
        server.should_exit = True
        async with asyncio.timeout(5):
            await task
        sock.close()


def client(served: Served, name: str, **kwargs: object) -> connect:
    options: dict[str, object] = {"compression": None, "max_size": None, "open_timeout": 2}
    options.update(kwargs)
    return connect(served.url(name), **options)  # type: ignore[arg-type]


async def recv(ws: ClientConnection, within: float = 2.0) -> str:
    async with asyncio.timeout(within):
        message = await ws.recv()
    assert isinstance(message, str)
    return message


class RawClient:
    """A WebSocket client on a bare socket with a tiny receive buffer, read only on demand."""

    def __init__(self, sock: socket.socket, leftover: bytes) -> None:
        self.sock = sock
        self.reader = StreamReader()
        self.reader.feed_data(leftover)

    @classmethod
    async def upgrade(cls, port: int, name: str) -> RawClient:
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws?name={name} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await loop.sock_sendall(sock, request.encode())
        response = b""
        while b"\r\n\r\n" not in response:
            response += await loop.sock_recv(sock, 4096)
        head, _, leftover = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(sock, leftover)

    async def next_frame(self) -> Frame:
        parser = Frame.parse(self.reader.read_exact, mask=False, max_size=None)
        while True:
            try:
                next(parser)
            except StopIteration as done:
                frame: Frame = done.value
                return frame
            data = await asyncio.get_running_loop().sock_recv(self.sock, 1 << 16)
            if not data:
                self.reader.feed_eof()
            self.reader.feed_data(data)

    async def read_until_close(self) -> Close:
        while (frame := await self.next_frame()).opcode is not Opcode.CLOSE:
            pass
        return Close.parse(bytes(frame.data))

    async def drain(self) -> int:
        """Read until the server drops the socket; returns the bytes read."""
        total = 0
        loop = asyncio.get_running_loop()
        try:
            while data := await loop.sock_recv(self.sock, 1 << 16):
                total += len(data)
        except ConnectionResetError:
            pass
        return total


async def push_until_closed(
    app: ChatApp, slow: Connection, fast: Connection | None, ws: ClientConnection | None
) -> float:
    """Send BIG to both every tick, pacing on the fast client; returns its worst marker delay."""
    worst = 0.0
    for i in range(400):  # up to ~26 MB
        if slow.closed:
            return worst
        slow.enqueue(BIG)
        if fast is None or ws is None:
            await asyncio.sleep(0.001)
            continue
        fast.enqueue(BIG)
        marker = f'{{"i":{i}}}'
        fast.enqueue(marker.encode())
        sent = time.monotonic()
        assert (await recv(ws)).endswith(marker)
        worst = max(worst, time.monotonic() - sent)
    raise AssertionError(f"slow reader never closed; buffered={slow.sink.buffered()}")


@pytest.fixture(params=list(LOOPS))
def loop(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_hook_is_in_the_scope_and_frames_are_coalesced(loop: str) -> None:
    async def scenario() -> None:
        async with serving() as served, client(served, "a") as ws:
            conn = await served.app.conn("a")
            assert conn.sink is served.app.channel("a")
            assert uvicorn_ws_protocol() is GochatWebSocketProtocol
            conn.enqueue(b'{"n":1}')
            conn.enqueue(b'{"n":2}')
            assert await recv(ws) == '{"n":1}\n{"n":2}'
            conn.enqueue(b'{"n":3}')
            assert await recv(ws) == '{"n":3}'
            async with asyncio.timeout(2):  # uvicorn still answers pings next to direct writes
                await (await ws.ping())
            await ws.send("client->server still works")
            conn.enqueue(b'{"n":4}')
            assert await recv(ws) == '{"n":4}'

    run(scenario, loop)


def test_slow_reader_is_closed_4008_while_a_fast_reader_keeps_receiving(loop: str) -> None:
    async def scenario() -> None:
        async with serving() as served, client(served, "fast") as ws:
            app = served.app
            raw = await RawClient.upgrade(served.port, "slow")
            slow, fast = await app.conn("slow"), await app.conn("fast")
            app.channel("slow").close_grace = 10.0  # long enough to read the close frame late
            worst_delay = await push_until_closed(app, slow, fast, ws)
            assert slow.close_code == SLOW_CLOSE_CODE and app.flusher.slow_closed == 1
            assert worst_delay < 1.0 and not fast.closed
            assert not app.channel("slow").write(b"\x81\x00")
            async with asyncio.timeout(2):
                await app.ended["slow"].wait()  # the gateway unwinds at once
            fast.enqueue(b'{"after":true}')
            assert await recv(ws, within=1.0) == '{"after":true}'
            async with asyncio.timeout(5):
                close = await raw.read_until_close()  # the close frame is behind the backlog
            assert (close.code, close.reason) == (SLOW_CLOSE_CODE, "too slow")
            raw.sock.close()

    run(scenario, loop)


def test_reader_that_never_reads_again_is_aborted_after_the_grace(loop: str) -> None:
    async def scenario() -> None:
        async with serving() as served:
            raw = await RawClient.upgrade(served.port, "slow")
            slow = await served.app.conn("slow")
            served.app.channel("slow").close_grace = 0.3
            await push_until_closed(served.app, slow, None, None)
            gone_after = await served.wait_no_connections(within=3.0)
            assert gone_after < 2.0
            async with asyncio.timeout(3):
                read = await raw.drain()
            assert read < 1 << 20  # the server dropped its backlog instead of flushing it
            raw.sock.close()

    run(scenario, loop)


def test_server_close_4001_reaches_the_client_and_stops_writes(loop: str) -> None:
    async def scenario() -> None:
        async with serving() as served, client(served, "a") as ws:
            conn, channel = await served.app.conn("a"), served.app.channel("a")
            assert channel.write(b"\x81\x02{}") and not channel.closing
            assert await recv(ws) == "{}"
            conn.enqueue(b'{"error":"token_expired"}')
            conn.close(4001, "auth expired")
            assert channel.closing and not channel.write(b"\x81\x02{}")
            conn.enqueue(b'{"late":1}')
            assert await recv(ws) == '{"error":"token_expired"}'  # sent ahead of the close
            with pytest.raises(ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "auth expired")
            # The client's reply completed the handshake: no wait for the abort grace.
            assert await served.wait_no_connections(within=1.5) < 1.5
            assert served.app.ended["a"].is_set()

    run(scenario, loop)


def test_a_socket_works_on_after_its_handshake_is_forgotten(loop: str) -> None:
    async def scenario() -> None:
        async with serving() as served, client(served, "a", additional_headers={"X-Big": "y" * 500}) as ws:
            conn, channel = await served.app.conn("a"), served.app.channel("a")
            protocol = channel._protocol
            request = protocol.request
            assert request.headers.get("X-Big") == "y" * 500
            channel.forget_handshake()
            assert protocol.request is None and protocol.response is None
            assert not request.headers  # emptied: websockets' parser frame still refers to it
            channel.forget_handshake()  # idempotent
            conn.enqueue(b'{"n":1}')
            assert await recv(ws) == '{"n":1}'
            async with asyncio.timeout(2):  # pings, client frames and the close handshake still work
                await (await ws.ping())
            await ws.send("still there")
            conn.close(4001, "auth expired")
            with pytest.raises(ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
            assert await served.wait_no_connections(within=1.5) < 1.5

    run(scenario, loop)


def test_negotiated_deflate_gets_no_channel_and_falls_back_to_asgi() -> None:
    async def scenario() -> None:
        async with (
            serving(deflate=True) as served,
            client(served, "z", compression="deflate") as ws,
        ):
            conn = await served.app.conn("z")
            assert served.app.hooks["z"] is None and isinstance(conn.sink, AsgiSink)
            [protocol] = served.server.server_state.connections
            assert isinstance(protocol, GochatWebSocketProtocol)
            with pytest.raises(RuntimeError, match="ws_per_message_deflate=False"):
                DirectChannel(protocol)
            conn.enqueue(b'{"n":1}')
            conn.enqueue(b'{"n":2}')
            assert await recv(ws) == '{"n":1}\n{"n":2}'

    run(scenario, "uvloop")
