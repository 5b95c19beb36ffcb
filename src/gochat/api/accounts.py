"""REST routes for accounts: /auth/* and /users/*."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response

from gochat.api.deps import PrincipalDep, ServicesDep, client_ip, path_id
from gochat.api.schemas import (
    DeleteAccountIn,
    ErrorOut,
    LoginIn,
    MeOut,
    PasswordIn,
    ProfileIn,
    RefreshIn,
    RegisterIn,
    SessionOut,
    SessionsOut,
    TokensOut,
    UserOut,
    UsersOut,
)
from gochat.clock import to_rfc3339
from gochat.domain.models import User
from gochat.domain.validation import field_error
from gochat.domain.wire import user_json
from gochat.ids import parse_id
from gochat.services.accounts import TokenPair

router = APIRouter()
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorOut} for code in (400, 401, 404, 409, 413, 422, 429)
}


def avatar_id(value: str | None) -> int | None:
    if value is None:
        return None
    parsed = parse_id(value)
    if parsed is None:
        raise field_error("avatar_media_id", "no such media")
    return parsed


def tokens_out(pair: TokenPair) -> TokensOut:
    return TokensOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        user_id=str(pair.user_id),
        session_id=str(pair.session_id),
    )


def me_out(user: User, avatar_url: str | None = None) -> MeOut:
    return MeOut(**user_json(user, avatar_url), presence_hidden=user.presence_hidden)


@router.post("/auth/register", status_code=201, response_model=UserOut, responses=ERRORS)
async def register(body: RegisterIn, request: Request, svc: ServicesDep) -> UserOut:
    await svc.limiter.hit("register:ip", client_ip(request))
    user = await svc.accounts.register(body.username, body.password, body.display_name)
    return UserOut(**user_json(user))


@router.post("/auth/login", response_model=TokensOut, responses=ERRORS)
async def login(body: LoginIn, request: Request, svc: ServicesDep) -> TokensOut:
    device = request.headers.get("user-agent", "")
    pair = await svc.accounts.login(body.username, body.password, client_ip(request), device)
    return tokens_out(pair)


@router.post("/auth/refresh", response_model=TokensOut, responses=ERRORS)
async def refresh(body: RefreshIn, svc: ServicesDep) -> TokensOut:
    return tokens_out(await svc.accounts.refresh(body.refresh_token))


@router.post("/auth/logout", status_code=204, responses=ERRORS)
async def logout(body: RefreshIn, svc: ServicesDep) -> Response:
    await svc.accounts.logout(body.refresh_token)
    return Response(status_code=204)


@router.get("/users/me", response_model=MeOut, responses=ERRORS)
async def get_me(me: PrincipalDep, svc: ServicesDep) -> MeOut:
    user = await svc.accounts.get_user(me.user_id)
    return me_out(user, svc.media.avatar_url(user))


@router.patch("/users/me", response_model=MeOut, responses=ERRORS)
async def patch_me(body: ProfileIn, me: PrincipalDep, svc: ServicesDep) -> MeOut:
    if "avatar_media_id" in body.model_fields_set:  # null removes the avatar
        await svc.media.set_avatar(me.user_id, avatar_id(body.avatar_media_id))
    changes = body.model_dump(exclude_unset=True, exclude_none=True, exclude={"avatar_media_id"})
    before = await svc.accounts.get_user(me.user_id)
    user = await svc.accounts.update_profile(me.user_id, changes)
    if user.presence_hidden != before.presence_hidden:
        await svc.presence.visibility_changed(me.user_id, user.presence_hidden)
    return me_out(user, svc.media.avatar_url(user))


@router.get("/users/{user_id}", response_model=UserOut, responses=ERRORS)
async def get_user(user_id: str, _me: PrincipalDep, svc: ServicesDep) -> UserOut:
    user = await svc.accounts.get_user(path_id(user_id), include_deleted=True)
    return UserOut(**user_json(user, svc.media.avatar_url(user)))


@router.get("/users", response_model=UsersOut, responses=ERRORS)
async def search_users(
    _me: PrincipalDep,
    svc: ServicesDep,
    q: str = Query(default="", max_length=64),
    limit: int = Query(default=20, ge=1, le=50),
) -> UsersOut:
    users = await svc.accounts.search(q, limit)
    return UsersOut(users=[UserOut(**user_json(u, svc.media.avatar_url(u))) for u in users])


@router.get("/sessions", response_model=SessionsOut, responses=ERRORS)
async def list_sessions(me: PrincipalDep, svc: ServicesDep) -> SessionsOut:
    sessions = await svc.account_admin.sessions(me.user_id)
    return SessionsOut(
        sessions=[
            SessionOut(
                id=str(s.id),
                device=s.device,
                created_at=to_rfc3339(s.created_at) or "",
                expires_at=to_rfc3339(s.expires_at) or "",
                current=s.id == me.session_id,
            )
            for s in sessions
        ]
    )


@router.delete("/sessions/{session_id}", status_code=204, responses=ERRORS)
async def revoke_session(session_id: str, me: PrincipalDep, svc: ServicesDep) -> Response:
    await svc.account_admin.revoke_session(me.user_id, path_id(session_id))
    return Response(status_code=204)


@router.post("/auth/password", status_code=204, responses=ERRORS)
async def change_password(body: PasswordIn, me: PrincipalDep, svc: ServicesDep) -> Response:
    await svc.account_admin.change_password(
        me.user_id, me.session_id, body.current_password, body.new_password
    )
    return Response(status_code=204)


@router.delete("/users/me", status_code=204, responses=ERRORS)
async def delete_account(body: DeleteAccountIn, me: PrincipalDep, svc: ServicesDep) -> Response:
    await svc.account_admin.delete_account(me.user_id, body.password)
    return Response(status_code=204)
