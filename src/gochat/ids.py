"""64-bit ids: milliseconds since 2025-01-01 in the high bits, 22 random bits below.

Roughly time-ordered (good for B-tree inserts), unguessable enough that ids leak nothing
useful, generated without a database round trip. JSON carries them as strings.
"""

from __future__ import annotations

import secrets
import time

EPOCH_MS = 1_735_689_600_000
RANDOM_BITS = 22
MAX_ID = 2**63 - 1


def new_id() -> int:
    ms = int(time.time() * 1000) - EPOCH_MS
    return (ms << RANDOM_BITS) | secrets.randbits(RANDOM_BITS)


def parse_id(value: str) -> int | None:
    """The id a client sent as a string, or None if it cannot name anything."""
    if not value or len(value) > 19 or not value.isascii() or not value.isdigit():
        return None
    number = int(value)
    return number if 0 < number <= MAX_ID else None
