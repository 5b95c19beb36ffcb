"""Accounts: registration, login, token refresh and logout, profiles and search."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import timedelta

from gochat import ids
from gochat.domain.models import Session, User
from gochat.domain.protocol import encode_event
from gochat.domain.validation import (
    check_password,
    clean_bio,
    clean_display_name,
    normalize_username,
    username_key,
)
from gochat.errors import InvalidCredentials, InvalidRequest, InvalidToken, NotFound
from gochat.security.passwords import PasswordHasher
from gochat.security.ratelimit import RateLimiter
from gochat.security.tokens import AccessClaims, TokenCodec, hash_refresh_token, new_refresh_token
from gochat.services.context import ServiceContext
from gochat.storage.uow import SqlUnitOfWork


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: int
    user_id: int


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, established from a verified access token and a live session."""

    user_id: int
    session_id: int
    token_expires_at: int


class AccountService:
    def __init__(
        self, ctx: ServiceContext, hasher: PasswordHasher, tokens: TokenCodec, limiter: RateLimiter
    ) -> None:
        self._ctx = ctx
        self._hasher = hasher
        self._tokens = tokens
        self._limiter = limiter

    async def register(self, username: str, password: str, display_name: str | None) -> User:
        name = normalize_username(username)
        check_password(password)
        shown = clean_display_name(display_name) if display_name is not None else name
        user = User(ids.new_id(), name, shown, "", None, self._ctx.clock.now())
        password_hash = await self._hasher.hash(password)
        async with self._ctx.uow() as uow:
            await uow.users.add(user, username_key(name), password_hash)
            await uow.commit()
        return user

    async def login(self, username: str, password: str, client_ip: str, device: str = "") -> TokenPair:
        key = username_key(unicodedata.normalize("NFKC", username).strip())[:64]
        await self._limiter.hit("login:ip", client_ip)
        await self._limiter.check("login:user", key)
        async with self._ctx.uow() as uow:
            found = await uow.users.get_with_password(key)
        # Unknown user and wrong password take the same path and the same argon2 time.
        ok = await self._hasher.verify(found[1] if found else None, password)
        if found is None or not ok:
            await self._limiter.hit("login:user", key)
            raise InvalidCredentials()
        return await self._open_session(found[0].id, device[:128])

    async def _open_session(self, user_id: int, device: str) -> TokenPair:
        now = self._ctx.clock.now()
        ttl = timedelta(seconds=self._ctx.limits.refresh_token_ttl_s)
        session = Session(ids.new_id(), user_id, device, now, now + ttl, None)
        token, token_hash = new_refresh_token()
        async with self._ctx.uow() as uow:
            await uow.sessions.add(session)
            await uow.sessions.add_refresh_token(token_hash, session.id, now)
            await uow.commit()
        return self._pair(user_id, session.id, token)

    def _pair(self, user_id: int, session_id: int, refresh_token: str) -> TokenPair:
        access = self._tokens.issue(user_id, session_id, self._ctx.clock.now())
        return TokenPair(access, refresh_token, self._tokens.ttl_s, session_id, user_id)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate: the presented token is spent; presenting a spent one revokes the session."""
        now = self._ctx.clock.now()
        token_hash = hash_refresh_token(refresh_token)
        async with self._ctx.uow() as uow:
            session = await self._session_for_refresh(uow, token_hash)
            if session is None or not await uow.sessions.use_refresh_token(token_hash, now):
                await self._revoke_on_reuse(uow, token_hash)
                raise InvalidToken("the refresh token is invalid, spent or revoked")
            new_token, new_hash = new_refresh_token()
            await uow.sessions.add_refresh_token(new_hash, session.id, now)
            ttl = timedelta(seconds=self._ctx.limits.refresh_token_ttl_s)
            await uow.sessions.extend(session.id, now, now + ttl)
            await uow.commit()
        return self._pair(session.user_id, session.id, new_token)

    async def _session_for_refresh(self, uow: SqlUnitOfWork, token_hash: str) -> Session | None:
        found = await uow.sessions.find_refresh_token(token_hash)
        if found is None or found[1] is not None:
            return None
        session = await uow.sessions.get(found[0])
        if session is None or not session.is_active(self._ctx.clock.now()):
            return None
        return session

    async def _revoke_on_reuse(self, uow: SqlUnitOfWork, token_hash: str) -> None:
        found = await uow.sessions.find_refresh_token(token_hash)
        if found is None or found[1] is None:
            return  # never issued (garbage), or the session merely expired
        session = await uow.sessions.get(found[0])
        if session is not None and await uow.sessions.revoke(session.id, self._ctx.clock.now()):
            await uow.commit()
            await self._announce_revoked(session)

    async def logout(self, refresh_token: str) -> None:
        token_hash = hash_refresh_token(refresh_token)
        async with self._ctx.uow() as uow:
            found = await uow.sessions.find_refresh_token(token_hash)
            session = await uow.sessions.get(found[0]) if found else None
            if session is None or session.revoked_at is not None:
                raise InvalidToken("the refresh token is invalid or already logged out")
            await uow.sessions.revoke(session.id, self._ctx.clock.now())
            await uow.commit()
        await self._announce_revoked(session)

    async def _announce_revoked(self, session: Session) -> None:
        frame = encode_event("session.revoked", session_id=str(session.id))
        await self._ctx.publisher.to_user(session.user_id, frame, route=f"revoke:{session.id}")

    async def authenticate(self, access_token: str) -> Principal:
        """A verified access token whose session is still live (logout takes effect at once)."""
        claims = self._tokens.verify(access_token, self._ctx.clock.now())
        async with self._ctx.uow() as uow:
            session = await uow.sessions.get(claims.session_id)
        return self._principal(claims, session)

    def _principal(self, claims: AccessClaims, session: Session | None) -> Principal:
        if session is None or session.user_id != claims.user_id:
            raise InvalidToken()
        if not session.is_active(self._ctx.clock.now()):
            raise InvalidToken("the session was revoked or expired")
        return Principal(claims.user_id, claims.session_id, claims.expires_at)

    async def get_user(self, user_id: int, *, include_deleted: bool = False) -> User:
        async with self._ctx.uow() as uow:
            user = await (uow.users.get_public(user_id) if include_deleted else uow.users.get(user_id))
        if user is None:
            raise NotFound("no such user")
        return user

    async def update_profile(self, user_id: int, changes: dict[str, object]) -> User:
        values = _clean_profile(changes)
        async with self._ctx.uow() as uow:
            await uow.users.update_profile(user_id, values)
            await uow.commit()
        return await self.get_user(user_id)

    async def search(self, prefix: str, limit: int) -> list[User]:
        key = username_key(prefix.strip())
        if not key:
            return []
        async with self._ctx.uow() as uow:
            return await uow.users.search_prefix(key[:32], max(1, min(limit, 50)))


def _clean_profile(changes: dict[str, object]) -> dict[str, object]:
    values: dict[str, object] = {}
    for name, value in changes.items():
        if name == "display_name" and isinstance(value, str):
            values[name] = clean_display_name(value)
        elif name == "bio" and isinstance(value, str):
            values[name] = clean_bio(value)
        elif name == "presence_hidden" and isinstance(value, bool):
            values[name] = value
        else:
            raise InvalidRequest(
                f"{name} cannot be set to that", fields=[{"field": name, "message": "invalid"}]
            )
    return values
