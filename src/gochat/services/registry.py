"""The bundle of services the edges (REST and WebSocket) call."""

from __future__ import annotations

from dataclasses import dataclass

from gochat.security.ratelimit import RateLimiter
from gochat.services.account_admin import AccountAdminService
from gochat.services.accounts import AccountService
from gochat.services.chat_state import ChatStateService
from gochat.services.conversations import ConversationService
from gochat.services.media import MediaService
from gochat.services.messages import MessageService
from gochat.services.presence import PresenceService
from gochat.services.sync import SyncService


@dataclass(frozen=True, slots=True)
class Services:
    accounts: AccountService
    account_admin: AccountAdminService
    conversations: ConversationService
    messages: MessageService
    chat_state: ChatStateService
    presence: PresenceService
    sync: SyncService
    limiter: RateLimiter
    media: MediaService
