"""FastAPI dependencies: the services container and the authenticated principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gochat.errors import InvalidToken, NotFound
from gochat.ids import parse_id
from gochat.services.accounts import Principal
from gochat.services.registry import Services


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


bearer = HTTPBearer(auto_error=False, description="An access token from /api/v1/auth/login")


async def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise InvalidToken("an access token is required")
    svc = services(request)
    found = await svc.accounts.authenticate(credentials.credentials)
    request.state.user_id = found.user_id
    await svc.limiter.hit("api:user", str(found.user_id))
    return found


async def limit_by_address(request: Request) -> None:
    """Every API request counts against its client address (429 + Retry-After past it)."""
    await services(request).limiter.hit("api:ip", client_ip(request))


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def path_id(value: str) -> int:
    """An id from the path; one that cannot exist is simply not found."""
    parsed = parse_id(value)
    if parsed is None:
        raise NotFound()
    return parsed


ServicesDep = Annotated[Services, Depends(services)]
PrincipalDep = Annotated[Principal, Depends(principal)]
