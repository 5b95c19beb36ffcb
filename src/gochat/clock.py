"""Time comes from an injected clock so expiry is tested without sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


def to_rfc3339(moment: datetime | None) -> str | None:
    """RFC 3339 UTC with milliseconds, as the contract fixes: 2026-11-30T12:00:00.123Z."""
    if moment is None:
        return None
    if moment.tzinfo is not None and moment.utcoffset():
        moment = moment.astimezone(UTC)
    # isoformat on the naive UTC time: ~3x cheaper than strftime (it runs for every rendered
    # message), and zero-padded years, as RFC 3339 requires.
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
