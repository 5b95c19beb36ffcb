"""A small typed asyncio client for GoChat: REST over httpx, the live socket over websockets.

Users' scripts, the end-to-end tests and the benchmarks use it::

    async with GoChatClient("http://127.0.0.1:8000") as alice:
        await alice.login("alice", "password123")
        await alice.connect()
        conv = await alice.create_direct(bob_id)
        message = await alice.send(conv["id"], "hi")       # returns after the server's ack
        event = await alice.next_event("message.created")

What it does for you
- **Sends that survive disconnects.** ``send`` keeps one ``client_msg_id`` (uuid4 hex unless you
  give one) and re-sends it after every reconnect until the server acks it or the timeout
  expires; the server de-duplicates by ``(sender, client_msg_id)``, so a message is created once.
- **Reconnects.** After any disconnect that is not terminal the client reconnects with
  exponential backoff and jitter (:class:`ReconnectPolicy`), then sends ``sync`` with its
  cursors and applies the replay. 4001 refreshes the access token first; 1008 and 4500-4999
  stop the client (``stopped`` / ``stop_code``). ``resync_required`` (and a conversation that
  appears while the client was not told its position) is repaired from the REST history.
- **A local store** per conversation (:class:`ConversationView`): messages by ``seq``
  (de-duplicated; a newer version of a message replaces the older one), members and their
  roles, read positions and the cursor: the highest ``pos`` up to which every event was
  applied. Events that arrive ahead of a gap are applied at once and counted in when the gap
  fills; a gap that stays open for ``gap_timeout_s`` triggers a ``sync``. Applying an event
  twice changes nothing. ``wait_for(predicate)`` waits until the store satisfies something.
- **Events**: every server event also goes to ``events`` (an ``asyncio.Queue``), read with
  ``next_event(type)``. The client adds its own, all typed ``client.*``:
  ``client.connected`` ``{session_id}``, ``client.synced``, ``client.disconnected``
  ``{code, reason}`` and ``client.stopped`` ``{code, reason}``.

``disconnect()`` goes offline keeping the store (``connect()`` again resumes from the cursors);
``close()`` stops every task the client started and waits for them; ``drop_connection()``
aborts the TCP connection (fault injection). Not thread-safe: use a client from one event
loop. The event queue is unbounded unless ``keep_events=False``.

Known limit: after ``resync_required`` the history route brings the messages after the
highest contiguous ``seq``; edits, deletes and reactions to older messages that happened in
that gap are not recovered (the protocol has no route for them yet).
"""

# The public API takes explicit per-call timeouts (callers need bounded waits without wrapping
# every call), hence ASYNC109 is off for this module.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, cast

import httpx
import orjson
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Origin

__all__ = [
    "ApiError",
    "ClientClosed",
    "ConnectionLost",
    "ConversationView",
    "GoChatClient",
    "GoChatClientError",
    "ReconnectPolicy",
    "RequestFailed",
]

Json = dict[str, Any]

log = logging.getLogger("gochat.client")

TOKEN_EXPIRED = 4001
TOO_SLOW = 4008
RATE_LIMITED = 4029
POLICY = 1008
HISTORY_PAGE = 200
# Error codes of a request that may succeed when retried unchanged (idempotent requests only).
RETRYABLE_CODES = frozenset({"unavailable", "internal_error", "rate_limited"})


class GoChatClientError(Exception):
    """Base of every error this module raises."""


