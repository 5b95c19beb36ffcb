"""Input rules for accounts and text (gochat.domain.validation): pure functions, no I/O."""

# Look-alike characters (fullwidth letters, homoglyphs) are the point of these tests.
# ruff: noqa: RUF001

from __future__ import annotations

import sys
import time
import unicodedata

import pytest

from gochat import ids
from gochat.domain import validation as v
from gochat.errors import InvalidRequest


def refused(call: object, *args: object, **kwargs: object) -> InvalidRequest:
    assert callable(call)
    with pytest.raises(InvalidRequest) as info:
        call(*args, **kwargs)
    assert info.value.status == 422 and info.value.code == "invalid_request"
    return info.value


# -- usernames ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("alice", "alice"),
        ("Alice_B.c-9", "Alice_B.c-9"),
        ("abc", "abc"),
        ("a" * 32, "a" * 32),
        ("ａｌｉｃｅ", "alice"),  # fullwidth letters fold to ASCII under NFKC
        ("ＡＬＩＣＥ", "ALICE"),
        ("\u212aelvin", "Kelvin"),  # KELVIN SIGN is NFKC-equivalent to K
        ("  bob  ", "bob"),  # surrounding whitespace is trimmed, never kept
        ("x１２３", "x123"),  # fullwidth digits
    ],
)
def test_username_is_nfkc_normalised(raw: str, expected: str) -> None:
    assert v.normalize_username(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "ab",  # too short
        "a" * 33,  # too long
        "   ",
        "al ice",  # inner space
        "al\tice",
        "alice\nbob",
        "ålice",  # a letter outside the allowed ASCII set
        "алиса",  # Cyrillic
        "李小龙",
        "mañana",
        "bob!",
        "bob@example",
        "a/b/c",
        "ali%ce",
        "drop'table",
        "alice\u200b",  # zero-width space
        "\u0430lice",  # Cyrillic a: a homoglyph of "alice"
    ],
)
def test_bad_usernames_are_refused_with_the_field_named(raw: str) -> None:
    error = refused(v.normalize_username, raw)
    assert error.fields == [{"field": "username", "message": error.message}]


def test_username_key_is_case_and_width_insensitive() -> None:
    keys = {
        v.username_key(v.normalize_username(n))
        for n in ["Alice", "ALICE", "alice", "ａｌｉｃｅ", "ＡＬＩＣＥ"]
    }
    assert keys == {"alice"}
    assert v.username_key("Bob") != v.username_key("B0b")


# -- passwords ------------------------------------------------------------------------


@pytest.mark.parametrize("password", ["x" * 8, "x" * 256, "pässwörd", "🔑" * 8, "with spaces in it"])
def test_acceptable_passwords(password: str) -> None:
    v.check_password(password)


@pytest.mark.parametrize("password", ["", "x" * 7, "🔑" * 7, "x" * 257])
def test_short_and_long_passwords_are_refused(password: str) -> None:
    error = refused(v.check_password, password)
    assert error.fields[0]["field"] == "password"


# -- display names, bios, titles --------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Zoë",
        "你好世界",
        "مرحبا بالعالم",
        "שלום",
        "नमस्ते",
        "q\u0303",  # a combining mark with no precomposed form
        "👋🏽 wave",
        "👨\u200d👩\u200d👧\u200d👦",  # family: zero-width joiners are allowed
        "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # Scotland: tag characters
        "'; DROP TABLE users; --",
        "<script>alert(1)</script>",
    ],
)
def test_any_script_and_emoji_are_kept(text: str) -> None:
    assert v.clean_display_name(text) == text
    assert v.clean_bio(text) == text


def test_text_is_nfc_normalised_and_trimmed() -> None:
    decomposed = "Zoe\u0308"  # e + COMBINING DIAERESIS
    assert v.clean_display_name(f"  {decomposed}  ") == "Zoë"
    assert unicodedata.is_normalized("NFC", v.clean_bio(decomposed))


@pytest.mark.parametrize(
    "char",
    ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\u202e", "\u2066", "\ue000", "\ufeff", "\U0010fffd"],
    ids=["nul", "bel", "esc", "del", "nel", "rlo", "lri", "private-use", "bom", "plane-16-private"],
)
def test_control_and_bidi_characters_are_refused(char: str) -> None:
    assert refused(v.clean_display_name, f"a{char}b").fields[0]["field"] == "display_name"
    assert refused(v.clean_bio, f"a{char}b").fields[0]["field"] == "bio"
    assert refused(v.clean_title, f"a{char}b").fields[0]["field"] == "title"


