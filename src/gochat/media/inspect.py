"""The upload pipeline between the spooled file and the store. Synchronous: run in a thread.

Detect the type from the bytes, vet and clean images (metadata stripped, orientation
applied, thumbnail made), name the file safely, checksum what will be stored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from gochat.domain.media_rules import ACCEPTED, safe_filename
from gochat.errors import InvalidRequest
from gochat.media.detect import detect_type
from gochat.media.images import process_image

HASH_CHUNK = 1_048_576


@dataclass(frozen=True, slots=True)
class Inspected:
    """What to store: ``path`` holds the bytes (the spooled file, or its cleaned copy)."""

    content_type: str
    path: Path
    size: int
    sha256: str
    filename: str
    width: int | None = None
    height: int | None = None
    thumbnail: bytes | None = None


def inspect_upload(spooled: Path, declared_name: str | None, max_pixels: int, thumb_px: int) -> Inspected:
    if spooled.stat().st_size == 0:
        raise InvalidRequest("the file is empty")
    content_type = detect_type(spooled)
    filename = safe_filename(declared_name, content_type)
    if not ACCEPTED[content_type].image:
        return _described(content_type, spooled, filename)
    cleaned = cleaned_path(spooled)
    image = process_image(spooled, content_type, cleaned, max_pixels, thumb_px)
    stored = cleaned if image.reencoded else spooled
    return _described(content_type, stored, filename, image.width, image.height, image.thumbnail)


def cleaned_path(spooled: Path) -> Path:
    """Where the metadata-free copy of an image is written (the caller removes it)."""
    return spooled.with_name(spooled.name + ".clean")


def _described(
    content_type: str,
    path: Path,
    filename: str,
    width: int | None = None,
    height: int | None = None,
    thumbnail: bytes | None = None,
) -> Inspected:
    size, digest = _size_and_sha256(path)
    return Inspected(content_type, path, size, digest, filename, width, height, thumbnail)


def _size_and_sha256(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
