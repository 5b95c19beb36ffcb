"""Resume: replay every change a device missed, from the database, in log order.

A device keeps one cursor per conversation: the ``pos`` of the last event it applied.
For each conversation it is (or was) a member of, the events after its cursor are rendered
from the current state (so a message deleted meanwhile replays as a tombstone, never with
its old text) and sent in order. Conversations it has no cursor for (joined while away)
start with ``conversation.created`` and replay from the join. Past ``sync_replay_limit``
events the device gets ``resync_required`` with the position to restart from.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

from gochat.domain.models import Conversation, Event, EventKind, Membership, Message
from gochat.domain.protocol import encode_event, encode_frame
from gochat.domain.wire import MESSAGE_EVENTS, conversation_json, event_json
from gochat.security.links import LinkSigner
from gochat.services.context import ServiceContext
from gochat.services.loading import with_reactions
from gochat.storage.uow import SqlUnitOfWork


@dataclass(slots=True)
class SyncResult:
    frames: list[bytes] = field(default_factory=list)
    resync: list[int] = field(default_factory=list)


class SyncService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    async def sync(self, user_id: int, cursors: dict[int, int]) -> SyncResult:
        result = SyncResult()
        async with self._ctx.uow() as uow:
            for membership, last_pos in await uow.members.of_user(user_id):
                await self._replay_one(uow, user_id, membership, last_pos, cursors, result)
        return result

    async def _replay_one(
        self,
        uow: SqlUnitOfWork,
        user_id: int,
        membership: Membership,
        last_pos: int,
        cursors: dict[int, int],
        result: SyncResult,
    ) -> None:
        conv_id = membership.conversation_id
        cursor = cursors.get(conv_id)
        if not membership.active:
            await self._farewell(uow, user_id, membership, cursor, result)
            return
        start = membership.joined_pos - 1 if cursor is None else max(cursor, 0)
        upto = last_pos if membership.left_pos is None else min(last_pos, membership.left_pos)
        if upto <= start and cursor is not None:
            return
        if cursor is None:
            await self._announce(uow, membership, result)
        if upto - start > self._ctx.limits.sync_replay_limit:
            result.resync.append(conv_id)
            result.frames.append(encode_event("resync_required", conversation_id=str(conv_id), last_pos=upto))
            return
        events = await uow.events.between(conv_id, start, upto)
        result.frames.extend(await _render(uow, user_id, conv_id, events, self._ctx.links))

    async def _farewell(
        self, uow: SqlUnitOfWork, user_id: int, membership: Membership, cursor: int | None, result: SyncResult
    ) -> None:
        """A former member gets what it missed up to its own member.left, as it stood then."""
        left_pos = membership.left_pos
        if cursor is None or left_pos is None or cursor >= left_pos:
            return  # a conversation the device never knew, or already knows it left
        conv_id = membership.conversation_id
        if left_pos - cursor > self._ctx.limits.sync_replay_limit:
            cursor = left_pos - 1  # too much to replay: at least tell it that it left
        events = await uow.events.between(conv_id, cursor, left_pos)
        left_at = events[-1].created_at if events else None
        result.frames.extend(await _render(uow, user_id, conv_id, events, self._ctx.links, left_at))

    async def _announce(self, uow: SqlUnitOfWork, membership: Membership, result: SyncResult) -> None:
        conv_id = membership.conversation_id
        conv = await uow.conversations.get(conv_id)
        if conv is not None:
            members = await uow.members.active(conv_id)
            body = conversation_json(conv, members=members, read_seq=membership.read_seq)
            frame = encode_event("conversation.created", conversation=body, joined_pos=membership.joined_pos)
            result.frames.append(frame)


async def _render(
    uow: SqlUnitOfWork,
    viewer_id: int,
    conv_id: int,
    events: list[Event],
    links: LinkSigner | None = None,
    former_since: datetime | None = None,
) -> list[bytes]:
    """Events rendered from the current state - or, for a former member (``former_since`` =
    when it left), without anything that changed after: no reactions, no titles or roles, and
    no body of a message edited since."""
    kinds = {e.kind for e in events}
    seqs = {e.seq for e in events if e.kind in MESSAGE_EVENTS and e.seq is not None}
    found = await uow.messages.by_seqs(conv_id, seqs)
    messages = {m.seq: m for m in await with_reactions(uow, conv_id, list(found.values()), links)}
    members: dict[int, Membership] = {}
    conv: Conversation | None = None
    if former_since is not None:
        messages = {seq: _as_of(m, former_since) for seq, m in messages.items()}
    else:
        if kinds & {EventKind.MEMBER_JOINED, EventKind.MEMBER_UPDATED}:
            members = {m.user_id: m for m in await uow.members.active(conv_id)}
        if EventKind.CONVERSATION_UPDATED in kinds:
            conv = await uow.conversations.get(conv_id)
    frames = []
    for event in events:
        message = messages.get(event.seq) if event.seq is not None else None
        member = members.get(event.user_id) if event.user_id is not None else None
        body = event_json(event, message=message, member=member, conversation=conv, viewer_id=viewer_id)
        frames.append(encode_frame(body))
    return frames


def _as_of(message: Message, left_at: datetime) -> Message:
    edited_since = message.edited_at is not None and message.edited_at > left_at
    return dataclasses.replace(message, reactions=(), body=None if edited_since else message.body)
