"""The REST edge of the error tree: every failure becomes ``{"error": {code, message}}``."""

from __future__ import annotations

from typing import Any

import fastapi.routing
import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from gochat.errors import GoChatError, InvalidRequest, RateLimited

log = structlog.get_logger(__name__)

class JsonResponse(Response):
    """orjson-encoded JSON (FastAPI's JsonResponse is deprecated)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


HTTP_CODES = {
    400: "bad_request",
    401: "invalid_token",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


async def handle_gochat_error(_request: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, GoChatError)
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if isinstance(exc, InvalidRequest):
        extra["fields"] = exc.fields
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after_s)
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JsonResponse(error_body(exc.code, exc.message, **extra), exc.status, headers=headers)


async def handle_validation_error(_request: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, RequestValidationError)
    fields = [_field(err) for err in exc.errors()]
    body = error_body("invalid_request", "the request is not valid", fields=fields)
    return JsonResponse(body, 422)


def _field(err: Any) -> dict[str, str]:
    location = [str(part) for part in err.get("loc", ()) if part not in ("body", "query", "path")]
    return {"field": ".".join(location) or "body", "message": str(err.get("msg", "invalid"))}


async def handle_http_error(request: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code
    headers = exc.headers
    allowed = _allowed_methods(request) if exc.status_code == 405 else ""
    if allowed:
        headers = {**(headers or {}), "Allow": allowed}
    return JsonResponse(error_body(code, message), exc.status_code, headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method the path supports (RFC 9110): Starlette's 405 lists only the first route
    matching the path, so a 405 on /conversations said "Allow: POST" though GET is served too."""
    # FastAPI >= 0.16x nests included routers; older versions list every route flat.
    expand = getattr(fastapi.routing, "iter_route_contexts", list)
    methods: set[str] = set()
    for route in expand(request.app.routes):
        if route.matches(request.scope)[0] is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


async def handle_unexpected(request: Request, exc: Exception) -> JsonResponse:
    # A catch-all at the edge: log everything, tell the client nothing internal.
    log.error("unhandled_error", path=request.url.path, error=repr(exc), exc_info=exc)
    return JsonResponse(error_body("internal_error", "internal error"), 500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GoChatError, handle_gochat_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_error)
    app.add_exception_handler(Exception, handle_unexpected)
