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
_EMOJI_JOINERS = frozenset("\u200d\ufe0f\ufe0e\u20e3")


def mentioned_keys(body: str) -> set[str]:
    """Username keys named with @username in a message body (trailing dots trimmed)."""
    found = {username_key(m.group(1).rstrip(".")) for m in MENTION_RE.finditer(body)}
    return {key for key in found if len(key) >= 3}


def clean_emoji(value: str) -> str:
    """One emoji (with modifiers, ZWJ sequences, flags, keycaps), or InvalidRequest."""
    emoji = unicodedata.normalize("NFC", value)
    if not 1 <= len(emoji) <= 32 or not _is_emoji_sequence(emoji):
        raise field_error("emoji", "must be a single emoji")
    return emoji


def _is_emoji_sequence(text: str) -> bool:
    """At least one pictograph (or keycap); everything else modifiers, joiners or tags."""
    has_symbol = False
    for i, char in enumerate(text):
        if _is_pictograph(text, i):
            has_symbol = True
        elif not _is_modifier(char):
            return False
    return has_symbol


def _is_pictograph(text: str, i: int) -> bool:
    char = text[i]
    if unicodedata.category(char) == "So":
        return True
    return char in _KEYCAP_BASES and text[i + 1 : i + 3] in ("\ufe0f\u20e3", "\u20e3")


def _is_modifier(char: str) -> bool:
    if unicodedata.category(char) in ("Sk", "Mn", "Me") or char in _EMOJI_JOINERS:
        return True
    return 0xE0020 <= ord(char) <= 0xE007F  # tag characters of subdivision flags


def edit_allowed(message: Message, user_id: int, now: datetime, window_s: int) -> str | None:
    """Why this user may not edit this message now, or None if they may."""
    if message.sender_id != user_id:
        return "only the sender edits a message"
    if message.deleted:
        return "the message was deleted"
    if now - message.created_at > timedelta(seconds=window_s):
        return "the edit window has passed"
    return None
