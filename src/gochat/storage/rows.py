"""Row <-> domain conversions shared by the repositories."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gochat.domain.models import (
    Conversation,
    ConversationKind,
    Event,
    EventKind,
    Membership,
    Message,
    Role,
    Session,
    User,
)


def to_db_time(moment: datetime) -> datetime:
    """Naive UTC for storage (both SQLite and MySQL DATETIME lack zones)."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def from_db_time(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=UTC)


def aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC)


def user_from_row(row: Any) -> User:
    return User(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        bio=row.bio,
        avatar_media_id=row.avatar_media_id,
        created_at=aware(row.created_at),
        presence_hidden=bool(row.presence_hidden),
    )


def session_from_row(row: Any) -> Session:
    return Session(
        id=row.id,
        user_id=row.user_id,
        device=row.device,
        created_at=aware(row.created_at),
        expires_at=aware(row.expires_at),
        revoked_at=from_db_time(row.revoked_at),
    )


def conversation_from_row(row: Any) -> Conversation:
    return Conversation(
        id=row.id,
        kind=ConversationKind(row.kind),
        title=row.title,
        created_at=aware(row.created_at),
        last_seq=row.last_seq,
        last_pos=row.last_pos,
    )


def membership_from_row(row: Any) -> Membership:
    return Membership(
        conversation_id=row.conversation_id,
        user_id=row.user_id,
        role=Role(row.role),
        read_seq=row.read_seq,
        joined_pos=row.joined_pos,
        left_pos=row.left_pos,
        muted=bool(row.muted),
    )


def message_from_row(row: Any) -> Message:
    return Message(
        id=row.id,
        conversation_id=row.conversation_id,
        seq=row.seq,
        pos=row.pos,
        sender_id=row.sender_id,
        client_msg_id=row.client_msg_id,
        body=row.body,
        reply_to_seq=row.reply_to_seq,
        created_at=aware(row.created_at),
        edited_at=from_db_time(row.edited_at),
        deleted_at=from_db_time(row.deleted_at),
        mention_ids=parse_id_list(row.mention_ids),
        media_count=row.media_count,
    )


def parse_id_list(text: str | None) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split()) if text else ()


def format_id_list(values: tuple[int, ...]) -> str | None:
    return " ".join(str(v) for v in values) if values else None


def event_from_row(row: Any) -> Event:
    return Event(
        conversation_id=row.conversation_id,
        pos=row.pos,
        kind=EventKind(row.kind),
        seq=row.seq,
        user_id=row.user_id,
        created_at=aware(row.created_at),
    )


def message_values(message: Message) -> dict[str, Any]:
    """The row a new message is inserted as (one place for the single and the batched path)."""
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "seq": message.seq,
        "pos": message.pos,
        "sender_id": message.sender_id,
        "client_msg_id": message.client_msg_id,
        "body": message.body,
        "reply_to_seq": message.reply_to_seq,
        "created_at": to_db_time(message.created_at),
        "edited_at": None,
        "deleted_at": None,
        "mention_ids": format_id_list(message.mention_ids),
        "media_count": message.media_count,
    }


def event_values(event: Event) -> dict[str, Any]:
    return {
        "conversation_id": event.conversation_id,
        "pos": event.pos,
        "kind": event.kind.value,
        "seq": event.seq,
        "user_id": event.user_id,
        "created_at": to_db_time(event.created_at),
    }
