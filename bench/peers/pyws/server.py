"""Python peer of the GoChat benchmark: a bare `websockets` broadcast server with rooms.

Every text message is broadcast as-is (``websockets.broadcast``, which writes without
awaiting) to every socket of the sender's room (?room=<name>), the sender included. Plain
asyncio, no uvloop, compression off: what a Python developer would write in ten minutes.

    python server.py --port 9003
"""

from __future__ import annotations

import argparse
import asyncio
from collections import defaultdict
from urllib.parse import parse_qs, urlsplit

from websockets import broadcast
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

rooms: dict[str, set[ServerConnection]] = defaultdict(set)


async def handler(ws: ServerConnection) -> None:
    room = parse_qs(urlsplit(ws.request.path).query).get("room", [""])[0]
    members = rooms[room]
    members.add(ws)
    try:
        async for message in ws:
            broadcast(members, message)
    finally:
        members.discard(ws)


def health(ws: ServerConnection, request: Request) -> Response | None:
    if request.path == "/healthz":
        return ws.respond(200, "ok\n")
    return None


async def main(port: int) -> None:
    async with serve(handler, "127.0.0.1", port, compression=None, process_request=health):
        await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=9003)
    asyncio.run(main(parser.parse_args().port))