def test_newlines_and_tabs_only_where_text_is_multiline() -> None:
    assert v.clean_bio("line one\nline\ttwo") == "line one\nline\ttwo"
    refused(v.clean_display_name, "line one\nline two")
    refused(v.clean_display_name, "a\tb")
    refused(v.clean_title, "a\nb")
    refused(v.clean_bio, "a\rb")  # a bare carriage return is a control character


def test_length_limits_count_characters_not_bytes() -> None:
    assert v.clean_display_name("😀" * v.DISPLAY_NAME_MAX) == "😀" * v.DISPLAY_NAME_MAX
    refused(v.clean_display_name, "x" * (v.DISPLAY_NAME_MAX + 1))
    assert len(v.clean_bio("b" * v.BIO_MAX)) == v.BIO_MAX
    refused(v.clean_bio, "b" * (v.BIO_MAX + 1))
    assert len(v.clean_title("t" * v.TITLE_MAX)) == v.TITLE_MAX
    refused(v.clean_title, "t" * (v.TITLE_MAX + 1))


def test_empty_display_name_and_title_are_refused_but_an_empty_bio_is_fine() -> None:
    refused(v.clean_display_name, "")
    refused(v.clean_display_name, "   ")
    refused(v.clean_title, " \u3000 ")  # ideographic space only
    assert v.clean_bio("") == ""
    assert v.clean_bio("   ") == ""


# -- message bodies and client ids ---------------------------------------------------------


def test_message_bodies() -> None:
    assert v.clean_body("  keep my spacing\n", 100) == "  keep my spacing\n"
    assert v.clean_body("x" * 10, 10) == "x" * 10
    refused(v.clean_body, "x" * 11, 10)
    refused(v.clean_body, " \n\t ", 10)
    refused(v.clean_body, "a\x00b", 10)


def test_client_message_ids() -> None:
    assert v.clean_client_msg_id("c" * 64) == "c" * 64
    for bad in ["", "c" * 65, "a\nb", "a\x00"]:
        refused(v.clean_client_msg_id, bad)


# -- ids (gochat.ids): what a client may send as an id -------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", 1),
        ("253008581623606274", 253008581623606274),
        (str(ids.MAX_ID), ids.MAX_ID),
        ("0000000000000000042", 42),  # 19 characters: still a number
    ],
)
def test_parse_id_accepts_decimal_ids(raw: str, expected: int) -> None:
    assert ids.parse_id(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "0",
        "-1",
        "+1",
        " 1",
        "1 ",
        "1.0",
        "1e5",
        "0x10",
        "abc",
        "１２３",  # fullwidth digits are digits to str.isdigit, not to us
        "²",
        "٣",  # Arabic-Indic three
        str(ids.MAX_ID + 1),
        "9" * 20,
        "1" * 1000,
        "1_000",
    ],
)
def test_parse_id_refuses_anything_that_cannot_name_a_row(raw: str) -> None:
    assert ids.parse_id(raw) is None


def test_new_ids_are_positive_63_bit_unique_and_time_ordered() -> None:
    before_ms = int(time.time() * 1000) - ids.EPOCH_MS
    batch = [ids.new_id() for _ in range(50_000)]
    after_ms = int(time.time() * 1000) - ids.EPOCH_MS
    # A burst in one millisecond must not collide (22 random bits alone would, often).
    assert len(set(batch)) == len(batch)
    assert batch == sorted(batch)
    assert all(0 < i <= ids.MAX_ID for i in batch)
    assert all(ids.parse_id(str(i)) == i for i in batch[:50])
    stamps = [i >> ids.RANDOM_BITS for i in batch]
    # The high bits are the creation time; stepping past a crowded millisecond may run ahead by one.
    assert all(before_ms <= ms <= after_ms + 1 for ms in stamps)


def test_the_printable_fast_path_never_hides_a_control_or_format_char() -> None:
    """has_forbidden_chars trusts str.isprintable(): no printable code point is in category C."""
    hidden = [
        hex(code)
        for code in range(sys.maxunicode + 1)
        if chr(code).isprintable() and unicodedata.category(chr(code))[0] == "C"
    ]
    assert hidden == []
    family = "family \U0001f468\u200d\U0001f469"  # ZWJ: a format char (Cf) that is allowed
    assert v.has_forbidden_chars(family, multiline=False) is False
    assert v.has_forbidden_chars("line\nbreak", multiline=True) is False
    assert v.has_forbidden_chars("line\nbreak", multiline=False) is True
    assert v.has_forbidden_chars("bell\x07", multiline=True) is True
    assert v.has_forbidden_chars("bidi\u202eoverride", multiline=False) is True
