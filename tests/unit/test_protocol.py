"""The WebSocket protocol core: every command, every rejection class, and "never raises"."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gochat.domain.protocol import (
    MAX_CURSORS,
    AddReaction,
    Auth,
    DeleteMessage,
    EditMessage,
    MarkRead,
    Ping,
    Rejected,
    RemoveReaction,
    SendMessage,
    Sync,
    Typing,
    encode_ack,
    encode_error,
    encode_event,
    encode_frame,
    parse_frame,
)

MAX_ID = 2**63 - 1


def frame(**fields: Any) -> bytes:
    return orjson.dumps(fields)


def rejected(data: str | bytes) -> Rejected:
    result = parse_frame(data)
    assert isinstance(result, Rejected), result
    return result


# --- every command from a valid frame -------------------------------------------------------

VALID = [
    ({"type": "auth", "token": "t0k"}, Auth(token="t0k")),
    ({"type": "auth", "token": "t", "id": 1}, Auth(token="t", id=1)),
    (
        {
            "type": "message.send",
            "id": "r1",
            "conversation_id": "12",
            "client_msg_id": "c1",
            "body": "hi",
        },
        SendMessage("r1", 12, "c1", "hi", (), None),
    ),
    (
        {
            "type": "message.send",
            "id": 7,
            "conversation_id": str(MAX_ID),
            "client_msg_id": "c",
            "media_ids": ["3", "4"],
            "reply_to_seq": 9,
        },
        SendMessage(7, MAX_ID, "c", None, (3, 4), 9),
    ),
    (
        {
            "type": "message.send",
            "id": 7,
            "conversation_id": "1",
            "client_msg_id": "c",
            "body": "",
            "media_ids": None,
            "reply_to_seq": None,
        },
        SendMessage(7, 1, "c", "", (), None),
    ),
    (
        {"type": "message.edit", "id": "e", "conversation_id": "5", "seq": 2, "body": "new"},
        EditMessage("e", 5, 2, "new"),
    ),
    (
        {"type": "message.delete", "id": "d", "conversation_id": "5", "seq": 2},
        DeleteMessage("d", 5, 2),
    ),
    (
        {"type": "reaction.add", "id": 1, "conversation_id": "5", "seq": 2, "emoji": "👍🏽"},
        AddReaction(1, 5, 2, "👍🏽"),
    ),
    (
        {
            "type": "reaction.remove",
            "id": 1,
            "conversation_id": "5",
            "seq": 2,
            "emoji": "👨\u200d👩\u200d👧",
        },
        RemoveReaction(1, 5, 2, "👨\u200d👩\u200d👧"),
    ),
    ({"type": "typing", "conversation_id": "5"}, Typing(conversation_id=5)),
    ({"type": "typing", "conversation_id": "5", "id": "x"}, Typing(conversation_id=5, id="x")),
    ({"type": "typing", "conversation_id": "5", "id": None}, Typing(conversation_id=5)),
    ({"type": "read", "id": 2, "conversation_id": "5", "seq": 40}, MarkRead(2, 5, 40)),
    ({"type": "sync", "id": 3, "cursors": {}}, Sync(3, {})),
    ({"type": "sync", "id": 3, "cursors": {"5": 0, "6": 17}}, Sync(3, {5: 0, 6: 17})),
    ({"type": "ping", "id": "p"}, Ping("p")),
    ({"type": "ping", "id": -(2**53)}, Ping(-(2**53))),
    ({"type": "ping", "id": "x" * 64, "future_field": [1, {}]}, Ping("x" * 64)),
]


@pytest.mark.parametrize(("fields", "expected"), VALID)
def test_valid_frame_parses_to_command(fields: dict[str, Any], expected: object) -> None:
    encoded = orjson.dumps(fields)
    assert parse_frame(encoded) == expected
    assert parse_frame(encoded.decode()) == expected


def test_leading_zero_ids_are_still_ids() -> None:
    # "1..19 ASCII digits whose value is 1..2**63-1": zero padding names the same object.
    assert parse_frame(frame(type="typing", conversation_id="007")) == Typing(7)
    assert parse_frame(frame(type="sync", id=1, cursors={"01": 3, "1": 4})) == Sync(1, {1: 4})


# --- undecodable frames: invalid_json, no id --------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        "",
        "not json",
        b"\xff\xfe{}",
        b'{"type": "ping", "id": "\xc3"}',  # truncated UTF-8
        b"\xef\xbb\xbf{}",  # BOM
        '{"type": "ping", "id": "\ud800"}',  # lone surrogate in a str
        '{"type": "ping", "id": "\\ud800"}',  # lone surrogate escape
        '{"type": "ping", "id": NaN}',
        '{"type": "ping", "id": Infinity}',
        '{"type": "ping", "id": 1e400}',
        "[" * 5000 + "]" * 5000,
        '{"a":' * 2000 + "1" + "}" * 2000,
        "[]",
        '[{"type": "ping", "id": 1}]',
        "null",
        "1",
        '"ping"',
        "true",
        '{"type": "ping", "id": 1} {}',
    ],
)
def test_undecodable_frame_is_invalid_json(data: str | bytes) -> None:
    result = rejected(data)
    assert (result.id, result.code) == (None, "invalid_json")


# --- unknown or missing type ----------------------------------------------------------------


@pytest.mark.parametrize("kind", [None, "", "PING", "message", 1, ["ping"], {"a": 1}, True])
def test_unknown_type_carries_a_valid_id(kind: object) -> None:
    result = rejected(frame(type=kind, id="r"))
    assert (result.id, result.code) == ("r", "unknown_type")


def test_missing_type_without_valid_id() -> None:
    assert rejected(b'{"id": true}') == Rejected(None, "unknown_type", "type is missing or unknown")
    assert rejected(b"{}").id is None


# --- request ids ----------------------------------------------------------------------------

NEEDS_ID = [
    {"type": "message.send", "conversation_id": "1", "client_msg_id": "c", "body": "b"},
    {"type": "message.edit", "conversation_id": "1", "seq": 1, "body": "b"},
    {"type": "message.delete", "conversation_id": "1", "seq": 1},
    {"type": "reaction.add", "conversation_id": "1", "seq": 1, "emoji": "x"},
    {"type": "reaction.remove", "conversation_id": "1", "seq": 1, "emoji": "x"},
    {"type": "read", "conversation_id": "1", "seq": 1},
    {"type": "sync", "cursors": {}},
    {"type": "ping"},
]
BAD_IDS = [None, "", "x" * 65, 2**53 + 1, -(2**53) - 1, 1.0, 1.5, True, False, [1], {"a": 1}]


@pytest.mark.parametrize("fields", NEEDS_ID)
def test_request_without_id_is_rejected_without_id(fields: dict[str, Any]) -> None:
    result = rejected(orjson.dumps(fields))
    assert (result.id, result.code) == (None, "invalid_request")
    assert "id" in result.message
    assert not isinstance(parse_frame(orjson.dumps({**fields, "id": "ok"})), Rejected)


@pytest.mark.parametrize("fields", NEEDS_ID)
@pytest.mark.parametrize("bad", BAD_IDS)
def test_request_with_bad_id_is_rejected_without_id(fields: dict[str, Any], bad: object) -> None:
    result = rejected(orjson.dumps({**fields, "id": bad}))
    assert (result.id, result.code) == (None, "invalid_request")


def test_huge_int_id_is_a_float_and_rejected() -> None:
    result = rejected(b'{"type": "ping", "id": 123456789012345678901234567890}')
    assert (result.id, result.code) == (None, "invalid_request")


@pytest.mark.parametrize(
    "fields", [{"type": "auth", "token": "t"}, {"type": "typing", "conversation_id": "1"}]
)
@pytest.mark.parametrize("bad", [b for b in BAD_IDS if b is not None])
def test_optional_id_when_present_must_be_valid(fields: dict[str, Any], bad: object) -> None:
    result = rejected(orjson.dumps({**fields, "id": bad}))
    assert (result.id, result.code) == (None, "invalid_request")


# --- field errors carry the valid id --------------------------------------------------------

SEND = {
    "type": "message.send",
    "id": "r",
    "conversation_id": "1",
    "client_msg_id": "c",
    "body": "b",
}
EDIT = {"type": "message.edit", "id": "r", "conversation_id": "1", "seq": 1, "body": "b"}
REACT = {"type": "reaction.add", "id": "r", "conversation_id": "1", "seq": 1, "emoji": "x"}
READ = {"type": "read", "id": "r", "conversation_id": "1", "seq": 1}
SYNC = {"type": "sync", "id": "r", "cursors": {"1": 0}}
TYPING = {"type": "typing", "id": "r", "conversation_id": "1"}
AUTH = {"type": "auth", "id": "r", "token": "t"}

BAD_STRING_IDS = [
    "",
    "0",
    "-1",
    "+1",
    " 1",
    "1 ",
    "1.0",
    "abc",
    "١٢",
    "²",
    str(MAX_ID + 1),
    "9" * 19,
    "1" * 20,
    "0x1f",
    "1_000",
]
NON_STRING_IDS: list[object] = [None, 1, 0, True, 1.0, [], {}, ["1"]]

BAD_TOKENS: list[object] = [None, "", "t" * 4097, 1, []]

CASES: list[tuple[dict[str, Any], dict[str, Any], str, str]] = [
    # base, override, expected code, field named in the message
    *[
        (base, {"conversation_id": v}, "not_found", "conversation_id")
        for base in (SEND, EDIT, REACT, READ, TYPING)
        for v in BAD_STRING_IDS
    ],
    *[
        (base, {"conversation_id": v}, "invalid_request", "conversation_id")
        for base in (SEND, EDIT, REACT, READ, TYPING)
        for v in NON_STRING_IDS
    ],
    *[(SEND, {"media_ids": [v]}, "not_found", "media_ids") for v in BAD_STRING_IDS],
    *[
        (SEND, {"media_ids": [v]}, "invalid_request", "media_ids")
        for v in NON_STRING_IDS
        if v is not None
    ],
    (SEND, {"media_ids": [None]}, "invalid_request", "media_ids"),
    (SEND, {"media_ids": "1"}, "invalid_request", "media_ids"),
    (SEND, {"media_ids": {"1": 1}}, "invalid_request", "media_ids"),
    (SEND, {"media_ids": [str(i) for i in range(1, 12)]}, "too_large", "media_ids"),
    (SEND, {"body": None}, "invalid_request", "body"),
    (SEND, {"body": None, "media_ids": []}, "invalid_request", "body"),
    (SEND, {"body": 1}, "invalid_request", "body"),
    (SEND, {"body": ["hi"]}, "invalid_request", "body"),
    (SEND, {"client_msg_id": None}, "invalid_request", "client_msg_id"),
    (SEND, {"client_msg_id": ""}, "invalid_request", "client_msg_id"),
    (SEND, {"client_msg_id": "c" * 65}, "invalid_request", "client_msg_id"),
    (SEND, {"client_msg_id": 5}, "invalid_request", "client_msg_id"),
    (SEND, {"client_msg_id": "a\nb"}, "invalid_request", "client_msg_id"),
    (SEND, {"client_msg_id": "a\x00"}, "invalid_request", "client_msg_id"),
    (SEND, {"client_msg_id": "a\x7f"}, "invalid_request", "client_msg_id"),
    (SEND, {"client_msg_id": "a\x85"}, "invalid_request", "client_msg_id"),
    (SEND, {"reply_to_seq": 0}, "invalid_request", "reply_to_seq"),
    (SEND, {"reply_to_seq": "1"}, "invalid_request", "reply_to_seq"),
    (SEND, {"reply_to_seq": True}, "invalid_request", "reply_to_seq"),
    (SEND, {"reply_to_seq": 1.0}, "invalid_request", "reply_to_seq"),
    (EDIT, {"body": None}, "invalid_request", "body"),
    (EDIT, {"body": 3}, "invalid_request", "body"),
    *[
        (base, {"seq": v}, "invalid_request", "seq")
        for base in (EDIT, REACT, READ)
        for v in (None, 0, -1, True, 1.0, 2.5, "1", [1], MAX_ID + 1)
    ],
    *[
        (REACT, {"emoji": v}, "invalid_request", "emoji")
        for v in (None, "", "x" * 33, 1, ["x"], "a b", "\t", "x\u00a0", "x\u3000", "x\n", "x\x1b")
    ],
    *[(AUTH, {"token": v}, "invalid_request", "token") for v in BAD_TOKENS],
    (SYNC, {"cursors": None}, "invalid_request", "cursors"),
    (SYNC, {"cursors": []}, "invalid_request", "cursors"),
    (SYNC, {"cursors": [["1", 0]]}, "invalid_request", "cursors"),
    *[(SYNC, {"cursors": {k: 0}}, "not_found", "cursors") for k in BAD_STRING_IDS],
    *[
        (SYNC, {"cursors": {"1": v}}, "invalid_request", "cursors")
        for v in (None, -1, True, False, 0.0, "0", [0], MAX_ID + 1)
    ],
    (SYNC, {"cursors": {str(i): 0 for i in range(1, MAX_CURSORS + 2)}}, "too_large", "cursors"),
]


@pytest.mark.parametrize(("base", "override", "code", "field"), CASES)
def test_bad_field_is_rejected_with_the_id(
    base: dict[str, Any], override: dict[str, Any], code: str, field: str
) -> None:
    result = rejected(orjson.dumps({**base, **override}))
    assert (result.id, result.code) == ("r", code)
    assert field in result.message


@pytest.mark.parametrize("fields", [SEND, EDIT, REACT, READ, SYNC, TYPING, AUTH])
def test_missing_required_field_is_rejected_with_the_id(fields: dict[str, Any]) -> None:
    for name in set(fields) - {"type", "id"}:
        result = rejected(orjson.dumps({k: v for k, v in fields.items() if k != name}))
        assert (result.id, result.code) == ("r", "invalid_request")
        assert name in result.message


def test_bounds_are_inclusive() -> None:
    assert parse_frame(orjson.dumps({**SEND, "media_ids": [str(i) for i in range(1, 11)]}))
    assert parse_frame(orjson.dumps({**REACT, "emoji": "x" * 32})) == AddReaction(
        "r", 1, 1, "x" * 32
    )
    assert parse_frame(orjson.dumps({**AUTH, "token": "t" * 4096})) == Auth("t" * 4096, "r")
    assert parse_frame(orjson.dumps({**EDIT, "seq": MAX_ID})) == EditMessage("r", 1, MAX_ID, "b")
    cursors = {str(i): i for i in range(1, MAX_CURSORS + 1)}
    result = parse_frame(orjson.dumps({**SYNC, "cursors": cursors}))
    assert isinstance(result, Sync) and len(result.cursors) == MAX_CURSORS


# --- never raises ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)
TYPES = [
    "auth",
    "message.send",
    "message.edit",
    "message.delete",
    "reaction.add",
    "reaction.remove",
    "typing",
    "read",
    "sync",
    "ping",
]
FIELD_NAMES = [
    "id",
    "conversation_id",
    "client_msg_id",
    "body",
    "media_ids",
    "reply_to_seq",
    "seq",
    "emoji",
    "token",
    "cursors",
]
id_like = st.one_of(
    st.sampled_from(["1", "0", str(MAX_ID), str(MAX_ID + 1), "x", "٣"]),
    st.integers().map(str),
    json_values,
)
frame_like = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES)},
    optional={
        name: st.one_of(
            id_like,
            st.lists(id_like, max_size=12),
            st.dictionaries(id_like.map(str), json_values, max_size=4),
        )
        for name in FIELD_NAMES
    },
)


def _dumps_loose(value: object, ensure_ascii: bool) -> str:
    # The stdlib encoder writes NaN/Infinity tokens, lone surrogates and unbounded ints.
    return json.dumps(value, ensure_ascii=ensure_ascii, allow_nan=True)


def _check(data: str | bytes) -> None:
    result = parse_frame(data)
    if isinstance(result, Rejected):
        assert result.code in {
            "invalid_json",
            "unknown_type",
            "invalid_request",
            "not_found",
            "too_large",
        }
        # The gateway must always be able to encode the reply.
        assert orjson.loads(encode_error(result.id, result.code, result.message))["type"] == "error"


@settings(max_examples=300)
@given(st.text())
def test_never_raises_on_text(data: str) -> None:
    _check(data)


@settings(max_examples=300)
@given(st.binary())
def test_never_raises_on_bytes(data: bytes) -> None:
    _check(data)


@settings(max_examples=300)
@given(json_values, st.booleans())
def test_never_raises_on_json_values(value: object, ensure_ascii: bool) -> None:
    text = _dumps_loose(value, ensure_ascii)
    _check(text)
    _check(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=500)
@given(frame_like, st.booleans())
def test_never_raises_on_frame_shaped_objects(value: dict[str, Any], ensure_ascii: bool) -> None:
    _check(_dumps_loose(value, ensure_ascii))


@given(st.integers(min_value=1, max_value=5000))
def test_never_raises_on_deep_nesting(depth: int) -> None:
    _check("[" * depth + "]" * depth)
    _check('{"type":"sync","id":1,"cursors":' + '{"1":' * depth + "0" + "}" * (depth + 1))


# --- encoding -------------------------------------------------------------------------------


def test_encode_ack_round_trips() -> None:
    message = {"id": "9", "seq": 3, "body": "héllo\n", "media": []}
    assert orjson.loads(encode_ack("r1", message=message)) == {
        "type": "ack",
        "id": "r1",
        "message": message,
    }
    assert orjson.loads(encode_ack(5)) == {"type": "ack", "id": 5}


def test_encode_error_round_trips() -> None:
    assert orjson.loads(encode_error(None, "invalid_json", "bad")) == {
        "type": "error",
        "id": None,
        "code": "invalid_json",
        "message": "bad",
    }
    assert orjson.loads(encode_error(-7, "not_found", "x"))["id"] == -7


def test_encode_event_round_trips_without_id() -> None:
    decoded = orjson.loads(encode_event("typing", conversation_id="4", user_id="2"))
    assert decoded == {"type": "typing", "conversation_id": "4", "user_id": "2"}
    assert orjson.loads(encode_event("pong", id="p")) == {"type": "pong", "id": "p"}


def test_encode_frame_accepts_any_mapping_and_has_no_newline() -> None:
    from types import MappingProxyType

    data = encode_frame(MappingProxyType({"type": "x", "text": "a\nb", "n": [1, 2]}))
    assert b"\n" not in data
    assert orjson.loads(data) == {"type": "x", "text": "a\nb", "n": [1, 2]}


def test_encoders_refuse_to_override_type_or_id() -> None:
    with pytest.raises(ValueError, match="type"):
        encode_ack("r", type="error")
    with pytest.raises(ValueError, match="id"):
        encode_ack("r", id="other")
    with pytest.raises(ValueError, match="type"):
        encode_event("typing", type="other")


def test_rejection_round_trips_through_encode_error() -> None:
    result = rejected(orjson.dumps({**READ, "seq": 0}))
    decoded = orjson.loads(encode_error(result.id, result.code, result.message))
    assert decoded["id"] == "r" and decoded["code"] == "invalid_request"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_not_json(value: float) -> None:
    assert rejected(_dumps_loose({"type": "ping", "id": value}, True)).code == "invalid_json"
