"""Settings: the only place that reads the environment (prefix ``GOCHAT_``).

Built once by the CLI (or a test) and passed to ``create_app``; nothing imports a global.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "secret", "dev", "development", "test"})
MIN_SECRET_LENGTH = 32
SECRET_FILE = "secret.key"  # noqa: S105 - a file name, not a secret


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GOCHAT_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Path("./gochat-data")
    database_url: str | None = None
    broker_url: str = "memory://"
    media_url: str | None = None
    secret_key: str | None = None
    # Comma-separated in the environment (NoDecode: not JSON).
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Extra origins the web client may load images/media from (besides an S3 endpoint in
    # media_url), e.g. a CDN; comma-separated in the environment.
    web_media_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Behind a TLS-terminating proxy, set this so HSTS is sent although uvicorn speaks http.
    hsts: bool = False
    # CORS is off unless origins are listed (comma-separated); "*" allows any, without credentials.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Old secrets whose access tokens still verify after GOCHAT_SECRET_KEY was rotated.
    previous_secret_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # tokens
    jwt_issuer: str = "gochat"
    jwt_audience: str = "gochat"
    access_token_ttl_s: int = Field(default=900, ge=30, le=86_400)
    refresh_token_ttl_s: int = Field(default=30 * 86_400, ge=60)

    # abuse
    rate_limits_enabled: bool = True
    login_limit: str = "10/minute"
    login_ip_limit: str = "60/minute"
    register_ip_limit: str = "20/hour"
    api_user_limit: str = "600/minute"
    api_ip_limit: str = "1200/minute"
    send_user_limit: str = "20/second"
    upload_user_limit: str = "30/minute"
    ws_frame_rate: float = Field(default=30.0, gt=0)
    ws_frame_burst: int = Field(default=60, ge=1)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)

    # messaging
    message_max_chars: int = Field(default=4000, ge=1, le=65_535)
    history_page_max: int = 200
    sync_replay_limit: int = Field(default=1000, ge=1)
    group_max_members: int = Field(default=1000, ge=2)
    message_edit_window_s: int = Field(default=2 * 86_400, ge=0)

    # websocket
    ws_auth_timeout_s: float = 10.0
    ws_ping_interval_s: float = 20.0
    ws_ping_timeout_s: float = 20.0
    ws_max_frame_bytes: int = Field(default=65_536, ge=1024)
    ws_send_buffer_bytes: int = Field(default=1_048_576, ge=16_384)
    # Group-commit batches in flight at once (services/send_batch.py); empty = 1 on SQLite (one
    # writer), 2 on MySQL/MariaDB (the next batch is prepared while the database flushes).
    commit_workers: int | None = Field(default=None, ge=1, le=16)
    # Flush pacing (realtime/connection.py): after a flush that took >= 1 ms, wait PACING x its
    # cost (at most MAX_DELAY_MS) before the next, packing what arrives meanwhile. 0 = every tick.
    ws_flush_pacing: float = Field(default=3.0, ge=0, le=10)
    ws_flush_max_delay_ms: float = Field(default=50.0, ge=0, le=1000)

    # media (docs/media.md)
    media_max_bytes: int = Field(default=25 * 1_048_576, ge=1)
    media_max_pixels: int = Field(default=50_000_000, ge=1)
    media_thumbnail_px: int = Field(default=320, ge=16, le=2048)
    media_url_ttl_s: int = Field(default=300, ge=1, le=604_800)  # S3 presigned redirects
    media_link_ttl_s: int = Field(default=3600, ge=60, le=604_800)  # signed links in JSON
    media_proxy: bool = False
    media_unattached_ttl_s: int = Field(default=86_400, ge=0)
    media_cleanup_interval_s: float = Field(default=900.0, ge=0)  # 0: no background cleanup
    # The usual AWS variables (also accepted with the GOCHAT_ prefix), for s3:// media URLs.
    aws_access_key_id: str | None = Field(
        default=None, validation_alias=AliasChoices("aws_access_key_id", "gochat_aws_access_key_id")
    )
    aws_secret_access_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("aws_secret_access_key", "gochat_aws_secret_access_key")
    )
    aws_session_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("aws_session_token", "gochat_aws_session_token")
    )

    log_level: str = "info"
    log_json: bool = True

    @field_validator(
        "allowed_origins", "web_media_origins", "cors_origins", "previous_secret_keys", mode="before"
    )
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator("previous_secret_keys")
    @classmethod
    def _check_previous_secrets(cls, value: list[str]) -> list[str]:
        for old in value:  # an old key still verifies access tokens: a weak one would forge them
            check_secret(old)
        return value

    @model_validator(mode="after")
    def _check_production_secret(self) -> Settings:
        if self.environment == "production":
            check_secret(self.secret_key)
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'gochat.db').resolve()}"

    @property
    def effective_media_url(self) -> str:
        if self.media_url:
            return self.media_url
        return (self.data_dir / "media").resolve().as_uri()

    @property
    def is_embedded(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def effective_commit_workers(self) -> int:
        if self.commit_workers is not None:
            return self.commit_workers
        return 1 if self.is_embedded else 2


def check_secret(secret: str | None) -> None:
    """Refuse to run production with a missing, short or placeholder secret."""
    if not secret:
        raise ValueError("GOCHAT_SECRET_KEY is required in production")
    if secret.strip().lower() in PLACEHOLDER_SECRETS or len(set(secret)) < 8:
        raise ValueError("GOCHAT_SECRET_KEY is a placeholder; generate a random one")
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"GOCHAT_SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters")


def resolve_secret(settings: Settings) -> str:
    """The configured secret, or one generated once and kept in the data dir (embedded use)."""
    if settings.secret_key:
        check_secret(settings.secret_key)
        return settings.secret_key
    path = settings.data_dir / SECRET_FILE
    if path.exists():
        stored = path.read_text().strip()
        # An empty or truncated file must never become a signing key anyone could recompute.
        if len(stored) < MIN_SECRET_LENGTH:
            raise ValueError(f"{path} holds no usable secret; delete it and a new one is generated")
        return stored
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    # Written to a private temporary file and renamed: a crash never leaves a partial key.
    partial = path.with_suffix(".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    return secret
