"""REST routes for media: upload, download (original and thumbnail), metadata.

Downloads take either the Bearer token (uploader or a member of a conversation where the
media was shared) or a signed link (``?exp=&sig=``, what the media JSON's ``url`` and
``thumbnail_url`` hold, for ``<img src>``). Every answer carries ``nosniff``, a sandboxing
Content-Security-Policy, and ``Content-Disposition: attachment`` unless it is a raster image.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel
from starlette.responses import FileResponse, RedirectResponse, StreamingResponse

from gochat.api.deps import PrincipalDep, ServicesDep, bearer, path_id, principal
from gochat.api.multipart import refuse_declared_oversize, spooled_file
from gochat.api.schemas import ErrorOut
from gochat.domain.media_rules import ACCEPTED, ORIGINAL, THUMBNAIL, media_json
from gochat.services.media import Delivery, Upload

router = APIRouter(prefix="/media", tags=["media"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 413, 415, 422, 429, 503)
}
MEDIA_CSP = "sandbox; default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'"
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
Expiry = Annotated[int | None, Query(ge=0, le=2**40, description="Signed link: expiry (Unix time)")]
Signature = Annotated[str | None, Query(max_length=128, description="Signed link: signature")]
# Downloads take the Bearer token OR a signed link: the token is optional in the spec (`{}`).
TOKEN_OR_LINK: dict[str, Any] = {"security": [{}]}
# A download is the file in its detected type, or a redirect to the object store (S3).
BINARY = {"schema": {"type": "string", "format": "binary"}}
DOWNLOAD: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    200: {"content": {mime: BINARY for mime in ACCEPTED}},
    307: {"description": "Redirect to a short-lived URL of the object store"},
}


class MediaOut(BaseModel):
    id: str
    content_type: str
    size: int
    filename: str
    sha256: str
    width: int | None
    height: int | None
    url: str | None
    thumbnail_url: str | None


@router.post("", status_code=201, response_model=MediaOut, responses=ERRORS, openapi_extra=UPLOAD_BODY)
async def upload(request: Request, me: PrincipalDep, svc: ServicesDep) -> object:
    """Upload one file (multipart field ``file``); the type is decided from its bytes."""
    await svc.limiter.hit("upload:user", str(me.user_id))
    max_bytes = svc.media.policy.max_bytes
    refuse_declared_oversize(request, max_bytes)
    async with spooled_file(request, max_bytes) as (path, filename):
        item = await svc.media.upload(me.user_id, Upload(path, filename))
    return media_json(item)


@router.get("/{media_id}/info", response_model=MediaOut, responses=ERRORS)
async def info(media_id: str, me: PrincipalDep, svc: ServicesDep) -> object:
    """The media's metadata with fresh signed links."""
    return media_json(await svc.media.item(me.user_id, path_id(media_id)))


@router.get("/{media_id}", responses=DOWNLOAD, openapi_extra=TOKEN_OR_LINK)
async def download(
    media_id: str,
    request: Request,
    svc: ServicesDep,
    credentials: Credentials,
    exp: Expiry = None,
    sig: Signature = None,
) -> Response:
    """The file: bytes, or a 307 redirect to a short-lived URL of the object store."""
    return await _answer(request, svc, credentials, media_id, ORIGINAL, exp, sig)


@router.get(
    "/{media_id}/thumbnail",
    responses={**DOWNLOAD, 200: {"content": {"image/webp": BINARY}}},
    openapi_extra=TOKEN_OR_LINK,
)
async def thumbnail(
    media_id: str,
    request: Request,
    svc: ServicesDep,
    credentials: Credentials,
    exp: Expiry = None,
    sig: Signature = None,
) -> Response:
    """A WebP of at most 320 px (images only)."""
    return await _answer(request, svc, credentials, media_id, THUMBNAIL, exp, sig)


async def _answer(
    request: Request,
    svc: ServicesDep,
    credentials: HTTPAuthorizationCredentials | None,
    media_id: str,
    variant: str,
    exp: int | None,
    sig: str | None,
) -> Response:
    if exp is not None and sig is not None:
        delivery = await svc.media.for_link(path_id(media_id), variant, exp, sig)
    else:
        me = await principal(request, credentials)
        delivery = await svc.media.for_user(me.user_id, path_id(media_id), variant)
    return respond(delivery)


def respond(delivery: Delivery) -> Response:
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": MEDIA_CSP,
        "Content-Disposition": delivery.disposition,
        "Cache-Control": "private, max-age=300",
        "Referrer-Policy": "no-referrer",
    }
    if delivery.redirect_url is not None:
        headers["Cache-Control"] = "no-store"
        return RedirectResponse(delivery.redirect_url, status_code=307, headers=headers)
    if delivery.path is not None:
        return FileResponse(delivery.path, media_type=delivery.content_type, headers=headers)
    assert delivery.stream is not None
    if delivery.size is not None:
        headers["Content-Length"] = str(delivery.size)
    return StreamingResponse(delivery.stream, media_type=delivery.content_type, headers=headers)
