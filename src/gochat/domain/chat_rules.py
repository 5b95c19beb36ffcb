"""Rules of chat state: mentions, reactions, edit windows. Pure."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta

from gochat.domain.models import Message
from gochat.domain.validation import field_error, username_key

MAX_REACTION_KINDS = 20
MAX_MENTIONS = 50
MENTION_RE = re.compile(r"(?<![\w@.])@([A-Za-z0-9_.\-]{3,32})")
_KEYCAP_BASES = frozenset("0123456789#*")


def mentioned_keys(body: str) -> set[str]:
    """Username keys named with @username in a message body (trailing dots trimmed)."""
    found = {username_key(m.group(1).rstrip(".")) for m in MENTION_RE.finditer(body)}
    return {key for key in found if len(key) >= 3}


def clean_emoji(value: str) -> str:
    """One emoji (with modifiers, ZWJ sequences, flags, keycaps, tag flags), or InvalidRequest."""
    emoji = unicodedata.normalize("NFC", value)
    if not 1 <= len(emoji) <= 32 or not is_single_emoji(emoji):
        raise field_error("emoji", "must be a single emoji")
    return emoji


# Code points that can start an emoji: the pictographic blocks plus the BMP symbols that
# Unicode's emoji data lists (arrows, dingbats, ©, ®, ™, 〰 ...). Plain letters, digits,
# box drawing and music signs are not here.
_EMOJI_BASES = (
    (0x1F000, 0x1FAFF),
    (0x2600, 0x27BF),
    (0x2190, 0x21FF),
    (0x2300, 0x23FF),
    (0x2B05, 0x2B55),
    (0x2934, 0x2935),
    (0x25AA, 0x25FE),
)
_EMOJI_SINGLES = frozenset("\u00a9\u00ae\u203c\u2049\u2122\u2139\u24c2\u3030\u303d\u3297\u3299")
_REGIONAL = (0x1F1E6, 0x1F1FF)
_SKIN_TONES = (0x1F3FB, 0x1F3FF)
_VS16 = "\ufe0f"
_ZWJ = "\u200d"
_KEYCAP = "\u20e3"


def _is_base(char: str) -> bool:
    code = ord(char)
    if _REGIONAL[0] <= code <= _REGIONAL[1] or _SKIN_TONES[0] <= code <= _SKIN_TONES[1]:
        return False
    return char in _EMOJI_SINGLES or any(low <= code <= high for low, high in _EMOJI_BASES)


def _is_flag(text: str) -> bool:
    return len(text) == 2 and all(_REGIONAL[0] <= ord(c) <= _REGIONAL[1] for c in text)


def _is_keycap(text: str) -> bool:
    return text[0] in _KEYCAP_BASES and text[1:] in (_VS16 + _KEYCAP, _KEYCAP)


def _is_element(part: str) -> bool:
    """A base pictograph, then at most a skin tone or VS16, then tag characters (subdivision flags)."""
    if not part or not _is_base(part[0]):
        return False
    rest = part[1:].lstrip(_VS16)
    if rest and _SKIN_TONES[0] <= ord(rest[0]) <= _SKIN_TONES[1]:
        rest = rest[1:]
    return all(0xE0020 <= ord(c) <= 0xE007F for c in rest)


def is_single_emoji(text: str) -> bool:
    """True for exactly one emoji grapheme: a flag, a keycap, or ZWJ-joined elements."""
    if not text:
        return False
    if _is_flag(text) or _is_keycap(text):
        return True
    return all(_is_element(part) for part in text.split(_ZWJ))


def edit_allowed(message: Message, user_id: int, now: datetime, window_s: int) -> str | None:
    """Why this user may not edit this message now, or None if they may."""
    if message.sender_id != user_id:
        return "only the sender edits a message"
    if now - message.created_at > timedelta(seconds=window_s):
        return "the edit window has passed"
    return None
