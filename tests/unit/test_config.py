"""Settings (gochat.config): the production secret rules and the embedded secret file."""

from __future__ import annotations

import secrets
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from gochat.config import MIN_SECRET_LENGTH, SECRET_FILE, Settings, check_secret, resolve_secret

GOOD_SECRET = secrets.token_urlsafe(48)


@pytest.fixture(autouse=True)
def _no_gochat_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read GOCHAT_* variables: a developer's shell must not leak into these tests."""
    import os

    for name in list(os.environ):
        if name.startswith("GOCHAT_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("secret", "complaint"),
    [
        (None, "required"),
        ("", "required"),
        ("changeme", "placeholder"),
        ("  CHANGE-ME  ", "placeholder"),
        ("secret", "placeholder"),
        ("development", "placeholder"),
        ("a" * 64, "placeholder"),  # long but with almost no entropy
        ("abababababababababababababababab" * 2, "placeholder"),
        ("abcdefg" * 10, "placeholder"),  # 7 distinct characters
        (GOOD_SECRET[: MIN_SECRET_LENGTH - 1], "at least"),
    ],
    ids=[
        "none",
        "empty",
        "changeme",
        "padded-upper",
        "secret",
        "dev",
        "one-char",
        "two-chars",
        "7-chars",
        "short",
    ],
)
def test_check_secret_refuses(secret: str | None, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint) as info:
        check_secret(secret)
    assert "GOCHAT_SECRET_KEY" in str(info.value)


def test_check_secret_accepts_a_random_secret_of_the_minimum_length() -> None:
    check_secret(GOOD_SECRET[:MIN_SECRET_LENGTH])
    check_secret(GOOD_SECRET)


def test_production_settings_refuse_a_bad_secret() -> None:
    for bad in (None, "changeme", "short-but-random-9xQ"):
        with pytest.raises(ValidationError, match="GOCHAT_SECRET_KEY"):
            Settings(environment="production", secret_key=bad)
    assert Settings(environment="production", secret_key=GOOD_SECRET).secret_key == GOOD_SECRET


def test_production_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOCHAT_ENVIRONMENT", "production")
    monkeypatch.setenv("GOCHAT_SECRET_KEY", "changeme")
    with pytest.raises(ValidationError, match="placeholder"):
        Settings()
    monkeypatch.setenv("GOCHAT_SECRET_KEY", GOOD_SECRET)
    assert Settings().environment == "production"


def test_development_needs_no_secret() -> None:
    settings = Settings()
    assert settings.environment == "development" and settings.secret_key is None


def test_environment_twins_and_list_parsing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GOCHAT_ALLOWED_ORIGINS", "https://a.example, https://b.example,,")
    monkeypatch.setenv("GOCHAT_RATE_LIMITS_ENABLED", "false")
    monkeypatch.setenv("GOCHAT_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.allowed_origins == ["https://a.example", "https://b.example"]
    assert settings.rate_limits_enabled is False
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{(tmp_path / 'gochat.db').resolve()}"
    assert settings.is_embedded
    assert Settings(database_url="mysql+asyncmy://u@h/db").is_embedded is False


def test_a_configured_secret_is_used_and_checked_even_in_development(tmp_path: Path) -> None:
    assert resolve_secret(Settings(data_dir=tmp_path, secret_key=GOOD_SECRET)) == GOOD_SECRET
    with pytest.raises(ValueError, match="placeholder"):
        resolve_secret(Settings(data_dir=tmp_path, secret_key="changeme"))
    assert not (tmp_path / SECRET_FILE).exists()


def test_embedded_secret_is_generated_private_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "not" / "yet" / "there"
    first = resolve_secret(Settings(data_dir=data_dir))
    path = data_dir / SECRET_FILE
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    check_secret(first)  # the generated secret would pass the production rules
    assert path.read_text().strip() == first
    # a new process (new Settings) over the same data dir gets the same secret back
    assert resolve_secret(Settings(data_dir=data_dir)) == first
    assert resolve_secret(Settings(data_dir=tmp_path / "elsewhere")) != first


@pytest.mark.parametrize("content", ["", "\n", "changeme\n", "tooshort"])
def test_an_unusable_secret_file_is_refused_not_used(tmp_path: Path, content: str) -> None:
    # An empty file (a crash between create and write, a truncated copy) must never turn into a
    # signing key that anyone who reads the source could recompute.
    (tmp_path / SECRET_FILE).write_text(content)
    with pytest.raises(ValueError, match=SECRET_FILE):
        resolve_secret(Settings(data_dir=tmp_path))


def test_comma_separated_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    old = [secrets.token_urlsafe(40), secrets.token_urlsafe(40)]
    monkeypatch.setenv("GOCHAT_CORS_ORIGINS", "https://app.example, https://admin.example")
    monkeypatch.setenv("GOCHAT_PREVIOUS_SECRET_KEYS", f" {old[0]} ,{old[1]},")
    settings = Settings()
    assert settings.cors_origins == ["https://app.example", "https://admin.example"]
    assert settings.previous_secret_keys == old


@pytest.mark.parametrize("weak", ["changeme", "", "short-but-random-9xQ", "a" * 40])
def test_weak_previous_secrets_are_refused(monkeypatch: pytest.MonkeyPatch, weak: str) -> None:
    """A previous secret still verifies access tokens: a guessable one would let anyone forge them."""
    monkeypatch.setenv("GOCHAT_PREVIOUS_SECRET_KEYS", f"{secrets.token_urlsafe(40)},{weak}")
    if not weak:
        assert len(Settings().previous_secret_keys) == 1  # an empty item is just a trailing comma
        return
    with pytest.raises(ValidationError, match="GOCHAT_SECRET_KEY"):
        Settings()
    with pytest.raises(ValidationError):
        Settings(previous_secret_keys=[weak])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GOCHAT_WS_FLUSH_PACING", "-1"),
        ("GOCHAT_WS_FLUSH_PACING", "11"),
        ("GOCHAT_WS_FLUSH_MAX_DELAY_MS", "-5"),
        ("GOCHAT_COMMIT_WORKERS", "0"),
        ("GOCHAT_COMMIT_WORKERS", "many"),
    ],
)
def test_performance_knobs_out_of_range_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.removeprefix("GOCHAT_").lower()):
        Settings()


def test_performance_knobs_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOCHAT_WS_FLUSH_PACING", "0")
    monkeypatch.setenv("GOCHAT_WS_FLUSH_MAX_DELAY_MS", "10")
    monkeypatch.setenv("GOCHAT_COMMIT_WORKERS", "3")
    settings = Settings()
    assert (settings.ws_flush_pacing, settings.ws_flush_max_delay_ms) == (0, 10)
    assert settings.effective_commit_workers == 3
