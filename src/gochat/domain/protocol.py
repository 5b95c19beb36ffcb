"""The WebSocket protocol core: client text frames in, typed commands out; server frames out.

Sans-I/O (STYLE rule 1): nothing here touches a socket, a clock or an event loop, so the
gateway only moves bytes and every wire rule can be tested with plain function calls.
``parse_frame`` never raises; a frame that cannot become a command comes back as
``Rejected``, which the gateway turns into an error reply with ``encode_error``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, TypeAlias

import orjson

from gochat.ids import parse_id

RequestId: TypeAlias = str | int
"""Client-chosen request id: a str of 1..64 chars or an int with abs <= 2**53, echoed as-is."""

MAX_REQUEST_ID_LEN = 64
MAX_SAFE_INT = 2**53  # beyond this a JavaScript client could not echo-compare its own id
MAX_ENTITY_ID = 2**63 - 1  # signed 64-bit, the database's id and sequence range
MAX_CLIENT_MSG_ID_LEN = 64
MAX_EMOJI_LEN = 32
MAX_TOKEN_LEN = 4096
MAX_MEDIA_IDS = 10
MAX_CURSORS = 10_000

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x1f\x7f-\x9f\s]")

_Fields: TypeAlias = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Auth:
    token: str
    id: RequestId | None = None


@dataclass(frozen=True, slots=True)
class SendMessage:
    id: RequestId
    conversation_id: int
    client_msg_id: str
    body: str | None
    media_ids: tuple[int, ...]
    reply_to_seq: int | None


@dataclass(frozen=True, slots=True)
class EditMessage:
    id: RequestId
    conversation_id: int
    seq: int
    body: str


@dataclass(frozen=True, slots=True)
class DeleteMessage:
    id: RequestId
    conversation_id: int
    seq: int


@dataclass(frozen=True, slots=True)
class AddReaction:
    id: RequestId
    conversation_id: int
    seq: int
    emoji: str


@dataclass(frozen=True, slots=True)
class RemoveReaction:
    id: RequestId
    conversation_id: int
    seq: int
    emoji: str


@dataclass(frozen=True, slots=True)
class Typing:
    conversation_id: int
    id: RequestId | None = None


@dataclass(frozen=True, slots=True)
class MarkRead:
    id: RequestId
    conversation_id: int
    seq: int


@dataclass(frozen=True, slots=True)
class Sync:
    id: RequestId
    cursors: dict[int, int]  # conversation id -> last position the client holds (>= 0)


@dataclass(frozen=True, slots=True)
class Ping:
    id: RequestId


Command: TypeAlias = (
    Auth
    | SendMessage
    | EditMessage
    | DeleteMessage
    | AddReaction
    | RemoveReaction
    | Typing
    | MarkRead
    | Sync
    | Ping
)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A frame that could not become a command.

    ``id`` is the request id when the frame carried a valid one, so the client can correlate
    the error; otherwise None. Reply with ``encode_error(r.id, r.code, r.message)``.
    """

    id: RequestId | None
    code: str
    message: str


class _Invalid(Exception):
    """Internal: a field check failed; ``parse_frame`` turns it into ``Rejected``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _fail(field: str, expected: str) -> NoReturn:
    raise _Invalid("invalid_request", f"{field} must be {expected}")


# --- decoding -------------------------------------------------------------------------------


def parse_frame(data: str | bytes) -> Command | Rejected:
    """Turn one client text frame into a command, or say why not. Never raises."""
    fields = _decode(data)
    if isinstance(fields, Rejected):
        return fields
    carried = _echoable_id(fields.get("id"))
    kind = fields.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        return Rejected(carried, "unknown_type", "type is missing or unknown")
    try:
        return parser(fields)
    except _Invalid as exc:
        # A missing or invalid id leaves ``carried`` None: there is nothing safe to echo.
        return Rejected(carried, exc.code, exc.message)


def _decode(data: str | bytes) -> _Fields | Rejected:
    """Strict JSON: orjson rejects invalid UTF-8, lone surrogates, NaN and depth > 1024."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return Rejected(None, "invalid_json", "frame is not valid UTF-8 JSON")
    if not isinstance(value, dict):
        return Rejected(None, "invalid_json", "frame must be a JSON object")
    return value


