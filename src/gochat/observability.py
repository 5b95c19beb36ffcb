"""Structured JSON logs with a request id, and Prometheus metrics (one registry per app)."""

from __future__ import annotations

import logging
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def configure_logging(level: str = "info", json: bool = True) -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


class FlushStats(Protocol):
    slow_closed: int
    frames_written: int
    flushes: int


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.http_requests = Counter(
            "gochat_http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.http_latency = Histogram(
            "gochat_http_request_duration_seconds", "HTTP latency", ["method", "route"], registry=r
        )
        self.http_errors = Counter("gochat_http_errors", "HTTP 5xx responses", ["route"], registry=r)
        self.ws_connections = Gauge("gochat_ws_connections", "Open authenticated sockets", registry=r)
        self.ws_frames = Counter("gochat_ws_frames_received", "Client frames received", registry=r)
        self.messages_sent = Counter("gochat_messages_sent", "Messages committed", registry=r)
        self.slow_closed = Gauge(
            "gochat_ws_slow_closed_total", "Sockets closed with 4008 (too slow) since start", registry=r
        )
        self.publishes = Counter("gochat_broker_publishes", "Broker publishes", registry=r)
        self.publish_failures = Counter("gochat_broker_publish_failures", "Failed publishes", registry=r)
        self.fanout = Counter("gochat_fanout_deliveries", "Frames handed to local sockets", registry=r)
        self.frames_written = Gauge(
            "gochat_ws_frames_written_total",
            "WebSocket frames written by the flusher since start (deliveries / frames = packing)",
            registry=r,
        )
        self.flushes = Gauge("gochat_ws_flushes_total", "Flusher runs since start", registry=r)


    def watch_flusher(self, flusher: FlushStats) -> None:
        """Export the flusher's counters (it keeps plain ints: the hot path pays nothing)."""
        self.slow_closed.set_function(lambda: float(flusher.slow_closed))
        self.frames_written.set_function(lambda: float(flusher.frames_written))
        self.flushes.set_function(lambda: float(flusher.flushes))


class RequestContextMiddleware:
    """Request id (X-Request-ID in and out), access log line and HTTP metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.log = structlog.get_logger("gochat.http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, status, time.perf_counter() - started)
            structlog.contextvars.unbind_contextvars("request_id")

    def _record(self, scope: Scope, status: int, elapsed: float) -> None:
        route = scope.get("route")
        name = getattr(route, "path", "unmatched")
        method = scope.get("method", "GET")
        self.metrics.http_requests.labels(method, name, str(status)).inc()
        self.metrics.http_latency.labels(method, name).observe(elapsed)
        if status >= 500:
            self.metrics.http_errors.labels(name).inc()
        # Probes from load balancers arrive every second: keep them out of the info log.
        quiet = name in ("/healthz", "/readyz", "/metrics")
        (self.log.debug if quiet else self.log.info)(
            "request", method=method, path=scope.get("path"), status=status, ms=round(elapsed * 1000, 2)
        )


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            if 0 < len(text) <= 64 and text.replace("-", "").isalnum():
                return text
    return None


class BodyLimitMiddleware:
    """Refuse request bodies over the limit (413) before reading them into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int, exempt_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _send_too_large(send)
            return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge()
            return message

        return limited


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` mid-stream (chunked bodies). An HTTPException, because FastAPI
    turns any other exception raised while it reads the body into a 400."""

    def __init__(self) -> None:
        super().__init__(413, "the request body is too large")


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_too_large(send: Send) -> None:
    body = b'{"error":{"code":"too_large","message":"the request body is too large"}}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
