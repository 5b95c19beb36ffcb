"""Domain records as the JSON shapes of the contract (ids as strings, RFC 3339 times).

Pure: used for REST bodies, live events and sync replay alike, so all three agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gochat.clock import to_rfc3339
from gochat.domain.media_rules import media_json
from gochat.domain.models import (
    Conversation,
    ConversationSummary,
    Event,
    EventKind,
    Membership,
    Message,
    NotificationSummary,
    User,
)

Json = dict[str, Any]


def user_json(user: User, avatar_url: str | None = None) -> Json:
    return {
        "id": str(user.id),
        "username": user.username,
        "display_name": user.display_name,
        "bio": user.bio,
        "avatar_url": avatar_url,
        "created_at": to_rfc3339(user.created_at),
    }


def message_json(message: Message) -> Json:
    """A message; a deleted one is a tombstone that keeps its seq but no content."""
    return {
        "id": str(message.id),
        "conversation_id": str(message.conversation_id),
        "seq": message.seq,
        "pos": message.pos,
        "sender_id": str(message.sender_id),
        "client_msg_id": message.client_msg_id,
        "body": None if message.deleted else message.body,
        "media": [] if message.deleted else [media_json(m) for m in message.media],
        "reply_to_seq": message.reply_to_seq,
        "created_at": to_rfc3339(message.created_at),
        "edited_at": to_rfc3339(message.edited_at),
        "deleted": message.deleted,
        "mentions": [str(u) for u in message.mention_ids],
        "reactions": reactions_json(message),
    }


def reactions_json(message: Message) -> list[Json]:
    return [
        {"emoji": r.emoji, "count": r.count, "user_ids": [str(u) for u in r.user_ids]}
        for r in message.reactions
    ]


def members_json(members: list[Membership]) -> list[Json]:
    # read_seq: members see each other's read position anyway (receipt.read); clients need
    # the starting point to show "seen" after a reload.
    return [{"user_id": str(m.user_id), "role": m.role.value, "read_seq": m.read_seq} for m in members]


def conversation_json(
    conversation: Conversation,
    *,
    read_seq: int = 0,
    unread_count: int = 0,
    members: list[Membership] | None = None,
    last_message: Message | None = None,
    mention_count: int = 0,
    muted: bool = False,
) -> Json:
    body: Json = {
        "id": str(conversation.id),
        "kind": conversation.kind.value,
        "title": conversation.title,
        "created_at": to_rfc3339(conversation.created_at),
        "last_seq": conversation.last_seq,
        "last_pos": conversation.last_pos,
        "read_seq": read_seq,
        "unread_count": unread_count,
        "mention_count": mention_count,
        "muted": muted,
        "last_message": message_json(last_message) if last_message else None,
    }
    if members is not None:
        body["members"] = members_json(members)
    return body


def summary_json(summary: ConversationSummary, members: list[Membership] | None = None) -> Json:
    return conversation_json(
        summary.conversation,
        read_seq=summary.read_seq,
        unread_count=summary.unread_count,
        last_message=summary.last_message,
        mention_count=summary.mention_count,
        muted=summary.muted,
        members=members,
    )


def read_json(event: Event, *, own: bool) -> Json:
    """A read position: ``conversation.read`` to the reader's devices, ``receipt.read`` to others."""
    return {
        "type": "conversation.read" if own else "receipt.read",
        "conversation_id": str(event.conversation_id),
        "pos": event.pos,
        "user_id": str(event.user_id),
        "seq": event.seq,
    }


def event_json(
    event: Event,
    *,
    message: Message | None = None,
    member: Membership | None = None,
    conversation: Conversation | None = None,
    viewer_id: int | None = None,
) -> Json:
    """A persistent event as it is pushed live and replayed by sync (same shape both ways)."""
    if event.kind is EventKind.RECEIPT_READ:
        return read_json(event, own=event.user_id == viewer_id)
    body: Json = {
        "type": event.kind.value,
        "conversation_id": str(event.conversation_id),
        "pos": event.pos,
    }
    body.update(_event_details(event, message, member, conversation))
    return body


def _event_details(
    event: Event,
    message: Message | None,
    member: Membership | None,
    conversation: Conversation | None,
) -> Mapping[str, Any]:
    if event.kind is EventKind.REACTION_CHANGED:
        return {"seq": event.seq, "reactions": reactions_json(message) if message else []}
    if event.kind in MESSAGE_EVENTS:
        return {"message": message_json(message)} if message else {"seq": event.seq}
    if event.kind in MEMBER_EVENTS:
        details: Json = {"user_id": str(event.user_id)}
        if member is not None and event.kind in (EventKind.MEMBER_JOINED, EventKind.MEMBER_UPDATED):
            details["role"] = member.role.value
        return details
    if event.kind is EventKind.CONVERSATION_UPDATED and conversation is not None:
        return {"title": conversation.title, "user_id": str(event.user_id)}
    return {}


MESSAGE_EVENTS = frozenset(
    {
        EventKind.MESSAGE_CREATED,
        EventKind.MESSAGE_UPDATED,
        EventKind.MESSAGE_DELETED,
        EventKind.REACTION_CHANGED,
    }
)
MEMBER_EVENTS = frozenset({EventKind.MEMBER_JOINED, EventKind.MEMBER_LEFT, EventKind.MEMBER_UPDATED})


def notification_json(summary: NotificationSummary) -> Json:
    """Badges: totals and per-conversation counts (muted conversations excluded from total_unread)."""
    return {
        "type": "notification",
        "total_unread": summary.total_unread,
        "total_mentions": summary.total_mentions,
        "conversations": [
            {
                "conversation_id": str(b.conversation_id),
                "unread_count": b.unread_count,
                "mention_count": b.mention_count,
                "muted": b.muted,
            }
            for b in summary.conversations
        ],
    }
