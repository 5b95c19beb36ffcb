"""Access tokens (short-lived JWT) and refresh tokens (opaque, stored hashed)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from gochat.errors import InvalidToken

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "sid", "typ"]


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    session_id: int
    expires_at: int  # unix seconds


def signing_key(secret: str) -> tuple[str, bytes]:
    """(kid, key) derived from a secret, so the raw setting is never used for two purposes."""
    key = hashlib.sha256(b"gochat-access-jwt\x00" + secret.encode()).digest()
    return hashlib.sha256(b"kid\x00" + key).hexdigest()[:16], key


class TokenCodec:
    """Issues and verifies access JWTs with a pinned algorithm and every claim checked.

    Tokens carry a ``kid``: after the secret is rotated, tokens signed with a previous
    secret (``previous`` here) keep verifying until they expire; new ones use the current.
    """

    def __init__(
        self, secret: str, issuer: str, audience: str, ttl_s: int, previous: tuple[str, ...] = ()
    ) -> None:
        self._kid, self._key = signing_key(secret)
        self._keys = dict(signing_key(old) for old in previous)
        self._keys[self._kid] = self._key
        self._issuer = issuer
        self._audience = audience
        self.ttl_s = ttl_s

    def issue(self, user_id: int, session_id: int, now: datetime) -> str:
        iat = int(now.timestamp())
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user_id),
            "sid": str(session_id),
            "typ": "access",
            "iat": iat,
            "exp": iat + self.ttl_s,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self._kid})

    def verify(self, token: str, now: datetime) -> AccessClaims:
        try:
            key = self._keys.get(str(jwt.get_unverified_header(token).get("kid")))
            if key is None:
                raise InvalidToken("the token was signed with an unknown key")
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": REQUIRED_CLAIMS, "verify_iat": False, "verify_exp": False},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken() from exc
        return self._check_claims(claims, now)

    def _check_claims(self, claims: dict[str, object], now: datetime) -> AccessClaims:
        exp, iat = claims["exp"], claims["iat"]
        if claims["typ"] != "access" or not isinstance(exp, int) or not isinstance(iat, int):
            raise InvalidToken()
        # Expiry is checked against the injected clock, so tests need no sleeping.
        if exp <= now.timestamp() or iat > now.timestamp() + 60:
            raise InvalidToken("the access token expired")
        try:
            return AccessClaims(int(str(claims["sub"])), int(str(claims["sid"])), exp)
        except ValueError as exc:
            raise InvalidToken() from exc


def new_refresh_token() -> tuple[str, str]:
    """A fresh opaque refresh token and the hash that is stored in its place."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def refresh_expiry(now: datetime, ttl_s: int) -> datetime:
    return now + timedelta(seconds=ttl_s)
