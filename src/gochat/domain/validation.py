"""Input rules for accounts and text: pure functions that raise InvalidRequest."""

from __future__ import annotations

import re
import unicodedata

from gochat.errors import InvalidRequest

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{3,32}$")
PASSWORD_MIN = 8
PASSWORD_MAX = 256
DISPLAY_NAME_MAX = 64
BIO_MAX = 500
TITLE_MAX = 128
# Line and paragraph separators are allowed where newlines are; every other Cc/Cf/Co/Cs/Cn
# character (controls, bidi overrides, private use, surrogates, unassigned) is refused.
_ALLOWED_IN_MULTILINE = frozenset("\n\t")
# Zero-width joiners and emoji tag characters are format characters (Cf) that real emoji
# sequences need (family emoji, subdivision flags); bidi overrides stay refused.
_ALLOWED_FORMAT = frozenset("\u200c\u200d") | frozenset(chr(c) for c in range(0xE0020, 0xE0080))


def field_error(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, fields=[{"field": field, "message": message}])


def normalize_username(raw: str) -> str:
    """NFKC-normalised username as the user will see it; raises if not allowed."""
    name = unicodedata.normalize("NFKC", raw).strip()
    if not USERNAME_RE.fullmatch(name):
        raise field_error("username", "3-32 characters: letters, digits, '_', '.' and '-' only")
    return name


def username_key(name: str) -> str:
    """The case-insensitive key usernames are unique by."""
    return unicodedata.normalize("NFKC", name).casefold()


def check_password(password: str) -> None:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise field_error("password", f"{PASSWORD_MIN}-{PASSWORD_MAX} characters")


def has_forbidden_chars(text: str, multiline: bool) -> bool:
    if text.isprintable():  # no Cc/Cf/Cs/Co/Cn at all (nor Z* but " "): the common case, in C
        return False
    allowed = _ALLOWED_IN_MULTILINE if multiline else frozenset()
    for char in text:
        if char in allowed or char in _ALLOWED_FORMAT:
            continue
        if unicodedata.category(char)[0] == "C":
            return True
    return False


def clean_text(field: str, value: str, max_len: int, *, multiline: bool = False) -> str:
    """NFC-normalised, stripped text within a length limit and without control characters."""
    text = unicodedata.normalize("NFC", value).strip()
    if len(text) > max_len:
        raise field_error(field, f"at most {max_len} characters")
    if has_forbidden_chars(text, multiline):
        raise field_error(field, "control characters are not allowed")
    return text


def clean_display_name(value: str) -> str:
    name = clean_text("display_name", value, DISPLAY_NAME_MAX)
    if not name:
        raise field_error("display_name", "must not be empty")
    return name


def clean_bio(value: str) -> str:
    return clean_text("bio", value, BIO_MAX, multiline=True)


def clean_title(value: str) -> str:
    title = clean_text("title", value, TITLE_MAX)
    if not title:
        raise field_error("title", "must not be empty")
    return title


def clean_body(value: str, max_chars: int, *, allow_empty: bool = False) -> str:
    """A message body: newlines and tabs allowed, other controls refused, length capped.

    ``allow_empty``: a message that carries media may have no text.
    """
    body = unicodedata.normalize("NFC", value)
    if len(body) > max_chars:
        raise field_error("body", f"at most {max_chars} characters")
    if has_forbidden_chars(body, multiline=True):
        raise field_error("body", "control characters are not allowed")
    if not body.strip():
        if allow_empty:
            return ""
        raise field_error("body", "must not be empty")
    return body


def clean_client_msg_id(value: str) -> str:
    if not 1 <= len(value) <= 64 or has_forbidden_chars(value, multiline=False):
        raise field_error("client_msg_id", "1-64 characters without control characters")
    return value
