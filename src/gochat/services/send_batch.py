"""Group commit: concurrent sends share one transaction, acks still follow the commit.

Under load, sends queue while the previous batch commits; the next batch takes them all
(up to ``max_batch``) and writes them with a handful of set-based statements. One fsync
serves the whole batch. Nothing waits on purpose: a lone send is committed at once.
Seqs stay gapless because every item is validated before any number is taken.

With ``workers`` > 1 (a server database: MySQL/MariaDB), that many batches are in flight at
once, so the server prepares the next batch while the database flushes the last one. Numbers
are still taken under the conversations' row locks (taken in id order: no deadlock), so two
batches touching one conversation serialise there and seqs stay gapless; a socket has one
request in flight at a time, so no sender's own messages can overtake each other. SQLite has
one writer and one pooled connection: one worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from gochat import ids
from gochat.domain.models import ConversationKind, Message
from gochat.domain.validation import field_error
from gochat.errors import Conflict, GoChatError, NotFound
from gochat.services.context import ServiceContext
from gochat.storage.chat_repo import DuplicateKey
from gochat.storage.uow import SqlUnitOfWork

log = structlog.get_logger(__name__)
Outcome = tuple[Message, bool]


@dataclass(eq=False, slots=True)
class Draft:
    sender_id: int
    conversation_id: int
    client_msg_id: str
    text: str
    reply_to_seq: int | None
    mentions: Callable[[SqlUnitOfWork, ConversationKind], Awaitable[tuple[int, ...]]]
    future: asyncio.Future[Outcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def key(self) -> tuple[int, str]:
        return self.sender_id, self.client_msg_id


class GroupCommitter:
    def __init__(
        self,
        ctx: ServiceContext,
        one_by_one: Callable[[Draft], Awaitable[Outcome]],
        max_batch: int = 256,
        workers: int = 1,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._ctx = ctx
        self._one_by_one = one_by_one
        self._max_batch = max_batch
        self._queue: asyncio.Queue[Draft] = asyncio.Queue()
        self._workers: list[asyncio.Task[None] | None] = [None] * workers
        self._inflight: dict[int, list[Draft]] = {}

    async def submit(self, draft: Draft) -> Outcome:
        for slot, worker in enumerate(self._workers):
            if worker is None or worker.done():
                self._workers[slot] = asyncio.get_running_loop().create_task(
                    self._run(slot), name=f"group-commit-{slot}"
                )
        self._queue.put_nowait(draft)
        return await draft.future

    async def aclose(self) -> None:
        running = [w for w in self._workers if w is not None]
        for worker in running:
            worker.cancel()
        for worker in running:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        for batch in self._inflight.values():
            for draft in batch:
                draft.future.cancel()
        self._inflight.clear()
        while not self._queue.empty():
            self._queue.get_nowait().future.cancel()

    async def _run(self, slot: int) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._inflight[slot] = batch
            await self._commit(batch)
            del self._inflight[slot]

    async def _commit(self, batch: list[Draft]) -> None:
        try:
            outcomes = await self._write(batch)
        except DuplicateKey:  # a twin committed elsewhere meanwhile: settle each on its own
            await self._settle_one_by_one(batch)
            return
        except Exception as exc:  # the database failed the whole batch: every sender retries
            for draft in batch:
                _resolve(draft, exc)
            return
        for draft, outcome in outcomes.items():
            _resolve(draft, outcome)

    async def _settle_one_by_one(self, batch: list[Draft]) -> None:
        for draft in batch:
            try:
                _resolve(draft, await self._one_by_one(draft))
            except Exception as exc:
                _resolve(draft, exc)

    async def _write(self, batch: list[Draft]) -> dict[Draft, Outcome | Exception]:
        now = self._ctx.clock.now()
        async with self._ctx.uow() as uow:
            outcomes, fresh, twins = await _screen(uow, batch)
            if fresh:
                locked = await uow.send.lock({d.conversation_id for d in fresh})
                fresh = _check_replies(fresh, locked, outcomes)
                created = await _build(uow, fresh, locked, now)
                await uow.send.advance(Counter(d.conversation_id for d in fresh), now)
                await uow.send.insert(list(created.values()), now)
                await uow.commit()
                outcomes.update({d: (m, True) for d, m in created.items()})
        for twin, first in twins:
            result = outcomes[first]
            # a twin in another conversation is a reuse of the key there: conflict, as one by one
            outcomes[twin] = _retry_outcome(result[0], twin) if isinstance(result, tuple) else result
        return outcomes


async def _screen(
    uow: SqlUnitOfWork, batch: list[Draft]
) -> tuple[dict[Draft, Outcome | Exception], list[Draft], list[tuple[Draft, Draft]]]:
    """Split a batch into retries (answered now), refusals, twins within it, and new sends."""
    existing = await uow.send.existing({d.key for d in batch})
    active = await uow.send.active_members({(d.conversation_id, d.sender_id) for d in batch})
    outcomes: dict[Draft, Outcome | Exception] = {}
    fresh: list[Draft] = []
    firsts: dict[tuple[int, str], Draft] = {}
    twins: list[tuple[Draft, Draft]] = []
    for draft in batch:
        if draft.key in existing:
            outcomes[draft] = _retry_outcome(existing[draft.key], draft)
        elif draft.key in firsts:
            twins.append((draft, firsts[draft.key]))
        elif (draft.conversation_id, draft.sender_id) not in active:
            outcomes[draft] = NotFound("no such conversation")
        else:
            firsts[draft.key] = draft
            fresh.append(draft)
    return outcomes, fresh, twins


def _retry_outcome(existing: Message, draft: Draft) -> Outcome | Exception:
    if existing.conversation_id != draft.conversation_id:
        return Conflict("client_msg_id was already used in another conversation")
    return existing, False


def _check_replies(
    fresh: list[Draft],
    locked: dict[int, tuple[ConversationKind, int, int]],
    outcomes: dict[Draft, Outcome | Exception],
) -> list[Draft]:
    """Refuse replies to messages that don't exist yet, before any seq is taken."""
    taken: Counter[int] = Counter()
    kept = []
    for draft in fresh:
        next_seq = locked[draft.conversation_id][1] + taken[draft.conversation_id] + 1
        if draft.reply_to_seq is not None and draft.reply_to_seq >= next_seq:
            outcomes[draft] = field_error("reply_to_seq", "no such message in this conversation")
            continue
        taken[draft.conversation_id] += 1
        kept.append(draft)
    return kept


async def _build(
    uow: SqlUnitOfWork,
    fresh: list[Draft],
    locked: dict[int, tuple[ConversationKind, int, int]],
    now: datetime,
) -> dict[Draft, Message]:
    taken: Counter[int] = Counter()
    created: dict[Draft, Message] = {}
    for draft in fresh:
        kind, last_seq, last_pos = locked[draft.conversation_id]
        taken[draft.conversation_id] += 1
        step = taken[draft.conversation_id]
        mentioned = await draft.mentions(uow, kind)
        created[draft] = Message(
            ids.new_id(),
            draft.conversation_id,
            last_seq + step,
            draft.sender_id,
            draft.client_msg_id,
            draft.text,
            draft.reply_to_seq,
            now,
            pos=last_pos + step,
            mention_ids=mentioned,
        )
    return created


def _resolve(draft: Draft, outcome: Outcome | Exception) -> None:
    if draft.future.done():
        return
    if isinstance(outcome, Exception):
        if not isinstance(outcome, GoChatError):
            log.debug("batch_send_failed", error=repr(outcome))
        draft.future.set_exception(outcome)
    else:
        draft.future.set_result(outcome)