class ApiError(GoChatClientError):
    """A REST call answered with an error status."""

    def __init__(self, status: int, code: str, message: str, body: object = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body


class RequestFailed(GoChatClientError):
    """A WebSocket request got an ``error`` reply."""

    def __init__(self, code: str, message: str, reply: Json | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.reply = reply or {}


class ConnectionLost(GoChatClientError):
    """The socket went away before a request got its reply."""


class ClientClosed(GoChatClientError):
    """The client is closed, or stopped after a terminal close (see ``stop_code``)."""

    def __init__(self, message: str, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class _Terminal(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Exponential backoff with jitter between reconnect attempts.

    The n-th consecutive failed attempt waits ``min(max_delay, initial_delay * multiplier**n)``
    scaled by a random factor in ``[1 - jitter, 1]``. ``max_attempts`` consecutive failures
    (None: never give up) stop the client.
    """

    initial_delay: float = 0.1
    max_delay: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.5
    max_attempts: int | None = None

    def delay(self, attempt: int) -> float:
        base = min(self.max_delay, self.initial_delay * self.multiplier ** min(attempt, 64))
        return base * (1.0 - self.jitter * random.random())


@dataclass(slots=True)
class ConversationView:
    """What this client knows of one conversation."""

    id: str
    info: Json = field(default_factory=dict)
    messages: dict[int, Json] = field(default_factory=dict)
    versions: dict[int, int] = field(default_factory=dict)  # seq -> pos of the version held
    cursor: int | None = None  # every event with pos <= cursor was applied; None: not known yet
    ahead: set[int] = field(default_factory=set)  # positions applied beyond a gap
    gap_since: float | None = None
    members: dict[str, str] = field(default_factory=dict)  # user id -> role
    state_pos: int = 0  # pos of the newest membership/metadata fact held (events or snapshots)
    read_seqs: dict[str, int] = field(default_factory=dict)
    active: bool = True

    def ordered(self) -> list[Json]:
        """The messages in ``seq`` order."""
        return [self.messages[s] for s in sorted(self.messages)]

    @property
    def max_seq(self) -> int:
        return max(self.messages, default=0)

    @property
    def contiguous_seq(self) -> int:
        """The highest seq n such that messages 1..n are all known."""
        n = 0
        while n + 1 in self.messages:
            n += 1
        return n


class GoChatClient:
    """One device of one user: REST calls plus one self-healing WebSocket."""

    def __init__(
        self,
        base_url: str,
        *,
        origin: str | None = None,
        reconnect: ReconnectPolicy | None = None,
        request_timeout: float = 10.0,
        http_timeout: float = 10.0,
        gap_timeout_s: float = 2.0,
        keep_events: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.ws_url = _ws_url(self.base_url)
        self.origin = origin
        self.reconnect_policy = reconnect or ReconnectPolicy()
        self.request_timeout = request_timeout
        self.gap_timeout_s = gap_timeout_s
        self.keep_events = keep_events
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=http_timeout)

        self.user_id: str | None = None
        self.session_id: str | None = None
        self.access_token: str | None = None
        self.refresh_token: str | None = None
        self.expires_in: int | None = None

        self.views: dict[str, ConversationView] = {}
        self.events: asyncio.Queue[Json] = asyncio.Queue()
        self.close_codes: list[int | None] = []  # every socket's close code, in order
        self.connect_count = 0
        self.stopped = False
        self.stop_code: int | None = None
        self.stop_reason = ""

        self._skipped: deque[Json] = deque()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Json]] = {}
        self._ws: ClientConnection | None = None
        self._gen = 0
        self._changed = asyncio.Event()  # replaced on each change: a broadcast
        self._sync_wanted = asyncio.Event()
        self._synced_once = asyncio.Event()
        self._syncing = False
        self._logged_out = False
        self._revoked = False
        self._offline = False  # disconnect() or close() was called: no (re)connecting
        self._closed = False
        self._supervisor: asyncio.Task[None] | None = None
        self._repairer: asyncio.Task[None] | None = None
        self._repairs: asyncio.Queue[tuple[str, int | None]] = asyncio.Queue()
        self._repairing: set[str] = set()
        self._refresh_lock = asyncio.Lock()

    async def __aenter__(self) -> GoChatClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ---------------------------------------------------------------- REST: accounts

    async def register(self, username: str, password: str, display_name: str | None = None) -> Json:
        body: Json = {"username": username, "password": password}
        if display_name is not None:
            body["display_name"] = display_name
        return cast(Json, await self._rest("POST", "/api/v1/auth/register", json=body, auth=False))

    async def login(self, username: str, password: str) -> Json:
        body = {"username": username, "password": password}
        tokens = cast(Json, await self._rest("POST", "/api/v1/auth/login", json=body, auth=False))
        self._keep_tokens(tokens)
        self._logged_out = False
        return tokens

    async def refresh(self) -> Json:
        """Rotate the tokens (the old refresh token is spent)."""
        async with self._refresh_lock:
            return await self._refresh_locked()

    async def _refresh_locked(self) -> Json:
        if self.refresh_token is None:
            raise ClientClosed("not logged in")
        body = {"refresh_token": self.refresh_token}
        tokens = cast(Json, await self._rest("POST", "/api/v1/auth/refresh", json=body, auth=False))
        self._keep_tokens(tokens)
        return tokens

    async def _refresh_if_current(self, stale_access: str | None) -> None:
        """Refresh unless someone already did since ``stale_access`` failed (rotation is one-shot)."""
        async with self._refresh_lock:
            if self.access_token == stale_access:
                await self._refresh_locked()

    async def logout(self) -> None:
        """End this session on the server; its sockets are closed by the server with 4001."""
        if self.refresh_token is None:
            return
        self._logged_out = True
        body = {"refresh_token": self.refresh_token}
        await self._rest("POST", "/api/v1/auth/logout", json=body, auth=False)
        self.access_token = self.refresh_token = None

    def _keep_tokens(self, tokens: Json) -> None:
        self.access_token = str(tokens["access_token"])
        self.refresh_token = str(tokens["refresh_token"])
        self.expires_in = int(tokens.get("expires_in", 0))
        self.user_id = str(tokens["user_id"])
        self.session_id = str(tokens["session_id"])

    async def me(self) -> Json:
        return cast(Json, await self._rest("GET", "/api/v1/users/me"))

    async def user(self, user_id: str) -> Json:
        return cast(Json, await self._rest("GET", f"/api/v1/users/{user_id}"))

    async def search_users(self, q: str, limit: int = 20) -> list[Json]:
        found = await self._rest("GET", "/api/v1/users", params={"q": q, "limit": limit})
        return cast(list[Json], found["users"])

    # ---------------------------------------------------------------- REST: conversations

    async def create_direct(self, user_id: str) -> Json:
        body = {"kind": "direct", "member_ids": [user_id]}
        return cast(Json, await self._rest("POST", "/api/v1/conversations", json=body))

    async def create_group(self, title: str, member_ids: Iterable[str]) -> Json:
        body = {"kind": "group", "title": title, "member_ids": list(member_ids)}
        return cast(Json, await self._rest("POST", "/api/v1/conversations", json=body))

    async def conversation(self, conv_id: str) -> Json:
        return cast(Json, await self._rest("GET", f"/api/v1/conversations/{conv_id}"))

    async def conversations(self, limit: int = 100) -> list[Json]:
        """Every conversation of the user, following the pagination cursor."""
        found: list[Json] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": limit}
            if cursor:
                params["cursor"] = cursor
            page = await self._rest("GET", "/api/v1/conversations", params=params)
            found.extend(page["conversations"])
            cursor = page.get("next_cursor")
            if not cursor:
                return found

    async def rename(self, conv_id: str, title: str) -> Json:
        body = {"title": title}
        return cast(Json, await self._rest("PATCH", f"/api/v1/conversations/{conv_id}", json=body))

    async def add_members(self, conv_id: str, user_ids: Iterable[str]) -> Json:
        body = {"user_ids": list(user_ids)}
        return cast(Json, await self._rest("POST", f"/api/v1/conversations/{conv_id}/members", json=body))

    async def remove_member(self, conv_id: str, user_id: str) -> None:
        await self._rest("DELETE", f"/api/v1/conversations/{conv_id}/members/{user_id}")

    async def history(
        self, conv_id: str, after_seq: int | None = None, before_seq: int | None = None, limit: int = 50
    ) -> list[Json]:
        params: dict[str, Any] = {"limit": limit}
        if after_seq is not None:
            params["after_seq"] = after_seq
        if before_seq is not None:
            params["before_seq"] = before_seq
        page = await self._rest("GET", f"/api/v1/conversations/{conv_id}/messages", params=params)
        return cast(list[Json], page["messages"])

    async def history_all(self, conv_id: str, after_seq: int = 0) -> list[Json]:
        """Every message after ``after_seq``, ascending, fetched page by page."""
        found: list[Json] = []
        while True:
            page = await self.history(conv_id, after_seq=after_seq, limit=HISTORY_PAGE)
            found.extend(page)
            if len(page) < HISTORY_PAGE:
                return found
            after_seq = int(page[-1]["seq"])

    async def send_rest(
        self, conv_id: str, body: str, client_msg_id: str | None = None, reply_to_seq: int | None = None
    ) -> Json:
        """POST a message; a retry with the same ``client_msg_id`` returns the first message."""
        payload: Json = {"client_msg_id": client_msg_id or uuid.uuid4().hex, "body": body}
        if reply_to_seq is not None:
            payload["reply_to_seq"] = reply_to_seq
        path = f"/api/v1/conversations/{conv_id}/messages"
        message = cast(Json, await self._rest("POST", path, json=payload))
        self._store_message(message)
        return message

    async def mark_read_rest(self, conv_id: str, seq: int) -> None:
        await self._rest("POST", f"/api/v1/conversations/{conv_id}/read", json={"seq": seq})

    async def _rest(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: dict[str, Any] | None = None,
        auth: bool = True,
    ) -> Any:
        """One REST call; a 401 with a refresh token at hand refreshes once and retries."""
        for attempt in range(2):
            token = self.access_token
            headers = {"Authorization": f"Bearer {token}"} if auth and token else {}
            response = await self.http.request(method, path, json=json, params=params, headers=headers)
            if response.status_code == 401 and auth and attempt == 0 and self.refresh_token:
                await self._refresh_if_current(token)
                continue
            return _decode_response(response)
        raise AssertionError("unreachable")  # pragma: no cover

    # ---------------------------------------------------------------- WebSocket: lifecycle

    async def connect(self, timeout: float = 15.0) -> None:
        """Open the socket, authenticate, sync; returns once the first sync was applied.

        From then on the client keeps itself connected until ``close()`` or a terminal close.
        """
        if self.access_token is None:
            raise ClientClosed("log in before connecting")
        if self._closed:
            raise ClientClosed("the client is closed")
        self._offline = False
        if self._supervisor is None or self._supervisor.done():
            self.stopped, self.stop_code, self.stop_reason = False, None, ""
            self._synced_once.clear()
            self._supervisor = asyncio.create_task(self._supervise(), name="gochat-client-supervisor")
        if self._repairer is None or self._repairer.done():
            self._repairer = asyncio.create_task(self._repair_loop(), name="gochat-client-repair")
        synced = asyncio.ensure_future(self._synced_once.wait())
        try:
            await asyncio.wait({synced, self._supervisor}, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            synced.cancel()
            await asyncio.gather(synced, return_exceptions=True)
        if self._synced_once.is_set():
            return
        if self.stopped:
            raise ClientClosed("the server refused the connection", self.stop_code, self.stop_reason)
        raise TimeoutError(f"not connected and synced within {timeout} s")

    @property
    def connected(self) -> bool:
        return self._ws is not None

    async def disconnect(self) -> None:
        """Go offline: close the socket and stop reconnecting, keeping the store and cursors.

        A later ``connect()`` syncs from where this left off (sends fail with ClientClosed
        meanwhile).
        """
        await self._halt()
        if not self.stopped:
            self._stop(1000, "disconnected by the client")

    async def close(self) -> None:
        """Close the socket and stop (and await) every task of this client; then the HTTP pool."""
        self._closed = True
        await self._halt()
        if not self.stopped:
            self._stop(1000, "closed by the client")
        await self.http.aclose()

    async def _halt(self) -> None:
        self._offline = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await ws.close()
        tasks = [t for t in (self._supervisor, self._repairer) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._supervisor = self._repairer = None
        self._fail_pending(ClientClosed("the client went offline"))

    def drop_connection(self) -> bool:
        """Fault injection: abort the TCP connection without a close handshake.

        The client treats it like any network failure (reconnects and syncs). False if there
        was no socket to drop.
        """
        ws = self._ws
        if ws is None:
            return False
        ws.transport.abort()
        return True

    async def _supervise(self) -> None:
        failures = 0
        try:
            while not self._offline:
                if self._logged_out or self.access_token is None:
                    raise _Terminal(TOKEN_EXPIRED, "logged out")
                try:
                    ws, leftover = await self._open()
                except _Retry as retry:
                    failures += 1
                    policy = self.reconnect_policy
                    if policy.max_attempts is not None and failures >= policy.max_attempts:
                        raise _Terminal(retry.code, f"gave up after {failures} attempts: {retry}") from None
                    await asyncio.sleep(policy.delay(failures - 1) * (4 if retry.code == RATE_LIMITED else 1))
                    continue
                failures = 0
                code, reason = await self._serve(ws, leftover)
                if self._offline:
                    return
                await self._after_close(code, reason)
                await asyncio.sleep(self.reconnect_policy.delay(0))
        except _Terminal as stop:
            self._stop(stop.code, stop.reason)
        except Exception as exc:  # task boundary: a bug must stop the client visibly, not hang it
            log.exception("connection supervisor failed")
            self._stop(None, f"client error: {exc!r}")

    async def _after_close(self, code: int | None, reason: str) -> None:
        """Decide what a close means: stop, refresh then reconnect, or just reconnect."""
        if code is not None and (code == POLICY or 4500 <= code <= 4999):
            raise _Terminal(code, reason)
        if code == TOKEN_EXPIRED:
            if self._logged_out or self._revoked:
                raise _Terminal(code, reason or "session revoked")
            await self._refresh_or_stop(code, reason)
        if code == RATE_LIMITED:
            await asyncio.sleep(self.reconnect_policy.max_delay)

    async def _refresh_or_stop(self, code: int, reason: str) -> None:
        stale = self.access_token
        for attempt in itertools.count():
            try:
                await self._refresh_if_current(stale)
                return
            except ApiError as exc:
                if exc.status == 401:
                    raise _Terminal(code, f"{reason}; refresh refused: {exc.code}") from exc
                err: Exception = exc
            except (httpx.TransportError, ClientClosed) as exc:
                if isinstance(exc, ClientClosed):
                    raise _Terminal(code, reason) from exc
                err = exc
            log.debug("refresh failed (%r), retrying", err)
            await asyncio.sleep(self.reconnect_policy.delay(attempt))

    async def _open(self) -> tuple[ClientConnection, list[Json]]:
        """Connect and authenticate; the ready frame's companions are returned for dispatch."""
        token = self.access_token
        try:
            ws = await ws_connect(
                self.ws_url,
                origin=Origin(self.origin) if self.origin else None,
                compression=None,
                open_timeout=self.request_timeout,
                close_timeout=2,
                max_size=None,
                max_queue=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise _Terminal(POLICY, f"upgrade refused with HTTP {status}") from exc
            raise _Retry(None, f"HTTP {status}") from exc
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise _Retry(None, repr(exc)) from exc
        try:
            await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
            async with asyncio.timeout(self.request_timeout):
                raw = await ws.recv()
        except (ConnectionClosed, TimeoutError, OSError) as exc:
            ws.transport.abort()
            code, reason = _close_code(ws), ws.close_reason or ""
            self.close_codes.append(code)
            if code == TOKEN_EXPIRED and not self._logged_out:
                await self._refresh_or_stop(code, reason)
                raise _Retry(code, "token refreshed") from exc
            if code is not None and (code in (POLICY, TOKEN_EXPIRED) or 4500 <= code <= 4999):
                raise _Terminal(code, reason) from exc
            raise _Retry(code, repr(exc)) from exc
        objects = _split(raw)
        if not objects or objects[0].get("type") != "ready":
            ws.transport.abort()
            raise _Retry(None, f"expected ready, got {objects[:1]!r}")
        ready = objects[0]
        self.user_id = str(ready.get("user_id", self.user_id))
        self.session_id = str(ready.get("session_id", self.session_id))
        return ws, objects

    async def _serve(self, ws: ClientConnection, first: list[Json]) -> tuple[int | None, str]:
        """Run one connection: reader, sync and gap watcher; returns its close code and reason."""
        self._gen += 1
        self.connect_count += 1
        self._ws = ws
        self._sync_wanted.clear()
        for obj in first:
            self._dispatch(obj)
        self._emit({"type": "client.connected", "session_id": self.session_id})
        self._notify()
        upkeep = asyncio.create_task(self._upkeep(ws), name="gochat-client-upkeep")
        try:
            await self._read(ws)
        finally:
            self._ws = None
            self._syncing = False
            self._fail_pending(ConnectionLost("the connection closed"))
            upkeep.cancel()
            await asyncio.gather(upkeep, return_exceptions=True)
            if not self._offline:
                ws.transport.abort()
            self._notify()
        code, reason = _close_code(ws), ws.close_reason or ""
        self.close_codes.append(code)
        self._emit({"type": "client.disconnected", "code": code, "reason": reason})
        return code, reason

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                for obj in _split(raw):
                    self._dispatch(obj)
        except ConnectionClosed:
            pass
        except Exception:  # task boundary: a reader crash must end this connection, not hang it
            log.exception("reader failed")

    async def _upkeep(self, ws: ClientConnection) -> None:
        """Sync after connecting, and again whenever asked or a gap stays open too long."""
        delay = 0
        while True:
            try:
                await self._sync(ws)
            except ConnectionLost:
                return
            except Exception as exc:  # task boundary: retry the sync, keep the connection
                log.warning("sync failed: %r", exc)
                delay += 1
                await asyncio.sleep(self.reconnect_policy.delay(delay))
                continue
            delay = 0
            if not self._synced_once.is_set():
                self._synced_once.set()
            self._emit({"type": "client.synced"})
            await self._wait_sync_reason()

    async def _wait_sync_reason(self) -> None:
        check = max(0.05, self.gap_timeout_s / 4)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(check):
                    await self._sync_wanted.wait()
            if self._sync_wanted.is_set():
                self._sync_wanted.clear()
                return
            now = time.monotonic()
            for view in self.views.values():
                if view.gap_since is not None and now - view.gap_since >= self.gap_timeout_s:
                    view.gap_since = now  # one sync per timeout while the gap stays open
                    return

    async def _sync(self, ws: ClientConnection) -> None:
        """Send the cursors; the replay that follows the ack is applied by the reader.

        A ping right after is the barrier: the server answers requests in order, so its pong
        comes after the last replayed event.
        """
        cursors = {cid: v.cursor for cid, v in self.views.items() if v.cursor is not None}
        self._syncing = True
        try:
            reply = await self._request_on(ws, {"type": "sync", "cursors": cursors}, self.request_timeout)
            _raise_error(reply)
            # The server paces a big replay to the socket's speed: give the barrier time.
            await self._request_on(ws, {"type": "ping"}, self.request_timeout * 6)
        finally:
            self._syncing = False
        for view in self.views.values():
            if view.active and view.cursor is None:
                self._schedule_repair(view.id, None)

    # ---------------------------------------------------------------- WebSocket: requests

    async def send(
        self,
        conv_id: str,
        body: str,
        *,
        client_msg_id: str | None = None,
        reply_to_seq: int | None = None,
        timeout: float = 30.0,
    ) -> Json:
        """Send a message and return it as acked (committed) by the server.

        Re-sent with the same ``client_msg_id`` across disconnects until acked or ``timeout``
        expires (TimeoutError); an error reply that retrying cannot fix raises RequestFailed.
        """
        frame: Json = {
            "type": "message.send",
            "conversation_id": conv_id,
            "client_msg_id": client_msg_id or uuid.uuid4().hex,
            "body": body,
        }
        if reply_to_seq is not None:
            frame["reply_to_seq"] = reply_to_seq
        reply = await self.request(frame, timeout=timeout)
        message = cast(Json, reply["message"])
        self._store_message(message)
        return message

    async def edit(self, conv_id: str, seq: int, body: str, *, timeout: float = 10.0) -> Json:
        """Replace a message's text; returns the edited message."""
        frame = {"type": "message.edit", "conversation_id": conv_id, "seq": seq, "body": body}
        message = cast(Json, (await self.request(frame, timeout=timeout))["message"])
        self._store_message(message)
        return message

    async def delete(self, conv_id: str, seq: int, *, timeout: float = 10.0) -> Json:
        """Delete a message (it stays as a tombstone with its seq); returns the tombstone."""
        frame = {"type": "message.delete", "conversation_id": conv_id, "seq": seq}
        message = cast(Json, (await self.request(frame, timeout=timeout))["message"])
        self._store_message(message)
        return message

    async def react(
        self, conv_id: str, seq: int, emoji: str, *, add: bool = True, timeout: float = 10.0
    ) -> Json:
        """Add (or with ``add=False`` remove) my reaction; returns the ack with the reactions."""
        kind = "reaction.add" if add else "reaction.remove"
        frame = {"type": kind, "conversation_id": conv_id, "seq": seq, "emoji": emoji}
        return await self.request(frame, timeout=timeout)

    async def read(self, conv_id: str, seq: int, *, timeout: float = 10.0) -> int:
        """Move my read position; returns the position now in force."""
        reply = await self.request({"type": "read", "conversation_id": conv_id, "seq": seq}, timeout=timeout)
        return int(reply.get("read_seq", seq))

    async def typing(self, conv_id: str) -> None:
        """Tell the other members I am typing (no reply; dropped when not connected)."""
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(orjson.dumps({"type": "typing", "conversation_id": conv_id}).decode())

    async def ping(self, *, timeout: float = 10.0) -> float:
        """Round trip to the server through the socket, in seconds."""
        started = time.perf_counter()
        await self.request({"type": "ping"}, timeout=timeout)
        return time.perf_counter() - started

    async def reauth(self, *, timeout: float = 10.0) -> Json:
        """Refresh the tokens and hand the fresh access token to the live socket (extends it)."""
        await self.refresh()
        return await self.request({"type": "auth", "token": self.access_token}, timeout=timeout)

    async def request(self, frame: Json, *, timeout: float = 30.0) -> Json:
        """Send an idempotent request (a fresh ``id`` is added) until it gets a reply.

        Retries across reconnects and after retryable error codes until ``timeout``; returns
        the ``ack`` (or ``pong``), raises RequestFailed for other errors.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        failed_gen = -1
        retries = 0
        while True:
            ws, gen = await self._wait_connected(deadline, failed_gen)
            wait = min(self.request_timeout, deadline - loop.time())
            try:
                reply = await self._request_on(ws, frame, wait)
            except ConnectionLost:
                failed_gen = gen
                continue
            except TimeoutError:
                if loop.time() >= deadline:
                    raise
                continue  # no reply on this socket in time: send again (idempotent)
            if reply.get("type") == "error" and reply.get("code") in RETRYABLE_CODES:
                retries += 1
                await asyncio.sleep(min(deadline - loop.time(), self.reconnect_policy.delay(retries)))
                if loop.time() >= deadline:
                    raise TimeoutError(f"no success before the timeout; last error {reply.get('code')}")
                continue
            _raise_error(reply)
            return reply

    async def _wait_connected(self, deadline: float, failed_gen: int) -> tuple[ClientConnection, int]:
        while True:
            if self.stopped or self._offline:
                raise ClientClosed("the client stopped", self.stop_code, self.stop_reason)
            if self._ws is not None and self._gen != failed_gen:
                return self._ws, self._gen
            changed = self._changed
            async with asyncio.timeout_at(deadline):
                await changed.wait()

    async def _request_on(self, ws: ClientConnection, frame: Json, timeout: float) -> Json:
        request_id = next(self._ids)
        future: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        # The waiter may be gone (timed out) when a disconnect fails the future: never log it.
        future.add_done_callback(_retrieve)
        self._pending[request_id] = future
        try:
            async with asyncio.timeout(timeout):
                await ws.send(orjson.dumps({**frame, "id": request_id}).decode())
                return await future
        except ConnectionClosed as exc:
            raise ConnectionLost(str(exc)) from exc
        finally:
            self._pending.pop(request_id, None)

    def _fail_pending(self, exc: Exception) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(exc)

    # ---------------------------------------------------------------- events and the store

    async def next_event(self, type: str | None = None, *, timeout: float = 10.0) -> Json:
        """The next event (of ``type``, if given); events of other types stay queued in order."""
        if type is not None:
            for i, event in enumerate(self._skipped):
                if event.get("type") == type:
                    del self._skipped[i]
                    return event
        elif self._skipped:
            return self._skipped.popleft()
        async with asyncio.timeout(timeout):
            while True:
                event = await self.events.get()
                if type is None or event.get("type") == type:
                    return event
                self._skipped.append(event)

    def drain_events(self) -> list[Json]:
        """Every queued event, oldest first, without waiting."""
        drained = list(self._skipped)
        self._skipped.clear()
        while not self.events.empty():
            drained.append(self.events.get_nowait())
        return drained

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds (checked after every change to the local store)."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"condition not met within {timeout} s") from None

    def view(self, conv_id: str) -> ConversationView:
        """The local view of a conversation (created empty if unknown)."""
        found = self.views.get(conv_id)
        if found is None:
            found = self.views[conv_id] = ConversationView(conv_id)
        return found

    def messages(self, conv_id: str) -> list[Json]:
        """The locally known messages of a conversation, in ``seq`` order."""
        found = self.views.get(conv_id)
        return found.ordered() if found else []

    def cursor(self, conv_id: str) -> int | None:
        found = self.views.get(conv_id)
        return found.cursor if found else None

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _emit(self, event: Json) -> None:
        if self.keep_events:
            self.events.put_nowait(event)

    def _stop(self, code: int | None, reason: str) -> None:
        self.stopped, self.stop_code, self.stop_reason = True, code, reason
        self._emit({"type": "client.stopped", "code": code, "reason": reason})
        self._notify()

    def _dispatch(self, obj: Json) -> None:
        kind = obj.get("type")
        request_id = obj.get("id")
        if kind in ("ack", "error", "pong") and request_id is not None:
            future = self._pending.get(request_id) if isinstance(request_id, int) else None
            if future is not None and not future.done():
                future.set_result(obj)
            return
        try:
            self._apply(obj)
        except Exception:  # a malformed event must not kill the reader
            log.exception("could not apply event %r", obj)
        self._emit(obj)
        self._notify()

    def _apply(self, event: Json) -> None:
        kind = event.get("type")
        if kind == "session.revoked" and str(event.get("session_id")) == self.session_id:
            self._revoked = True  # the 4001 that follows is final: no refresh can help
            return
        if kind == "resync_required":
            self._schedule_repair(str(event["conversation_id"]), int(event["last_pos"]))
            return
        if kind == "conversation.created":
            self._apply_conversation(event["conversation"])
            return
        conv_id = event.get("conversation_id")
        pos = event.get("pos")
        if conv_id is None or not isinstance(pos, int):
            return  # ephemeral (typing, presence, ready...)
        view = self.view(str(conv_id))
        message = event.get("message")
        if isinstance(message, dict):
            self._store_message(message, pos)
        elif kind == "reaction.changed" and isinstance(event.get("reactions"), list):
            self._store_reactions(view, int(event["seq"]), event["reactions"], pos)
        user_id = event.get("user_id")
        if kind in ("member.joined", "member.left", "member.updated", "conversation.updated"):
            view.state_pos = max(view.state_pos, pos)
        if kind in ("member.joined", "member.updated") and user_id is not None:
            view.members[str(user_id)] = str(event.get("role") or view.members.get(str(user_id)) or "member")
            if kind == "member.joined" and str(user_id) == self.user_id:
                view.active = True
                if view.cursor is None:
                    self._set_base(view, pos - 1)
        elif kind == "member.left" and user_id is not None:
            view.members.pop(str(user_id), None)
            if str(user_id) == self.user_id:
                view.active = False
        elif kind in ("receipt.read", "conversation.read") and user_id is not None:
            seq = int(event.get("seq") or 0)
            view.read_seqs[str(user_id)] = max(seq, view.read_seqs.get(str(user_id), 0))
        elif kind == "conversation.updated" and "title" in event:
            view.info["title"] = event["title"]
        self._advance(view, pos)

    def _apply_conversation(self, conv: Json) -> None:
        view = self.view(str(conv["id"]))
        was_active = view.active and view.cursor is not None
        self._apply_snapshot(view, conv)
        # Live, conversation.created means "you were added": its last_pos may cover events
        # published before this socket followed the conversation, so the position comes from
        # a REST repair. Inside a sync the replay that follows sets it (or resync_required).
        if not self._syncing and (view.cursor is None or not was_active):
            if view.cursor is None:
                self._schedule_repair(view.id, None)
            else:
                self._sync_wanted.set()

    @staticmethod
    def _apply_snapshot(view: ConversationView, conv: Json) -> None:
        """A conversation as the server showed it (I am a member), unless events held are newer."""
        snapshot_pos = int(conv.get("last_pos") or 0)
        if snapshot_pos < view.state_pos:
            return
        view.state_pos = snapshot_pos
        view.info = {k: v for k, v in conv.items() if k != "members"}
        if "members" in conv:
            view.members = _roles(conv["members"])
        view.active = True

    def _store_reactions(self, view: ConversationView, seq: int, reactions: list[Json], pos: int) -> None:
        """Live ``reaction.changed`` carries only the reactions (a replay carries the message)."""
        held = view.messages.get(seq)
        if held is not None and pos >= view.versions.get(seq, 0):
            view.messages[seq] = {**held, "reactions": reactions}
            view.versions[seq] = pos

    def _store_message(self, message: Json, event_pos: int | None = None) -> None:
        """Keep the newest version of a message.

        An event's ``pos`` orders the versions it carries; an ack or a REST copy is a snapshot
        without one, so it replaces only what it visibly supersedes. Nothing ever undoes a
        delete or moves ``edited_at`` back.
        """
        view = self.view(str(message["conversation_id"]))
        seq = int(message["seq"])
        old = view.messages.get(seq)
        known = view.versions.get(seq, 0)
        if old is None:
            keep = True
        elif _older(message, old):
            keep = False
        elif event_pos is not None:
            keep = event_pos >= known
        else:
            keep = _newer(message, old)
        if keep:
            view.messages[seq] = message
        view.versions[seq] = max(known, event_pos or 0, int(message.get("pos") or 0))
        self._notify()

    def _advance(self, view: ConversationView, pos: int) -> None:
        if view.cursor is not None and pos <= view.cursor:
            return
        view.ahead.add(pos)
        if view.cursor is not None:
            self._absorb(view, view.cursor)

    def _set_base(self, view: ConversationView, cursor: int) -> None:
        """Everything up to ``cursor`` is known (from a join, or a REST repair)."""
        base = max(view.cursor or 0, cursor)
        view.ahead = {p for p in view.ahead if p > base}
        view.gap_since = None
        self._absorb(view, base)

    @staticmethod
    def _absorb(view: ConversationView, cursor: int) -> None:
        """Move the cursor over the positions that are now contiguous; note an open gap."""
        while cursor + 1 in view.ahead:
            cursor += 1
            view.ahead.discard(cursor)
        view.cursor = cursor
        if not view.ahead:
            view.gap_since = None
        elif view.gap_since is None:
            view.gap_since = time.monotonic()

    # ---------------------------------------------------------------- repair from REST

    def _schedule_repair(self, conv_id: str, last_pos: int | None) -> None:
        if conv_id in self._repairing and last_pos is None:
            return
        self._repairing.add(conv_id)
        self._repairs.put_nowait((conv_id, last_pos))

    async def _repair_loop(self) -> None:
        while True:
            conv_id, last_pos = await self._repairs.get()
            try:
                await self._repair(conv_id, last_pos)
            finally:
                self._repairing.discard(conv_id)
                self._notify()

    async def _repair(self, conv_id: str, last_pos: int | None) -> None:
        """Fetch a conversation's state and messages by REST, then set the cursor."""
        view = self.view(conv_id)
        for attempt in itertools.count():
            seen = view.state_pos
            try:
                detail = await self.conversation(conv_id)
                after = view.contiguous_seq
                for message in await self.history_all(conv_id, after_seq=after):
                    self._store_message(message)
            except ApiError as exc:
                if exc.status in (403, 404):
                    if view.state_pos == seen:  # no newer fact (say, a re-add) arrived meanwhile
                        view.active = False
                    return
                if exc.status == 401:
                    return  # the session is gone; the socket side stops the client
                err: Exception = exc
            except (httpx.TransportError, ClientClosed) as exc:
                if isinstance(exc, ClientClosed):
                    return
                err = exc
            else:
                self._apply_snapshot(view, detail)
                self._set_base(view, last_pos if last_pos is not None else int(detail["last_pos"]))
                return
            log.debug("repair of %s failed (%r), retrying", conv_id, err)
            await asyncio.sleep(self.reconnect_policy.delay(attempt))


class _Retry(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def _ws_url(base_url: str) -> str:
    if base_url.startswith("https://"):
        return "wss://" + base_url[len("https://") :] + "/ws"
    if base_url.startswith("http://"):
        return "ws://" + base_url[len("http://") :] + "/ws"
    raise ValueError("base_url must start with http:// or https://")


def _retrieve(future: asyncio.Future[Json]) -> None:
    if not future.cancelled():
        future.exception()


def _newer(new: Json, old: Json) -> bool:
    """Does a snapshot visibly supersede what is held (deleted since, or edited later)?"""
    if new.get("deleted") and not old.get("deleted"):
        return True
    return str(new.get("edited_at") or "") > str(old.get("edited_at") or "")


def _older(new: Json, old: Json) -> bool:
    """Would taking ``new`` undo a delete or an edit already held?"""
    if old.get("deleted") and not new.get("deleted"):
        return True
    return str(new.get("edited_at") or "") < str(old.get("edited_at") or "")


def _roles(members: list[Json]) -> dict[str, str]:
    return {str(m["user_id"]): str(m.get("role", "member")) for m in members}


def _close_code(ws: ClientConnection) -> int | None:
    """The close code as a plain int (websockets reports an IntEnum for known codes)."""
    code = ws.close_code
    return None if code is None else int(code)


def _split(raw: str | bytes) -> list[Json]:
    """A server frame holds one or more JSON objects separated by newlines."""
    found: list[Json] = []
    for line in raw.splitlines():
        if line.strip():
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                log.warning("ignoring a line that is not JSON: %r", line[:200])
                continue
            if isinstance(value, dict):
                found.append(value)
    return found


def _raise_error(reply: Json) -> None:
    if reply.get("type") == "error":
        raise RequestFailed(str(reply.get("code")), str(reply.get("message")), reply)


def _decode_response(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            body = response.json()
            error = body.get("error", {}) if isinstance(body, dict) else {}
        except ValueError:
            body, error = response.text, {}
        raise ApiError(
            response.status_code,
            str(error.get("code", "http_error")),
            str(error.get("message", response.reason_phrase)),
            body,
        )
    if response.status_code == 204 or not response.content:
        return None
    return orjson.loads(response.content)
