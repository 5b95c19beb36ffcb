"""argon2id password hashing, off the event loop, with equal time for unknown users."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher as Argon2Hasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class PasswordHasher:
    def __init__(self, time_cost: int = 2, memory_cost_kib: int = 19_456) -> None:
        # OWASP's argon2id baseline (19 MiB, t=2); tests may pass cheaper parameters.
        self._hasher = Argon2Hasher(time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=1)
        # Verified against when the username does not exist, so both failures cost the same.
        self._decoy = self._hasher.hash("decoy-password-for-timing")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await asyncio.to_thread(self._verify, password_hash or self._decoy, password)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
