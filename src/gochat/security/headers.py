"""Security headers on every HTTP response (routes may set stricter ones of their own)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The API serves JSON only: nothing it returns may run, frame or load anything.
API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
BASE_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
DOCS_PATHS = ("/docs", "/redoc")


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Swagger UI needs its CDN scripts; every other page gets the strict policy.
        with_csp = not scope["path"].startswith(DOCS_PATHS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self._merge(list(message.get("headers", [])), with_csp)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _merge(self, headers: list[tuple[bytes, bytes]], with_csp: bool) -> list[tuple[bytes, bytes]]:
        present = {name.lower() for name, _ in headers}
        extra = [h for h in BASE_HEADERS if h[0] not in present]
        if with_csp and b"content-security-policy" not in present:
            extra.append((b"content-security-policy", API_CSP))
        if self.hsts:
            extra.append(HSTS)
        return headers + extra
