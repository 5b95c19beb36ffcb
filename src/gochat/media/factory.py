"""Choose the media store from its URL, and the media policy from the settings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from gochat.config import Settings
from gochat.domain.media_rules import MediaPolicy
from gochat.media.local import LocalMediaStore
from gochat.ports import MediaStore

if TYPE_CHECKING:
    from gochat.media.s3 import S3Credentials


def create_media_store(settings: Settings) -> MediaStore:
    url = settings.effective_media_url
    scheme = urlsplit(url).scheme
    if scheme == "file":
        return LocalMediaStore(file_url_path(url))
    if scheme == "s3":
        from gochat.media.s3 import S3Location, S3MediaStore  # boto3 loads only when S3 is used

        return S3MediaStore(S3Location.parse(url), s3_credentials(settings))
    raise ValueError(f"unsupported GOCHAT_MEDIA_URL scheme {scheme!r} (use file:///dir or s3://bucket?...)")


def file_url_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or not parts.path:
        raise ValueError("a local media URL looks like file:///absolute/dir")
    return Path(unquote(parts.path))


def s3_credentials(settings: Settings) -> S3Credentials:
    from gochat.media.s3 import S3Credentials

    secret = settings.aws_secret_access_key
    token = settings.aws_session_token
    return S3Credentials(
        settings.aws_access_key_id,
        secret.get_secret_value() if secret else None,
        token.get_secret_value() if token else None,
    )


def media_policy(settings: Settings) -> MediaPolicy:
    return MediaPolicy(
        max_bytes=settings.media_max_bytes,
        max_pixels=settings.media_max_pixels,
        thumbnail_px=settings.media_thumbnail_px,
        url_ttl_s=settings.media_url_ttl_s,
        proxy=settings.media_proxy,
        unattached_ttl_s=settings.media_unattached_ttl_s,
        cleanup_interval_s=settings.media_cleanup_interval_s,
    )
