"""Presence: online when a user's first device connects, offline when the last one leaves.

Counting devices is the tracker's job (gochat.broker.ephemeral: in process, or Redis with TTLs);
this service decides when a change is visible and tells the user's conversations. A user
who hides presence is never announced and always reads as offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog

from gochat.clock import to_rfc3339
from gochat.domain.protocol import encode_event
from gochat.errors import Unavailable
from gochat.ports import PresenceTracker
from gochat.services.context import ServiceContext

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PresenceInfo:
    user_id: int
    online: bool
    last_seen_at: datetime | None


class PresenceService:
    def __init__(self, ctx: ServiceContext, tracker: PresenceTracker) -> None:
        self._ctx = ctx
        self._tracker = tracker

    async def connected(self, user_id: int, device: str, conversation_ids: list[int]) -> None:
        try:
            first = await self._tracker.connect(user_id, device)
        except Unavailable as exc:  # presence is ephemeral: a socket works without it
            log.warning("presence_unavailable", error=exc.message)
            return
        if first and not await self._hidden(user_id):
            await self._announce(user_id, conversation_ids, "online", None)

    async def disconnected(self, user_id: int, device: str, conversation_ids: list[int]) -> None:
        if not await self._tracker.disconnect(user_id, device):
            return
        now = self._ctx.clock.now()
        async with self._ctx.uow() as uow:
            await uow.users.set_last_seen(user_id, now)
            hidden = (await uow.users.presence_facts({user_id})).get(user_id, (True, None))[0]
            await uow.commit()
        if not hidden:
            await self._announce(user_id, conversation_ids, "offline", now)

    async def visibility_changed(self, user_id: int, hidden: bool) -> None:
        """Hiding while online looks like leaving to contacts; showing again, like arriving."""
        try:
            if not await self._tracker.online({user_id}):
                return
        except Unavailable as exc:  # the change is committed; announcing it is best effort
            log.warning("presence_unavailable", error=exc.message)
            return
        async with self._ctx.uow() as uow:
            conversation_ids = await uow.members.active_conversation_ids(user_id)
            last_seen = (await uow.users.presence_facts({user_id})).get(user_id, (hidden, None))[1]
        status = "offline" if hidden else "online"
        await self._announce(user_id, conversation_ids, status, last_seen if hidden else None)

    async def _hidden(self, user_id: int) -> bool:
        async with self._ctx.uow() as uow:
            facts = await uow.users.presence_facts({user_id})
        return facts.get(user_id, (True, None))[0]

    async def _announce(
        self, user_id: int, conversation_ids: list[int], status: str, seen: datetime | None
    ) -> None:
        frame = encode_event("presence", user_id=str(user_id), status=status, last_seen_at=to_rfc3339(seen))
        for conv_id in conversation_ids:
            await self._ctx.publisher.to_conversation(conv_id, frame, except_user=user_id)

    async def query(self, viewer_id: int, user_ids: set[int]) -> list[PresenceInfo]:
        """Presence of the viewer's contacts (people sharing a conversation); others are omitted."""
        async with self._ctx.uow() as uow:
            visible = await uow.members.contacts_among(viewer_id, user_ids - {viewer_id})
            if viewer_id in user_ids:
                visible.add(viewer_id)
            facts = await uow.users.presence_facts(visible)
        online = await self._tracker.online(visible)
        return [_info(u, u in online, *facts.get(u, (True, None))) for u in sorted(visible)]


def _info(user_id: int, online: bool, hidden: bool, last_seen: datetime | None) -> PresenceInfo:
    if hidden:
        return PresenceInfo(user_id, False, None)
    return PresenceInfo(user_id, online, last_seen)
