"""The composition root: reads Settings once, builds every adapter and service, wires them.

Nothing imports this module; the CLI and the tests call ``create_app(settings)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import Depends, FastAPI, WebSocket
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Receive, Scope, Send

from gochat import __version__
from gochat.api import accounts as accounts_api
from gochat.api import conversations as conversations_api
from gochat.api import health
from gochat.api import media as media_api
from gochat.api import state as state_api
from gochat.api import web as web_api
from gochat.api.deps import limit_by_address
from gochat.api.errors import JsonResponse, error_body, install_error_handlers
from gochat.broker.factory import Ephemeral, create_broker, create_ephemeral
from gochat.clock import SystemClock
from gochat.config import Settings, resolve_secret
from gochat.media.factory import create_media_store, media_policy
from gochat.observability import BodyLimitMiddleware, BodyTooLarge, Metrics, RequestContextMiddleware
from gochat.ports import Broker, Clock
from gochat.realtime.connection import Flusher
from gochat.realtime.gateway import Gateway, GatewayConfig
from gochat.realtime.hub import Hub
from gochat.security.headers import SecurityHeadersMiddleware
from gochat.security.links import LinkSigner
from gochat.security.passwords import PasswordHasher
from gochat.security.ratelimit import RateLimiter
from gochat.security.tokens import TokenCodec
from gochat.services.account_admin import AccountAdminService
from gochat.services.accounts import AccountService
from gochat.services.chat_state import ChatStateService
from gochat.services.context import Limits, ServiceContext
from gochat.services.conversations import ConversationService
from gochat.services.media import MediaService
from gochat.services.messages import MessageService
from gochat.services.presence import PresenceService
from gochat.services.publisher import Publisher
from gochat.services.registry import Services
from gochat.services.sync import SyncService
from gochat.storage import migrate
from gochat.storage.database import create_engine, ping
from gochat.storage.uow import SqlUnitOfWorkFactory


@dataclass
class Components:
    settings: Settings
    engine: AsyncEngine
    broker: Broker
    hub: Hub
    gateway: Gateway
    services: Services
    metrics: Metrics
    ephemeral: Ephemeral


WS_PATH = "/ws"


class GoChatApp(FastAPI):
    """FastAPI with a direct lane for the chat socket.

    A WebSocket at exactly ``/ws`` goes straight to the gateway: it skips the middlewares
    (HTTP-only: they pass WebSockets through, but each keeps a suspended frame per open socket)
    and the router's per-request exit stacks and exception wrappers, which cost ~8 KiB and a
    share of every connect's CPU per socket. Everything else takes the normal stack, and the
    ``/ws`` route stays registered for servers that mount the app elsewhere.
    """

    ws_lane: Callable[[WebSocket], Awaitable[None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.ws_lane is not None and scope["type"] == "websocket" and scope["path"] == WS_PATH:
            await self.ws_lane(WebSocket(scope, receive, send))
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    hasher: PasswordHasher | None = None,
    auto_migrate: bool | None = None,
) -> FastAPI:
    parts = build_components(settings, clock or SystemClock(), hasher or PasswordHasher())
    migrate_on_start = settings.is_embedded if auto_migrate is None else auto_migrate
    app = GoChatApp(
        title="GoChat",
        version=__version__,
        summary="Real-time messaging: REST for accounts and history, WebSocket at /ws for live chat.",
        lifespan=_lifespan(parts, migrate_on_start),
        # The interactive docs load Swagger UI from a CDN onto our origin (where the web client
        # keeps its tokens): development only. /openapi.json stays available everywhere.
        docs_url=None if settings.environment == "production" else "/docs",
        redoc_url=None if settings.environment == "production" else "/redoc",
    )
    app.state.services = parts.services
    app.state.metrics = parts.metrics
    app.state.components = parts
    app.state.readiness = lambda: _readiness(parts)
    install_error_handlers(app)
    app.add_exception_handler(BodyTooLarge, _too_large)
    app.include_router(health.router)
    limited = [Depends(limit_by_address)]
    app.include_router(accounts_api.router, prefix="/api/v1", dependencies=limited)
    app.include_router(conversations_api.router, prefix="/api/v1", dependencies=limited)
    app.include_router(state_api.router, prefix="/api/v1", dependencies=limited)
    app.include_router(media_api.router, prefix="/api/v1", dependencies=limited)
    _add_websocket(app, parts.gateway)
    web_api.install(app, settings.media_url, settings.web_media_origins)  # last: SPA catch-all
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_body_bytes, exempt_prefixes=("/api/v1/media",)
    )
    _add_cors(app, settings)
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.hsts or settings.tls_cert is not None)
    app.add_middleware(RequestContextMiddleware, metrics=parts.metrics)
    return app


def build_components(settings: Settings, clock: Clock, hasher: PasswordHasher) -> Components:
    engine = create_engine(settings.effective_database_url)
    broker = create_broker(settings.broker_url)
    metrics = Metrics()
    publisher = Publisher(broker, on_publish=metrics.publishes.inc, on_failure=metrics.publish_failures.inc)
    limits = Limits(
        message_max_chars=settings.message_max_chars,
        history_page_max=settings.history_page_max,
        sync_replay_limit=settings.sync_replay_limit,
        group_max_members=settings.group_max_members,
        access_token_ttl_s=settings.access_token_ttl_s,
        refresh_token_ttl_s=settings.refresh_token_ttl_s,
        message_edit_window_s=settings.message_edit_window_s,
    )
    uow = SqlUnitOfWorkFactory(engine)
    links = LinkSigner(resolve_secret(settings), settings.media_link_ttl_s, clock)
    ctx = ServiceContext(uow, clock, publisher, limits, links)
    ephemeral = create_ephemeral(settings.broker_url)
    services = _services(settings, ctx, hasher, ephemeral)
    hub = Hub(broker, metrics)
    flusher = Flusher(
        max_buffer_bytes=settings.ws_send_buffer_bytes,
        pacing=settings.ws_flush_pacing,
        max_delay=settings.ws_flush_max_delay_ms / 1000,
    )
    flusher.add_flush_listener(hub.forget_batches)
    metrics.watch_flusher(flusher)
    gateway = Gateway(
        GatewayConfig(
            tuple(settings.allowed_origins),
            settings.ws_auth_timeout_s,
            settings.ws_ping_interval_s,
            settings.ws_frame_rate,
            settings.ws_frame_burst,
            settings.rate_limits_enabled,
        ),
        hub,
        flusher,
        services,
        uow,
        metrics,
        clock,
    )
    return Components(settings, engine, broker, hub, gateway, services, metrics, ephemeral)


def _services(
    settings: Settings, ctx: ServiceContext, hasher: PasswordHasher, ephemeral: Ephemeral
) -> Services:
    tokens = TokenCodec(
        resolve_secret(settings),
        settings.jwt_issuer,
        settings.jwt_audience,
        settings.access_token_ttl_s,
        previous=tuple(settings.previous_secret_keys),
    )
    limiter = RateLimiter(
        {
            "login:user": settings.login_limit,
            "login:ip": settings.login_ip_limit,
            "register:ip": settings.register_ip_limit,
            "api:user": settings.api_user_limit,
            "api:ip": settings.api_ip_limit,
            "send:user": settings.send_user_limit,
            "upload:user": settings.upload_user_limit,
        },
        enabled=settings.rate_limits_enabled,
        storage_url=ephemeral.rate_limit_storage_url,
    )
    conversations = ConversationService(ctx)
    return Services(
        accounts=AccountService(ctx, hasher, tokens, limiter),
        account_admin=AccountAdminService(ctx, hasher, conversations),
        conversations=conversations,
        messages=MessageService(ctx, ephemeral.typing, settings.effective_commit_workers),
        chat_state=ChatStateService(ctx),
        presence=PresenceService(ctx, ephemeral.presence),
        sync=SyncService(ctx),
        limiter=limiter,
        media=MediaService(ctx, create_media_store(settings), media_policy(settings)),
    )


def _lifespan(parts: Components, migrate_on_start: bool):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if migrate_on_start:
            await migrate.upgrade(parts.engine)
        await parts.broker.start(parts.hub.on_broker_message)
        await parts.services.media.start()
        try:
            yield
        finally:
            await parts.gateway.close_all(1001, "server shutting down")
            await parts.services.messages.aclose()
            await parts.hub.aclose()
            await parts.broker.stop()
            await parts.ephemeral.aclose()
            await parts.services.media.stop()
            await parts.engine.dispose()

    return lifespan


async def _readiness(parts: Components) -> dict[str, bool]:
    return {"database": await ping(parts.engine), "broker": await parts.broker.healthy()}


def _add_cors(app: FastAPI, settings: Settings) -> None:
    """CORS stays off unless origins are configured; never with credentials for "*"."""
    if not settings.cors_origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials="*" not in settings.cors_origins,
        allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        max_age=600,
    )


def _add_websocket(app: GoChatApp, gateway: Gateway) -> None:
    app.ws_lane = gateway.serve

    @app.websocket(WS_PATH)
    async def websocket_endpoint(websocket: WebSocket) -> None:
        await gateway.serve(websocket)


async def _too_large(_request: object, _exc: Exception) -> JsonResponse:
    return JsonResponse(error_body("too_large", "the request body is too large"), 413)
