"""What a file is, from its bytes alone (never its name or the type the client declared).

Synchronous: run in a worker thread. Binary formats are recognised by their signatures
(``filetype``); text is accepted only if it is UTF-8 without control characters and does not
look like markup (HTML, SVG, XML), which browsers could be tricked into rendering.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

import filetype

from gochat.domain.media_rules import canonical_type
from gochat.errors import UnsupportedMediaType

HEAD_BYTES = 8192
TEXT_CHUNK = 65_536
# C0 controls but tab, newlines and form feed, and DEL.
_CONTROLS = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_MARKUP_MARKERS = (
    b"<!doctype",
    b"<html",
    b"<head",
    b"<body",
    b"<script",
    b"<svg",
    b"<?xml",
    b"<iframe",
    b"<object",
    b"<embed",
    b"<meta",
    b"<link",
    b"<style",
)


def detect_type(path: Path) -> str:
    """The accepted content type of the file, or UnsupportedMediaType."""
    with path.open("rb") as f:
        head = f.read(HEAD_BYTES)
    kind = filetype.guess(head)
    if kind is not None:
        accepted = canonical_type(kind.mime)
        if accepted is None:
            raise UnsupportedMediaType(f"files of type {kind.mime} are not accepted")
        return accepted
    if looks_like_markup(head):
        raise UnsupportedMediaType("HTML, SVG and XML files are not accepted")
    if is_plain_text(path):
        return "text/plain"
    raise UnsupportedMediaType("this type of file is not accepted")


def looks_like_markup(head: bytes) -> bool:
    """Markup at the start, or a tag browsers act on anywhere in the first KiB."""
    start = head[:1024].removeprefix(codecs.BOM_UTF8).lstrip().lower()
    return start.startswith(b"<") or any(marker in start for marker in _MARKUP_MARKERS)


def is_plain_text(path: Path) -> bool:
    """Strict UTF-8 throughout, with no control characters but tab, newlines and form feed."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    with path.open("rb") as f:
        while chunk := f.read(TEXT_CHUNK):
            if _CONTROLS.search(chunk):
                return False
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                return False
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True
