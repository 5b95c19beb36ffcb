"""The web client: its built bundle (``gochat/web``) served at ``/`` under a strict CSP.

The bundle is built from ``web/`` with Vite and committed inside the package, so serving it
needs no Node.js. ``/assets/*`` are content-hashed and cached forever; any other GET that is
not an API, WebSocket or operations path is a client route and gets ``index.html`` (the SPA
fallback). Every response from here carries the Content-Security-Policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Match, Route
from starlette.types import Scope

from gochat.api.errors import JsonResponse, error_body

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
# Paths that belong to the server, never to the client router: a miss there is a JSON 404.
SERVER_PREFIXES = ("/api/", "/ws", "/healthz", "/readyz", "/metrics", "/docs", "/redoc", "/openapi.json")
IMMUTABLE = "public, max-age=31536000, immutable"


def content_security_policy(extra_origins: Iterable[str] = ()) -> str:
    """Same-origin everything; images and media may also come from the given origins (S3)."""
    extra = " ".join(sorted({o.rstrip("/") for o in extra_origins if o}))
    media = f"'self' blob: data: {extra}".rstrip()
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {media}",
            f"media-src {media}",
            f"connect-src 'self' {extra}".rstrip(),
            "font-src 'self'",
            "object-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        ]
    )


def media_origins(media_url: str | None, configured: Iterable[str]) -> list[str]:
    """Configured origins, plus the S3 endpoint's origin when media lives on one."""
    found = [o for o in configured if o]
    if media_url and media_url.startswith("s3://"):
        endpoint = parse_qs(urlsplit(media_url).query).get("endpoint", [""])[0]
        parts = urlsplit(endpoint)
        if parts.scheme in ("http", "https") and parts.netloc:
            found.append(f"{parts.scheme}://{parts.netloc}")
    return found


class WebClient:
    """Serves the bundle from ``root``; one instance per app, holding the header values."""

    def __init__(self, root: Path, csp: str) -> None:
        self.root = root.resolve()
        self.headers = {
            "Content-Security-Policy": csp,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
            "Cross-Origin-Opener-Policy": "same-origin",
        }

    def available(self) -> bool:
        return (self.root / "index.html").is_file()

    async def asset(self, request: Request) -> Response:
        found = self._file("assets/" + str(request.path_params["path"]))
        if found is None:
            return self._missing()
        return FileResponse(found, headers={**self.headers, "Cache-Control": IMMUTABLE})

    async def page(self, request: Request) -> Response:
        path = str(request.path_params.get("path", ""))
        found = self._file(path) if path else None
        if found is not None:
            return FileResponse(found, headers={**self.headers, "Cache-Control": "no-cache"})
        if "." in path.rsplit("/", 1)[-1] or not self.available():
            return self._missing()  # a missing file, not a client route
        headers = {**self.headers, "Cache-Control": "no-cache"}
        return FileResponse(self.root / "index.html", media_type="text/html", headers=headers)

    def _file(self, relative: str) -> Path | None:
        candidate = (self.root / relative).resolve()
        if not candidate.is_relative_to(self.root) or not candidate.is_file():
            return None
        return candidate

    def _missing(self) -> Response:
        return JsonResponse(error_body("not_found", "no such file"), 404, headers=self.headers)


class ClientRoute(Route):
    """A GET/HEAD route that never claims server paths, so their 404s and 405s stay theirs."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD"):
            return Match.NONE, {}
        path: str = scope.get("path", "")
        if path.startswith(SERVER_PREFIXES):
            return Match.NONE, {}
        return super().matches(scope)


def routes(client: WebClient) -> list[Route]:
    """Mount last: the catch-all must come after every API route."""
    return [
        ClientRoute("/assets/{path:path}", client.asset, methods=["GET", "HEAD"]),
        ClientRoute("/{path:path}", client.page, methods=["GET", "HEAD"]),
    ]


def install(app: Any, media_url: str | None, extra_origins: Iterable[str], root: Path = WEB_DIR) -> None:
    """Serve the web client from ``app`` (a FastAPI/Starlette application)."""
    client = WebClient(root, content_security_policy(media_origins(media_url, extra_origins)))
    app.router.routes.extend(routes(client))
