"""64-bit ids: milliseconds since 2025-01-01 in the high bits, 22 random bits below.

Roughly time-ordered (good for B-tree inserts), unguessable enough that ids leak nothing
useful, generated without a database round trip. JSON carries them as strings.
"""

from __future__ import annotations

import secrets
import threading
import time

EPOCH_MS = 1_735_689_600_000
RANDOM_BITS = 22
MAX_ID = 2**63 - 1


_last_id = 0
_last_lock = threading.Lock()


def new_id() -> int:
    global _last_id
    ms = int(time.time() * 1000) - EPOCH_MS
    candidate = (ms << RANDOM_BITS) | secrets.randbits(RANDOM_BITS)
    # Random bits alone collide within one millisecond (birthday bound: ~1 in 8 ms at 1,000
    # ids/ms); stepping past the last id keeps ids unique and increasing in this process.
    with _last_lock:
        _last_id = max(candidate, _last_id + 1 + secrets.randbits(10))
        return _last_id


def parse_id(value: str) -> int | None:
    """The id a client sent as a string, or None if it cannot name anything."""
    if not value or len(value) > 19 or not value.isascii() or not value.isdigit():
        return None
    number = int(value)
    return number if 0 < number <= MAX_ID else None