def _echoable_id(value: object) -> RequestId | None:
    """The id if it is valid (safe to echo back in an error), else None."""
    if isinstance(value, str) and 1 <= len(value) <= MAX_REQUEST_ID_LEN:
        return value
    # bool is an int subclass, but ``true`` is not an id.
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_SAFE_INT:
        return value
    return None


def _request_id(f: _Fields) -> RequestId:
    request_id = _echoable_id(f.get("id"))
    if request_id is None:
        _fail("id", "a string of 1..64 characters or an integer with abs <= 2**53")
    return request_id


def _optional_request_id(f: _Fields) -> RequestId | None:
    """For commands that need no reply: an absent or null id is fine, a malformed one is not."""
    return None if f.get("id") is None else _request_id(f)


# --- field readers --------------------------------------------------------------------------


def _entity_id(value: object, field: str) -> int:
    """An opaque string id. A string that is not a valid id cannot name anything: not_found."""
    if not isinstance(value, str):
        _fail(field, "a string id")
    number = parse_id(value)
    if number is None:
        raise _Invalid("not_found", f"{field} does not name an existing object")
    return number


def _conversation_id(f: _Fields) -> int:
    return _entity_id(f.get("conversation_id"), "conversation_id")


def _int(value: object, field: str, minimum: int) -> int:
    """A JSON integer in minimum..2**63-1; bools and floats (1.0, huge ints) are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(field, "an integer")
    if not minimum <= value <= MAX_ENTITY_ID:
        _fail(field, f"an integer in {minimum}..2**63-1")
    return value


def _seq(f: _Fields) -> int:
    return _int(f.get("seq"), "seq", 1)


def _string(value: object, field: str, max_len: int) -> str:
    if not isinstance(value, str):
        _fail(field, "a string")
    if not 1 <= len(value) <= max_len:
        _fail(field, f"1..{max_len} characters")
    return value


def _printable(value: str, field: str, forbidden: re.Pattern[str], what: str) -> str:
    if forbidden.search(value):
        _fail(field, f"free of {what}")
    return value


def _body(value: object) -> str:
    """Any string; its length policy belongs to the service, which knows the limits."""
    if not isinstance(value, str):
        _fail("body", "a string")
    return value


def _client_msg_id(f: _Fields) -> str:
    """The idempotency key: echoed in acks and logs, so no control characters."""
    value = _string(f.get("client_msg_id"), "client_msg_id", MAX_CLIENT_MSG_ID_LEN)
    return _printable(value, "client_msg_id", _CONTROL, "control characters")


def _emoji(f: _Fields) -> str:
    """Only a shape check here; the service decides which emoji exist."""
    emoji = _string(f.get("emoji"), "emoji", MAX_EMOJI_LEN)
    return _printable(emoji, "emoji", _CONTROL_OR_SPACE, "control characters and whitespace")


def _media_ids(value: object) -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        _fail("media_ids", "a list of string ids")
    if len(value) > MAX_MEDIA_IDS:
        raise _Invalid("too_large", f"media_ids holds at most {MAX_MEDIA_IDS} ids")
    return tuple(_entity_id(item, "media_ids") for item in value)


def _cursors(value: object) -> dict[int, int]:
    """Conversation id -> position.

    A key that is not a valid id rejects the whole frame with not_found: a partial sync would
    leave the client believing it had caught up on a conversation it never named correctly.
    Keys with leading zeros name the same conversation; the last one in the frame wins.
    """
    if not isinstance(value, dict):
        _fail("cursors", "an object mapping conversation ids to positions")
    if len(value) > MAX_CURSORS:
        raise _Invalid("too_large", f"cursors holds at most {MAX_CURSORS} entries")
    return {
        _entity_id(key, "cursors key"): _int(pos, "cursors value", 0) for key, pos in value.items()
    }


# --- one small parser per command ------------------------------------------------------------


def _parse_auth(f: _Fields) -> Auth:
    request_id = _optional_request_id(f)
    return Auth(token=_string(f.get("token"), "token", MAX_TOKEN_LEN), id=request_id)


def _parse_send(f: _Fields) -> SendMessage:
    request_id, conversation_id = _request_id(f), _conversation_id(f)
    client_msg_id = _client_msg_id(f)
    body = None if f.get("body") is None else _body(f["body"])
    media_ids = _media_ids(f.get("media_ids"))
    reply = f.get("reply_to_seq")
    reply_to_seq = None if reply is None else _int(reply, "reply_to_seq", 1)
    if body is None and not media_ids:
        _fail("body", "present unless media_ids is non-empty")
    return SendMessage(request_id, conversation_id, client_msg_id, body, media_ids, reply_to_seq)


def _parse_edit(f: _Fields) -> EditMessage:
    request_id, conversation_id = _request_id(f), _conversation_id(f)
    return EditMessage(request_id, conversation_id, _seq(f), _body(f.get("body")))


def _parse_delete(f: _Fields) -> DeleteMessage:
    request_id, conversation_id = _request_id(f), _conversation_id(f)
    return DeleteMessage(request_id, conversation_id, _seq(f))


def _parse_reaction_add(f: _Fields) -> AddReaction:
    request_id, conversation_id = _request_id(f), _conversation_id(f)
    return AddReaction(request_id, conversation_id, _seq(f), _emoji(f))


def _parse_reaction_remove(f: _Fields) -> RemoveReaction:
    request_id, conversation_id = _request_id(f), _conversation_id(f)
    return RemoveReaction(request_id, conversation_id, _seq(f), _emoji(f))


def _parse_typing(f: _Fields) -> Typing:
    request_id = _optional_request_id(f)
    return Typing(conversation_id=_conversation_id(f), id=request_id)


def _parse_read(f: _Fields) -> MarkRead:
    request_id, conversation_id = _request_id(f), _conversation_id(f)
    return MarkRead(request_id, conversation_id, _seq(f))


def _parse_sync(f: _Fields) -> Sync:
    request_id = _request_id(f)
    return Sync(request_id, _cursors(f.get("cursors")))


def _parse_ping(f: _Fields) -> Ping:
    return Ping(_request_id(f))


_PARSERS: Mapping[str, Callable[[_Fields], Command]] = {
    "auth": _parse_auth,
    "message.send": _parse_send,
    "message.edit": _parse_edit,
    "message.delete": _parse_delete,
    "reaction.add": _parse_reaction_add,
    "reaction.remove": _parse_reaction_remove,
    "typing": _parse_typing,
    "read": _parse_read,
    "sync": _parse_sync,
    "ping": _parse_ping,
}


# --- encoding -------------------------------------------------------------------------------


def encode_frame(obj: Mapping[str, object]) -> bytes:
    """One JSON object as UTF-8 bytes.

    orjson never emits a raw newline (no indent option), so frames can be coalesced with ``\\n``.
    """
    return orjson.dumps(obj if isinstance(obj, dict) else dict(obj))


def encode_ack(request_id: RequestId, **fields: object) -> bytes:
    """The success reply to a request: ``{"type": "ack", "id": ..., **fields}``."""
    _check_reserved(fields, ("type", "id"))
    return encode_frame({"type": "ack", "id": request_id, **fields})


def encode_error(request_id: RequestId | None, code: str, message: str) -> bytes:
    """The failure reply to a request; ``id`` is null when the request had no valid id."""
    return encode_frame({"type": "error", "id": request_id, "code": code, "message": message})


def encode_event(event_type: str, **fields: object) -> bytes:
    """A server event, ``{"type": event_type, **fields}``; events carry no id (pong excepted)."""
    _check_reserved(fields, ("type",))
    return encode_frame({"type": event_type, **fields})


def _check_reserved(fields: Mapping[str, object], reserved: tuple[str, ...]) -> None:
    """A field silently replacing ``type`` or ``id`` would corrupt the reply; fail loudly."""
    clash = [name for name in reserved if name in fields]
    if clash:
        raise ValueError(f"fields may not override {', '.join(clash)}")
