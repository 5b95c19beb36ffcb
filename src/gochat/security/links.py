"""Signed media links: URLs that work without an Authorization header (``<img src>``).

A link names one media object and one variant and carries an expiry and an HMAC over the
three, keyed by a key derived from the app secret. Links are signed per media, not per
viewer, so the same JSON can be broadcast to every member of a conversation. Expiries are
rounded to a quarter of the TTL, so a media's link stays byte-identical for a while (one
cache entry in browsers) and every link handed out is valid for at least 3/4 of the TTL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from gochat.ports import Clock

MEDIA_PREFIX = "/api/v1/media"
_KEY_INFO = b"gochat media links v1"


class LinkSigner:
    def __init__(self, secret: str, ttl_s: int, clock: Clock) -> None:
        self._key = hmac.new(secret.encode(), _KEY_INFO, hashlib.sha256).digest()
        self._ttl_s = ttl_s
        self._step = max(1, ttl_s // 4)
        self._clock = clock

    def url(self, media_id: int, variant: str) -> str:
        exp = self.expiry()
        path = f"{MEDIA_PREFIX}/{media_id}" + ("" if variant == "original" else f"/{variant}")
        return f"{path}?exp={exp}&sig={self.signature(media_id, variant, exp)}"

    def expiry(self) -> int:
        now = int(self._clock.now().timestamp())
        return now - now % self._step + self._ttl_s

    def signature(self, media_id: int, variant: str, exp: int) -> str:
        message = f"{media_id}:{variant}:{exp}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def verify(self, media_id: int, variant: str, exp: int, sig: str) -> bool:
        """True for an unexpired link this server signed for exactly this media and variant."""
        if exp <= self._clock.now().timestamp():
            return False
        return sig.isascii() and hmac.compare_digest(self.signature(media_id, variant, exp), sig)
