"""Media rules as pure calls: names, dispositions, signed links, type detection, images."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from gochat.clock import FakeClock
from gochat.domain.media_rules import content_disposition, safe_filename
from gochat.errors import InvalidRequest, TooLarge, UnsupportedMediaType
from gochat.media.detect import detect_type
from gochat.media.inspect import inspect_upload
from gochat.security.links import LinkSigner
from tests.media_fixtures import (
    HTML_PAGE,
    SVG_SCRIPT,
    animated_gif,
    bomb_png,
    has_gps,
    image_bytes,
    jpeg_with_gps,
    truncated_jpeg,
)


@pytest.mark.parametrize(
    ("raw", "content_type", "expected"),
    [
        ("photo.JPG", "image/jpeg", "photo.jpg"),
        ("report.pdf", "image/png", "report.png"),
        ("../../etc/passwd", "text/plain", "passwd.txt"),
        ("C:\\Users\\me\\cv.docx", "application/pdf", "cv.pdf"),
        ("invoice\u202efdp.exe", "application/pdf", "invoicefdp.pdf"),
        ("a\x00b\x1b[0m\tc.txt", "text/plain", "ab[0mc.txt"),
        ("   ", "application/zip", "file.zip"),
        (None, "application/zip", "file.zip"),
        (".htaccess", "text/plain", "htaccess.txt"),
        ("CON.txt", "text/plain", "file-CON.txt"),
        ('a"b<c>|?*.txt', "text/plain", "abc.txt"),
        ("archive.tar.gz", "application/gzip", "archive.tar.gz"),
        ("x" * 300 + ".png", "image/png", "x" * 100 + ".png"),
        ("Привет мир.txt", "text/plain", "Привет мир.txt"),
    ],
)
def test_safe_filename(raw: str | None, content_type: str, expected: str) -> None:
    assert safe_filename(raw, content_type) == expected


def test_content_disposition_is_inline_only_for_raster_images() -> None:
    assert content_disposition("image/png", "a.png").startswith("inline; ")
    for kind in ("application/pdf", "text/plain", "image/svg+xml", "text/html", "video/mp4"):
        assert content_disposition(kind, "a").startswith("attachment; ")
    header = content_disposition("text/plain", 'Ünïcödé "quoted" 100%.txt')
    assert header == (
        'attachment; filename="_n_c_d_ _quoted_ 100_.txt"; '
        "filename*=UTF-8''%C3%9Cn%C3%AFc%C3%B6d%C3%A9%20%22quoted%22%20100%25.txt"
    )


def test_signed_links() -> None:
    clock = FakeClock()
    signer = LinkSigner("s" * 40, 3600, clock)
    url = signer.url(42, "original")
    path, query = url.split("?")
    params = dict(p.split("=") for p in query.split("&"))
    exp, sig = int(params["exp"]), params["sig"]
    assert path == "/api/v1/media/42" and signer.verify(42, "original", exp, sig)
    assert signer.url(42, "thumbnail").startswith("/api/v1/media/42/thumbnail?")
    assert not signer.verify(43, "original", exp, sig)
    assert not signer.verify(42, "thumbnail", exp, sig)
    assert not signer.verify(42, "original", exp + 1, sig)
    assert not signer.verify(42, "original", exp, "é" + sig[1:])
    assert not LinkSigner("t" * 40, 3600, clock).verify(42, "original", exp, sig)
    clock.advance(600)
    assert signer.url(42, "original") == url  # stable within a quarter of the TTL: cacheable
    clock.advance(exp - clock.now().timestamp() - 1)
    assert signer.verify(42, "original", exp, sig)
    clock.advance(1)
    assert not signer.verify(42, "original", exp, sig)


def write(tmp_path: Path, data: bytes, name: str = "upload") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"hello\r\nworld\t\x0c\n", "text/plain"),
        ("😀 ünïcode\n".encode(), "text/plain"),
        (b"%PDF-1.7\n...", "application/pdf"),
        (image_bytes("PNG"), "image/png"),
        (image_bytes("WEBP"), "image/webp"),
    ],
)
def test_detect_accepts(tmp_path: Path, data: bytes, expected: str) -> None:
    assert detect_type(write(tmp_path, data)) == expected


@pytest.mark.parametrize(
    "data",
    [
        HTML_PAGE,
        SVG_SCRIPT,
        b"  \n<p>hi</p>",
        b"notes\n<script>alert(1)</script>",
        b"bad \xff\xfe utf-8",
        b"nul \x00 byte",
        b"\x7fELF\x02\x01\x01" + b"\x00" * 57,
        image_bytes("BMP"),
        image_bytes("TIFF"),
    ],
)
def test_detect_refuses(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(UnsupportedMediaType):
        detect_type(write(tmp_path, data))


def test_jpeg_is_oriented_stripped_and_thumbnailed(tmp_path: Path) -> None:
    found = inspect_upload(write(tmp_path, jpeg_with_gps((400, 100), 6)), "x.jpg", 50_000_000, 320)
    assert (found.content_type, found.width, found.height) == ("image/jpeg", 100, 400)
    cleaned = found.path.read_bytes()
    assert found.path != tmp_path / "upload" and not has_gps(cleaned)
    with Image.open(io.BytesIO(cleaned)) as img:
        assert img.getpixel((99, 0))[0] > 240  # the white corner, moved by the rotation
    assert found.thumbnail is not None
    with Image.open(io.BytesIO(found.thumbnail)) as thumb:
        assert (thumb.format, thumb.size) == ("WEBP", (80, 320))


def test_animated_gif_kept_as_is(tmp_path: Path) -> None:
    data = animated_gif(frames=4)
    found = inspect_upload(write(tmp_path, data), "a.gif", 50_000_000, 320)
    assert found.path.read_bytes() == data and found.thumbnail is not None


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (bomb_png(10_000, 10_000), TooLarge),  # over our limit and Pillow's warning threshold
        (bomb_png(30_000, 30_000), TooLarge),  # over Pillow's hard limit
        (bomb_png(8_000, 8_000), TooLarge),  # over our limit only
        (truncated_jpeg(), InvalidRequest),
        (image_bytes("PNG")[:-20], InvalidRequest),
        (b"", InvalidRequest),
    ],
)
def test_bad_images(tmp_path: Path, data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        inspect_upload(write(tmp_path, data), "x.png", 50_000_000, 320)


def test_too_many_frames(tmp_path: Path) -> None:
    with pytest.raises(TooLarge):
        inspect_upload(write(tmp_path, animated_gif(frames=30, size=(100, 100))), "a.gif", 100_000, 320)
