"""What every service needs, built once by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gochat.ports import Clock
from gochat.security.links import LinkSigner
from gochat.services.publisher import Publisher
from gochat.storage.uow import SqlUnitOfWork


@dataclass(frozen=True, slots=True)
class Limits:
    message_max_chars: int = 4000
    history_page_max: int = 200
    sync_replay_limit: int = 1000
    group_max_members: int = 1000
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 86_400
    message_edit_window_s: int = 2 * 86_400


@dataclass(frozen=True, slots=True)
class ServiceContext:
    uow: Callable[[], SqlUnitOfWork]
    clock: Clock
    publisher: Publisher
    limits: Limits
    # Signs the media links rendered into messages and avatars (None: media without URLs).
    links: LinkSigner | None = None
