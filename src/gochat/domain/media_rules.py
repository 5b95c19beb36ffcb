"""Rules for uploaded media: accepted types, safe names, attachment and avatar rules. Pure."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from gochat.domain.models import MediaItem
from gochat.domain.validation import field_error
from gochat.errors import InvalidRequest

MAX_MEDIA_PER_MESSAGE = 10
FILENAME_STEM_MAX = 100
ORIGINAL = "original"
THUMBNAIL = "thumbnail"
VARIANTS = (ORIGINAL, THUMBNAIL)
THUMBNAIL_TYPE = "image/webp"


@dataclass(frozen=True, slots=True)
class MediaType:
    extension: str
    image: bool = False


# The allowlist, by the type detected from the bytes (never the name or the declared type).
ACCEPTED: dict[str, MediaType] = {
    "image/jpeg": MediaType("jpg", image=True),
    "image/png": MediaType("png", image=True),
    "image/gif": MediaType("gif", image=True),
    "image/webp": MediaType("webp", image=True),
    "application/pdf": MediaType("pdf"),
    "application/msword": MediaType("doc"),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": MediaType("docx"),
    "application/vnd.ms-excel": MediaType("xls"),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": MediaType("xlsx"),
    "application/vnd.ms-powerpoint": MediaType("ppt"),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": MediaType("pptx"),
    "application/vnd.oasis.opendocument.text": MediaType("odt"),
    "application/vnd.oasis.opendocument.spreadsheet": MediaType("ods"),
    "application/vnd.oasis.opendocument.presentation": MediaType("odp"),
    "text/plain": MediaType("txt"),
    "audio/mpeg": MediaType("mp3"),
    "audio/ogg": MediaType("ogg"),
    "audio/mp4": MediaType("m4a"),
    "audio/wav": MediaType("wav"),
    "video/mp4": MediaType("mp4"),
    "video/webm": MediaType("webm"),
    "application/zip": MediaType("zip"),
    "application/gzip": MediaType("gz"),
    "application/x-7z-compressed": MediaType("7z"),
}
# Detector spellings of accepted types.
ALIASES = {"image/apng": "image/png", "audio/x-wav": "audio/wav", "audio/x-m4a": "audio/mp4"}
# Shown inline by browsers; everything else is served as an attachment (a download).
INLINE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_PATH_SEPARATORS = re.compile(r"[\\/]")
_UNSAFE_IN_NAMES = frozenset('<>:"|?*')
_WINDOWS_RESERVED = frozenset(
    {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(1, 10)} | {f"lpt{i}" for i in range(1, 10)}
)


@dataclass(frozen=True, slots=True)
class MediaPolicy:
    """Limits and settings of the media feature, built once from Settings."""

    max_bytes: int = 25 * 1_048_576
    max_pixels: int = 50_000_000
    thumbnail_px: int = 320
    url_ttl_s: int = 300
    proxy: bool = False
    unattached_ttl_s: int = 86_400
    cleanup_interval_s: float = 900.0


@dataclass(frozen=True, slots=True)
class StoredMedia:
    """A row of the media table: what was stored, where, and by whom."""

    id: int
    owner_id: int
    storage_key: str
    thumbnail_key: str | None
    content_type: str
    size: int
    sha256: str
    width: int | None
    height: int | None
    filename: str
    attached: bool
    created_at: datetime
    deleted_at: datetime | None = None

    @property
    def is_image(self) -> bool:
        return self.width is not None


def canonical_type(detected: str) -> str | None:
    """The accepted type a detector's answer stands for, or None if it is not accepted."""
    mime = ALIASES.get(detected, detected)
    return mime if mime in ACCEPTED else None


def safe_filename(raw: str | None, content_type: str) -> str:
    """A name safe to show and to offer for download, ending in the detected type's extension.

    Paths are stripped, control/format characters (bidi overrides included) dropped, the
    stem capped, and the extension replaced by the one of the type found in the bytes.
    """
    name = _PATH_SEPARATORS.split(unicodedata.normalize("NFC", raw or ""))[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C" and c not in _UNSAFE_IN_NAMES)
    name = " ".join(name.split())
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    stem = stem[:FILENAME_STEM_MAX].strip(" .")
    if not stem or stem.split(".")[0].lower() in _WINDOWS_RESERVED:
        stem = "file" if not stem else f"file-{stem}"
    return f"{stem}.{ACCEPTED[content_type].extension}"


def thumbnail_filename(filename: str) -> str:
    return filename.rsplit(".", 1)[0] + ".webp"


def is_inline(content_type: str) -> bool:
    return content_type in INLINE_TYPES


def content_disposition(content_type: str, filename: str) -> str:
    """RFC 6266: inline only for raster images, an ASCII fallback plus the UTF-8 ``filename*``."""
    kind = "inline" if is_inline(content_type) else "attachment"
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%' else "_" for c in filename)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def media_json(item: MediaItem) -> dict[str, Any]:
    """The contract's media shape; width/height/thumbnail_url are null when not an image."""
    return {
        "id": str(item.id),
        "content_type": item.content_type,
        "size": item.size,
        "filename": item.filename,
        "sha256": item.sha256,
        "width": item.width,
        "height": item.height,
        "url": item.url,
        "thumbnail_url": item.thumbnail_url,
    }


def check_media_ids(media_ids: tuple[int, ...]) -> None:
    if len(media_ids) > MAX_MEDIA_PER_MESSAGE:
        raise field_error("media_ids", f"at most {MAX_MEDIA_PER_MESSAGE} media per message")
    if len(set(media_ids)) != len(media_ids):
        raise field_error("media_ids", "each media id may appear once")


def check_attachable(found: dict[int, StoredMedia], media_ids: tuple[int, ...], sender_id: int) -> None:
    """Only the sender's own live uploads, each attached to no other message yet."""
    for media_id in media_ids:
        record = found.get(media_id)
        if record is None or record.owner_id != sender_id or record.deleted_at is not None:
            # Someone else's media reads as unknown: ids reveal nothing about other users.
            raise field_error("media_ids", f"no such media: {media_id}")
        if record.attached:
            raise field_error("media_ids", f"media {media_id} is already attached to a message")


def check_avatar(record: StoredMedia | None, user_id: int, current: int | None) -> StoredMedia:
    if record is None or record.owner_id != user_id or record.deleted_at is not None:
        raise field_error("avatar_media_id", "no such media")
    if not record.is_image or record.thumbnail_key is None:
        raise field_error("avatar_media_id", "an avatar must be an image")
    if record.attached and record.id != current:
        raise field_error("avatar_media_id", "that media is already attached to a message")
    return record


def parse_variant(value: str) -> str:
    if value not in VARIANTS:
        raise InvalidRequest("unknown media variant")
    return value
