"""Access JWTs and refresh tokens (gochat.security.tokens): pinned algorithm, every claim required."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from gochat.errors import InvalidToken
from gochat.security.tokens import (
    REQUIRED_CLAIMS,
    TokenCodec,
    hash_refresh_token,
    new_refresh_token,
    refresh_expiry,
    signing_key,
)

SECRET = "unit-test-secret-" + "k3Jd8sLq" * 4
OLD_SECRET = "unit-test-old-secret-" + "Zt6wPq1m" * 4
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TTL = 900
KID, KEY = signing_key(SECRET)


def codec(
    secret: str = SECRET, issuer: str = "gochat", audience: str = "gochat", previous: tuple[str, ...] = ()
) -> TokenCodec:
    return TokenCodec(secret, issuer, audience, TTL, previous=previous)


def claims(**changes: Any) -> dict[str, Any]:
    iat = int(NOW.timestamp())
    base: dict[str, Any] = {
        "iss": "gochat",
        "aud": "gochat",
        "sub": "1001",
        "sid": "2002",
        "typ": "access",
        "iat": iat,
        "exp": iat + TTL,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def forge(alg: str = "HS256", key: bytes = KEY, kid: str | None = KID, **changes: Any) -> str:
    """A token made outside the codec, with the server's key and kid unless told otherwise.

    `test_forged_claims_are_accepted_when_valid` proves the forgery faithful, so every
    refusal below is about the one thing its case changes, not about the key.
    """
    headers = {} if kid is None else {"kid": kid}
    return jwt.encode(claims(**changes), key, algorithm=alg, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_issue_then_verify_round_trips_the_identity() -> None:
    token = codec().issue(1001, 2002, NOW)
    found = codec().verify(token, NOW)
    assert (found.user_id, found.session_id) == (1001, 2002)
    assert found.expires_at == int(NOW.timestamp()) + TTL


def test_the_issued_token_carries_every_required_claim_and_the_pinned_alg() -> None:
    token = codec().issue(1001, 2002, NOW)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    body = jwt.decode(token, options={"verify_signature": False})
    assert set(REQUIRED_CLAIMS) <= set(body)
    assert body["typ"] == "access" and body["sub"] == "1001" and body["sid"] == "2002"
    assert jwt.get_unverified_header(token)["kid"] == KID
    # the raw secret never signs anything: it is only the input of a derived key
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, SECRET, algorithms=["HS256"], audience="gochat")
    verified = jwt.decode(token, KEY, algorithms=["HS256"], audience="gochat", options={"verify_exp": False})
    assert verified["sub"] == "1001"


def test_forged_claims_are_accepted_when_valid() -> None:
    assert codec().verify(forge(), NOW).user_id == 1001


@pytest.mark.parametrize("missing", REQUIRED_CLAIMS)
def test_every_required_claim_must_be_present(missing: str) -> None:
    with pytest.raises(InvalidToken):
        codec().verify(forge(**{missing: None}), NOW)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the forger's problem
@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_the_algorithm_is_pinned(alg: str) -> None:
    with pytest.raises(InvalidToken):
        codec().verify(forge(alg=alg), NOW)


def test_alg_none_is_refused() -> None:
    unsigned = jwt.encode(claims(), None, algorithm="none", headers={"kid": KID})
    with pytest.raises(InvalidToken):
        codec().verify(unsigned, NOW)
    # hand-made as well, with an empty signature after the last dot
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": KID}).encode())
    with pytest.raises(InvalidToken):
        codec().verify(f"{header}.{b64(json.dumps(claims()).encode())}.", NOW)


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": "someone-else"},
        {"aud": "another-service"},
        {"typ": "refresh"},
        {"typ": "Access"},
        {"sub": "not-a-number"},
        {"sid": "1.5"},
        {"sub": 1001},  # a subject must be a string
        {"exp": float(int(NOW.timestamp()) + TTL)},
    ],
    ids=["iss", "aud", "typ-refresh", "typ-case", "sub", "sid", "sub-int", "exp-float"],
)
def test_wrong_claims_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidToken):
        codec().verify(forge(**changes), NOW)


@pytest.mark.parametrize(
    ("kid", "key"),
    [
        (None, KEY),  # no kid at all
        ("0" * 16, KEY),  # an unknown kid, right key
        (KID, signing_key(OLD_SECRET)[1]),  # the current kid on a token signed with another key
        (KID, hashlib.sha256(SECRET.encode()).digest()),
        (KID, SECRET.encode()),  # the raw secret as key
    ],
    ids=["no-kid", "unknown-kid", "kid-of-other-key", "other-derivation", "raw-secret"],
)
def test_the_kid_must_name_the_key_that_signed(kid: str | None, key: bytes) -> None:
    with pytest.raises(InvalidToken):
        codec().verify(forge(kid=kid, key=key), NOW)


def test_after_rotation_old_tokens_verify_until_they_expire_and_new_ones_use_the_new_key() -> None:
    before = codec(OLD_SECRET).issue(1, 2, NOW)
    rotated = codec(SECRET, previous=(OLD_SECRET,))
    assert rotated.verify(before, NOW).user_id == 1
    with pytest.raises(InvalidToken):
        rotated.verify(before, NOW + timedelta(seconds=TTL))
    after = rotated.issue(3, 4, NOW)
    assert jwt.get_unverified_header(after)["kid"] == KID
    assert codec(SECRET).verify(after, NOW).user_id == 3
    with pytest.raises(InvalidToken):  # once the old secret is dropped, its tokens are dead
        codec(SECRET).verify(before, NOW)
    with pytest.raises(InvalidToken):  # and the old codec never learns the new key
        codec(OLD_SECRET).verify(after, NOW)


def test_a_different_secret_or_issuer_setting_refuses_the_token() -> None:
    token = codec().issue(1, 2, NOW)
    with pytest.raises(InvalidToken):
        codec(secret=SECRET + "-rotated").verify(token, NOW)
    with pytest.raises(InvalidToken):
        codec(issuer="other").verify(token, NOW)
    with pytest.raises(InvalidToken):
        codec(audience="other").verify(token, NOW)


def test_expiry_follows_the_given_clock() -> None:
    token = codec().issue(1, 2, NOW)
    codec().verify(token, NOW + timedelta(seconds=TTL - 1))
    with pytest.raises(InvalidToken):
        codec().verify(token, NOW + timedelta(seconds=TTL))  # exp is exclusive
    with pytest.raises(InvalidToken):
        codec().verify(token, NOW + timedelta(days=365))


def test_tokens_from_the_future_are_refused_beyond_a_small_skew() -> None:
    codec().verify(codec().issue(1, 2, NOW + timedelta(seconds=60)), NOW)
    with pytest.raises(InvalidToken):
        codec().verify(codec().issue(1, 2, NOW + timedelta(seconds=61)), NOW)


def test_a_tampered_payload_breaks_the_signature() -> None:
    header, _, signature = codec().issue(1001, 2002, NOW).split(".")
    evil = b64(json.dumps(claims(sub="1")).encode())
    with pytest.raises(InvalidToken):
        codec().verify(f"{header}.{evil}.{signature}", NOW)


@pytest.mark.parametrize("garbage", ["", "x", "a.b.c", "Bearer abc", "🔑" * 10, "." * 3])
def test_garbage_is_an_invalid_token(garbage: str) -> None:
    with pytest.raises(InvalidToken):
        codec().verify(garbage, NOW)


def test_refresh_tokens_are_random_and_stored_only_as_a_hash() -> None:
    tokens = [new_refresh_token() for _ in range(50)]
    assert len({t for t, _ in tokens}) == 50
    for token, stored in tokens:
        assert stored == hash_refresh_token(token)
        assert len(stored) == 64 and int(stored, 16) >= 0
        assert token not in stored
        assert len(token) >= 40  # 32 random bytes, url-safe


def test_refresh_hash_survives_lone_surrogates() -> None:
    # A JSON body may carry "\ud800"; hashing it must not crash the request.
    assert len(hash_refresh_token("\ud800abc")) == 64


def test_refresh_expiry() -> None:
    assert refresh_expiry(NOW, 60) == NOW + timedelta(seconds=60)
