"""Micro-benchmark of the fan-out write path: 1 room x N sockets on an in-process uvicorn.

    .venv/bin/python bench/fanout_micro.py [--clients 1000] [--senders 10] [--seconds 3]
                                           [--modes direct,asgi,naive]

direct: Connection + DirectChannel (the hot path); asgi: Connection + AsgiSink (the fallback);
naive: ``await websocket.send_text()`` per member. Each tick, each of ``--senders`` publishes
one event to the room (closed loop, at most two ticks in flight). Server, sender and clients share one uvloop
loop and one CPU, so the numbers compare the modes on this machine; they are not the
cross-process figures of the design note (FANOUT.md).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import time
from typing import Any

import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from gochat.realtime.connection import AsgiSink, Connection, Flusher
from gochat.realtime.wsproto import GochatWebSocketProtocol, direct_channel

MARK = b'"#"'
EVENT = b'{"type":"message.created","#":1,"body":"' + b"a" * 58 + b'"}'  # 100 bytes


class Room:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.flusher = Flusher()
        self.conns: list[Connection] = []
        self.sockets: list[WebSocket] = []
        self.app = Starlette(routes=[WebSocketRoute("/ws", self.endpoint)])

    async def endpoint(self, websocket: WebSocket) -> None:
        await websocket.accept()
        channel = direct_channel(websocket.scope)
        sink: Any = channel if self.mode == "direct" else AsgiSink(websocket)
        self.conns.append(Connection(1, len(self.conns), sink, self.flusher))
        self.sockets.append(websocket)
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            if isinstance(sink, AsgiSink):
                await sink.aclose()

    async def publish(self) -> None:
        if self.mode == "naive":
            text = EVENT.decode()
            for ws in self.sockets:
                await ws.send_text(text)
            return
        for conn in self.conns:
            conn.enqueue(EVENT)


class Counter(asyncio.Protocol):
    """A client that completes the upgrade, then only counts events."""

    total = 0

    def __init__(self, request: bytes, upgraded: asyncio.Future[None]) -> None:
        self.request, self.upgraded, self.head, self.tail = request, upgraded, b"", b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if not self.upgraded.done():
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            self.upgraded.set_result(None)
            data = self.head.partition(b"\r\n\r\n")[2]
        chunk = self.tail + data
        Counter.total += chunk.count(MARK)
        self.tail = chunk[-2:]


async def open_clients(port: int, n: int) -> list[asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    transports = []
    for _ in range(n):
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        upgraded: asyncio.Future[None] = loop.create_future()
        transport, _ = await loop.create_connection(
            lambda r=request, u=upgraded: Counter(r, u), "127.0.0.1", port
        )
        await upgraded
        transports.append(transport)
    return transports


async def measure(room: Room, n: int, senders: int, seconds: float) -> float:
    """Closed loop: publish ``senders`` events per tick while at most two ticks are in flight."""
    Counter.total = 0
    sent = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        if sent - Counter.total < 2 * senders * n:
            for _ in range(senders):
                await room.publish()
            sent += senders * n
        await asyncio.sleep(0)
    return Counter.total / (time.perf_counter() - started)


async def run_mode(mode: str, n: int, senders: int, seconds: float) -> float:
    room = Room(mode)
    config = uvicorn.Config(
        room.app,
        ws=GochatWebSocketProtocol,
        ws_per_message_deflate=False,
        lifespan="off",
        log_config=None,
        log_level="warning",
        port=0,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    transports = await open_clients(port, n)
    while len(room.conns) < n:
        await asyncio.sleep(0.01)
    rate = await measure(room, n, senders, seconds)
    for transport in transports:
        transport.close()
    server.should_exit = True
    await task
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--modes", default="direct,asgi,naive")
    args = parser.parse_args()
    for mode in args.modes.split(","):
        rate = uvloop.run(run_mode(mode, args.clients, args.senders, args.seconds))
        print(
            f"{mode:>7}: {rate:>10,.0f} deliveries/s"
            f"  ({args.clients} sockets, {args.senders} senders, 100-byte events)"
        )


if __name__ == "__main__":
    main()
