"""Images: read safely, strip metadata, apply orientation, make a WebP thumbnail.

Synchronous and CPU-bound: run in a worker thread. Every failure to decode (damaged or
truncated data, a decoder error of any kind) is the client's bad input (422); too many
pixels (a decompression bomb) is 413. Pillow's DecompressionBombWarning is turned into an
error process-wide, and our own pixel limit is checked before any pixel is decoded.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, ImageSequence

from gochat.errors import GoChatError, InvalidRequest, TooLarge

warnings.simplefilter("error", Image.DecompressionBombWarning)

FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF", "image/webp": "WEBP"}
MAX_FRAMES = 1000
# An animation may decode to this many times the pixels allowed for a still image.
ANIMATION_PIXEL_FACTOR = 2


@dataclass(frozen=True, slots=True)
class ImageResult:
    width: int
    height: int
    thumbnail: bytes
    reencoded: bool  # False: the original bytes are kept (animated GIF)


def process_image(src: Path, content_type: str, out: Path, max_pixels: int, thumb_px: int) -> ImageResult:
    """Check ``src``; write the metadata-free image to ``out`` unless ``reencoded`` is False."""
    fmt = FORMATS[content_type]
    with _decoding():
        with Image.open(src, formats=[fmt]) as probe:
            _check_pixels(probe.size, max_pixels)
            probe.verify()
        with Image.open(src, formats=[fmt]) as img:
            frames = _decode_all_frames(img, max_pixels)
            if frames > 1 and fmt != "JPEG":  # a multi-picture JPEG (MPO) keeps its first
                return _animated(img, fmt, out, thumb_px)
            still = ImageOps.exif_transpose(img)
            thumbnail = make_thumbnail(still, thumb_px)
    save_without_metadata(still, fmt, out)
    return ImageResult(still.width, still.height, thumbnail, reencoded=True)


@contextmanager
def _decoding() -> Iterator[None]:
    """Map whatever a decoder raises to the error tree (bad input, never a 500)."""
    try:
        yield
    except GoChatError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooLarge("the image has too many pixels") from exc
    except MemoryError as exc:
        raise TooLarge("the image is too large to process") from exc
    except Exception as exc:
        raise InvalidRequest("the image is damaged, truncated or not what it claims to be") from exc


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise InvalidRequest("the image has no pixels")
    if width * height > max_pixels:
        raise TooLarge(f"the image has more than {max_pixels} pixels")


def _decode_all_frames(img: Image.Image, max_pixels: int) -> int:
    """Decode every frame (truncation shows here), within a frame and pixel budget."""
    per_frame = img.width * img.height
    count = 0
    for frame in ImageSequence.Iterator(img):
        count += 1
        if count > MAX_FRAMES or count * per_frame > max_pixels * ANIMATION_PIXEL_FACTOR:
            raise TooLarge("the animation has too many frames")
        frame.load()
    img.seek(0)
    return count


def _animated(img: Image.Image, fmt: str, out: Path, thumb_px: int) -> ImageResult:
    thumbnail = make_thumbnail(img, thumb_px)
    if fmt == "GIF":  # kept as is: GIF has no EXIF, and re-encoding would degrade it
        return ImageResult(img.width, img.height, thumbnail, reencoded=False)
    # Animated PNG/WebP: re-encoded frame by frame; only the timing is carried over.
    img.save(out, fmt, save_all=True, exif=b"", **_animation_timing(img))
    return ImageResult(img.width, img.height, thumbnail, reencoded=True)


def _animation_timing(img: Image.Image) -> dict[str, object]:
    durations = [int(frame.info.get("duration", 100)) for frame in ImageSequence.Iterator(img)]
    img.seek(0)
    return {"duration": durations, "loop": int(img.info.get("loop", 0))}


def save_without_metadata(img: Image.Image, fmt: str, out: Path) -> None:
    """Only the pixels (with their colour profile and transparent colour) survive: no EXIF,
    GPS, XMP, comments or text chunks."""
    params: dict[str, object] = {k: img.info[k] for k in ("icc_profile", "transparency") if k in img.info}
    img.info = {}
    if fmt in ("JPEG", "WEBP"):
        params["quality"] = 90
    img.save(out, fmt, **params)


def make_thumbnail(img: Image.Image, max_px: int) -> bytes:
    """A WebP of at most ``max_px`` on its longer side, aspect kept, never enlarged."""
    frame = img.convert("RGBA" if img.has_transparency_data else "RGB")
    frame.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    frame.save(buffer, "WEBP", quality=80, method=4)
    return buffer.getvalue()
