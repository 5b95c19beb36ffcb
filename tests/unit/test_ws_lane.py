"""The chat socket's direct lane: /ws skips the middleware stack, everything else takes it."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from gochat.app import WS_PATH, GoChatApp


def lane_app() -> tuple[GoChatApp, list[tuple[str, str]], list[str]]:
    through_middleware: list[tuple[str, str]] = []
    handled: list[str] = []

    class Recorder:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            through_middleware.append((scope["type"], scope["path"]))
            await self.app(scope, receive, send)

    async def serve(websocket: WebSocket) -> None:
        handled.append(f"lane {websocket.url.path}")
        await websocket.accept()
        await websocket.send_text("lane")
        await websocket.close()

    app = GoChatApp()
    app.ws_lane = serve

    @app.websocket(WS_PATH)
    async def routed(websocket: WebSocket) -> None:
        handled.append("route /ws")
        await websocket.accept()
        await websocket.send_text("route")
        await websocket.close()

    @app.websocket("/elsewhere")
    async def elsewhere(websocket: WebSocket) -> None:
        handled.append("route /elsewhere")
        await websocket.accept()
        await websocket.send_text("elsewhere")
        await websocket.close()

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(Recorder)
    return app, through_middleware, handled


async def call(app: GoChatApp, kind: str, path: str) -> list[Message]:
    """One ASGI call with a client that connects (or sends an empty GET) and then leaves."""
    scope: dict[str, Any] = {
        "type": kind,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "scheme": "ws" if kind == "websocket" else "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 5000),
        "asgi": {"version": "3.0"},
    }
    if kind == "http":
        scope.update(method="GET", http_version="1.1")
    incoming: list[Message] = (
        [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]
        if kind == "websocket"
        else [{"type": "http.request", "body": b"", "more_body": False}]
    )
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def texts(sent: list[Message]) -> list[str]:
    return [m["text"] for m in sent if m["type"] == "websocket.send"]


async def test_the_chat_socket_goes_straight_to_the_gateway() -> None:
    app, through_middleware, handled = lane_app()
    assert texts(await call(app, "websocket", WS_PATH)) == ["lane"]
    assert texts(await call(app, "websocket", "/elsewhere")) == ["elsewhere"]
    ping = await call(app, "http", "/ping")
    assert ping[0]["status"] == 200 and ping[1]["body"] == b'{"ok":true}'
    assert handled == ["lane /ws", "route /elsewhere"]
    assert through_middleware == [("websocket", "/elsewhere"), ("http", "/ping")]


async def test_without_a_lane_the_socket_takes_the_route() -> None:
    app, through_middleware, handled = lane_app()
    app.ws_lane = None
    assert texts(await call(app, "websocket", WS_PATH)) == ["route"]
    assert handled == ["route /ws"]
    assert through_middleware == [("websocket", "/ws")]
