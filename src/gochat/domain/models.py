"""Plain records the services pass around. No I/O, no framework."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


class ConversationKind(StrEnum):
    DIRECT = "direct"
    GROUP = "group"


class EventKind(StrEnum):
    """Persistent changes, each one position (``pos``) in its conversation's log."""

    MESSAGE_CREATED = "message.created"
    MESSAGE_UPDATED = "message.updated"
    MESSAGE_DELETED = "message.deleted"
    REACTION_CHANGED = "reaction.changed"
    MEMBER_JOINED = "member.joined"
    MEMBER_LEFT = "member.left"
    MEMBER_UPDATED = "member.updated"
    CONVERSATION_UPDATED = "conversation.updated"
    # Rendered as receipt.read for other members and conversation.read for the reader.
    RECEIPT_READ = "receipt.read"


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    display_name: str
    bio: str
    avatar_media_id: int | None
    created_at: datetime
    presence_hidden: bool = False


@dataclass(frozen=True, slots=True)
class Session:
    id: int
    user_id: int
    device: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at


@dataclass(frozen=True, slots=True)
class Member:
    user_id: int
    role: Role
    read_seq: int = 0


@dataclass(frozen=True, slots=True)
class Membership:
    """One user's standing in one conversation, current or past."""

    conversation_id: int
    user_id: int
    role: Role
    read_seq: int
    joined_pos: int
    left_pos: int | None
    muted: bool = False

    @property
    def active(self) -> bool:
        return self.left_pos is None


@dataclass(frozen=True, slots=True)
class ReactionSummary:
    """One emoji on one message: how many and who."""

    emoji: str
    user_ids: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.user_ids)


@dataclass(frozen=True, slots=True)
class MediaItem:
    """An uploaded file as messages and avatars show it; the URLs are signed links."""

    id: int
    content_type: str
    size: int
    filename: str
    sha256: str
    width: int | None = None
    height: int | None = None
    url: str | None = None
    thumbnail_url: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    conversation_id: int
    seq: int
    sender_id: int
    client_msg_id: str
    body: str | None
    reply_to_seq: int | None
    created_at: datetime
    edited_at: datetime | None = None
    deleted_at: datetime | None = None
    pos: int = 0
    mention_ids: tuple[int, ...] = ()
    reactions: tuple[ReactionSummary, ...] = ()
    # How many media the message carries: their rows are loaded only when it is not zero.
    media_count: int = 0
    media: tuple[MediaItem, ...] = ()

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass(frozen=True, slots=True)
class Conversation:
    id: int
    kind: ConversationKind
    title: str | None
    created_at: datetime
    last_seq: int
    last_pos: int
    members: tuple[Member, ...] = ()


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    """A row of the conversation list, from one user's point of view."""

    conversation: Conversation
    read_seq: int
    unread_count: int
    last_message: Message | None
    mention_count: int = 0
    muted: bool = False


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of a conversation's change log; rendered from current state on replay."""

    conversation_id: int
    pos: int
    kind: EventKind
    seq: int | None
    user_id: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Badge:
    conversation_id: int
    unread_count: int
    mention_count: int
    muted: bool


@dataclass(frozen=True, slots=True)
class NotificationSummary:
    """What a client needs for badges without fetching every conversation."""

    total_unread: int
    total_mentions: int
    conversations: list[Badge]
