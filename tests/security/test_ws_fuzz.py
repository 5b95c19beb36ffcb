"""The WebSocket under abuse, against a real `gochat serve` (the production protocol stack),
on SQLite and MariaDB.

1. hypothesis generates frames (malformed JSON, wrong types, unknown types, huge and deeply
   nested payloads, every frame type with hostile fields) on an authenticated socket: each one
   gets exactly the reply the pure parser predicts (the right error code and echoed id, or
   one reply per request), never ``internal_error``, and the socket keeps serving.
2. a raw-socket generator breaks RFC 6455 itself: invalid UTF-8 (1007), bad opcodes, reserved
   bits, unmasked or orphan frames, fragmented or oversized control frames (1002), oversize
   messages, single or fragmented (1009); well-formed fragmented messages are reassembled.

Meanwhile another client pings every 50 ms: every ping is answered, within a generous bound
(a correctness property, not a benchmark). The server is up at the end.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import statistics
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from gochat.domain import protocol
from tests.support import ServeProcess, serve_process

API = "/api/v1"
PASSWORD = "password123"
MAX_FRAME = 65_536  # GOCHAT_WS_MAX_FRAME_BYTES default
LATENCY_BOUND_S = 1.0


@dataclass
class Fuzzed:
    server: ServeProcess
    tokens: dict[str, str]
    conv: str


@dataclass
class Watcher:
    """Another user's socket, pinging every 50 ms while the fuzzing runs."""

    ws: ClientConnection
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            started = time.perf_counter()
            try:
                self.ws.send(orjson.dumps({"type": "ping", "id": n}).decode())
                while True:
                    frame = self.ws.recv(timeout=5)
                    if any(o.get("type") == "pong" and o.get("id") == n for o in split(frame)):
                        break
            except Exception as exc:
                self.failures.append(f"ping {n}: {exc!r}")
                return
            self.latencies.append(time.perf_counter() - started)
            self.stop.wait(0.05)


def split(frame: str | bytes) -> list[dict[str, object]]:
    return [
        orjson.loads(line) for line in (frame.decode() if isinstance(frame, bytes) else frame).split("\n")
    ]


@pytest.fixture
def fuzzed(db_url: str, tmp_path: Path) -> Iterator[Fuzzed]:
    # Limits off: the frame limit (4029) is tested in test_rate_limits.py and would end the fuzzing.
    with (
        serve_process(tmp_path, db_url, GOCHAT_RATE_LIMITS_ENABLED="false") as server,
        httpx.Client(base_url=server.base_url, timeout=10) as http,
    ):
        tokens, ids = {}, {}
        for name in ("fuzzer", "watcher"):
            r = http.post(f"{API}/auth/register", json={"username": name, "password": PASSWORD})
            ids[name] = r.json()["id"]
            r = http.post(f"{API}/auth/login", json={"username": name, "password": PASSWORD})
            tokens[name] = r.json()["access_token"]
        body = {"kind": "group", "title": "fuzz", "member_ids": [ids["watcher"]]}
        headers = {"Authorization": f"Bearer {tokens['fuzzer']}"}
        r = http.post(f"{API}/conversations", json=body, headers=headers)
        yield Fuzzed(server, tokens, r.json()["id"])


@contextlib.contextmanager
def ws_session(f: Fuzzed, user: str) -> Iterator[ClientConnection]:
    with connect(f.server.ws_url, open_timeout=10, close_timeout=2, max_size=None) as ws:
        ws.send(orjson.dumps({"type": "auth", "token": f.tokens[user]}).decode())
        assert split(ws.recv(timeout=10))[0]["type"] == "ready"
        yield ws


@contextlib.contextmanager
def watching(f: Fuzzed) -> Iterator[Watcher]:
    with ws_session(f, "watcher") as ws:
        watcher = Watcher(ws)
        thread = threading.Thread(target=watcher.run, daemon=True)
        thread.start()
        try:
            yield watcher
            deadline = time.monotonic() + 5  # a few samples even when the abuse was quick
            while len(watcher.latencies) < 5 and not watcher.failures and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            watcher.stop.set()
            thread.join(10)
    assert not watcher.failures, watcher.failures
    assert len(watcher.latencies) >= 5, watcher.latencies
    worst = max(watcher.latencies)
    assert worst < LATENCY_BOUND_S, (worst, statistics.median(watcher.latencies))


# --- 1. hypothesis: frames the application layer must survive ----------------------------


def text(**kwargs: int) -> st.SearchStrategy[str]:
    """Any text a WebSocket text frame can carry (lone surrogates cannot be UTF-8)."""
    return st.text(st.characters(exclude_categories=("Cs",)), **kwargs)


def dumps(value: object) -> str:
    """JSON as a client might send it: big integers, Infinity, raw non-ASCII (orjson refuses some)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


SCALARS = (
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False) | text(max_size=40)
)  # fmt: skip
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text(max_size=8), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
IDS = st.sampled_from(["1", "0", "-1", "", "9" * 19, "9" * 40, "１２３", "1e3", " 1"])  # noqa: RUF001


def frames(conv: str) -> st.SearchStrategy[str]:
    hostile = JSON | IDS | st.just(conv) | text(min_size=4000, max_size=4100) | st.integers()
    fields = st.fixed_dictionaries(
        {"type": st.sampled_from([*protocol._PARSERS, "", "PING", "message", "auth "])},
        optional={
            "id": text(max_size=70) | st.integers(min_value=-(2**60), max_value=2**60) | JSON,
            "conversation_id": hostile, "seq": hostile, "body": hostile, "client_msg_id": hostile,
            "emoji": st.sampled_from(["👍", "", " ", "\u202e", "x" * 40]) | JSON,
            "cursors": st.dictionaries(IDS | st.just(conv), st.integers(-5, 5), max_size=4) | JSON,
            "media_ids": st.lists(IDS, max_size=12) | JSON, "reply_to_seq": hostile, "token": hostile,
        },
    )  # fmt: skip
    objects = fields.map(dumps)
    nested = st.integers(min_value=1000, max_value=3000).flatmap(
        lambda n: st.sampled_from(["[" * n + "]" * n, '{"a":' * n + "1" + "}" * n, "[" * n])
    )
    big = st.integers(min_value=10_000, max_value=MAX_FRAME - 1000).map(
        lambda n: dumps({"type": "message.send", "id": "big", "conversation_id": conv,
                         "client_msg_id": "big", "body": "x" * n})
    )  # fmt: skip
    wide = st.integers(min_value=1000, max_value=5000).map(
        lambda n: dumps({"type": "sync", "id": "wide", "cursors": {str(i + 1): 0 for i in range(n)}})
    )
    other = (
        JSON.map(dumps)
        | text(max_size=200)
        | st.sampled_from(
            ["", "null", "{", '{"type":"ping","id":1', '{"type":"ping","id":NaN}', '"\\ud800"', "\ufeff{}"]
        )
    )
    return st.one_of(objects, objects, objects, nested, big, wide, other)


def check_replies(text: str, got: list[dict[str, object]]) -> str | None:
    """What the parser predicts against what came back before the barrier's pong."""
    replies = [o for o in got if o.get("type") in ("ack", "error", "pong")]
    if any(o.get("code") == "internal_error" for o in replies):
        return f"internal_error for {text[:300]!r}: {replies}"
    expected = protocol.parse_frame(text)
    if isinstance(expected, protocol.Rejected):
        want = [("error", expected.id, expected.code)]
        have = [(o.get("type"), o.get("id"), o.get("code")) for o in replies]
        return None if have == want else f"{text[:300]!r}: expected {want}, got {have}"
    request_id = getattr(expected, "id", None)
    if request_id is None:  # typing/auth without an id: at most one reply, with a null id
        ok = len(replies) <= 1 and all(o.get("id") is None for o in replies)
    else:
        ok = len(replies) == 1 and replies[0].get("id") == request_id
    return None if ok else f"{text[:300]!r}: replies {replies}"


def test_fuzzed_frames_get_the_predicted_reply_and_the_server_keeps_serving(fuzzed: Fuzzed) -> None:
    failures: list[str] = []
    with watching(fuzzed), ws_session(fuzzed, "fuzzer") as ws:
        barrier = iter(range(10**9))

        @settings(
            max_examples=int(os.environ.get("GOCHAT_FUZZ_EXAMPLES", "400")),
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(frames(fuzzed.conv))
        def one_frame(text: str) -> None:
            ws.send(text)
            mark = f"barrier-{next(barrier)}"
            ws.send(orjson.dumps({"type": "ping", "id": mark}).decode())
            got: list[dict[str, object]] = []
            while True:
                objects = split(ws.recv(timeout=10))
                done = [o for o in objects if o.get("type") == "pong" and o.get("id") == mark]
                got.extend(o for o in objects if o not in done)
                if done:
                    break
            problem = check_replies(text, got)
            if problem:
                failures.append(problem)

        one_frame()
        assert not failures, "\n".join(failures[:20])
        ws.send('{"type":"ping","id":"end"}')
        assert any(o.get("id") == "end" for o in split(ws.recv(timeout=5)))
    assert httpx.get(f"{fuzzed.server.base_url}/healthz").status_code == 200


# --- 2. raw sockets: RFC 6455 violations ---------------------------------------------------

TEXT, BINARY, CLOSE, PING, CONT = 0x1, 0x2, 0x8, 0x9, 0x0


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, mask: bool = True,
          length: int | None = None) -> bytes:  # fmt: skip
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65_536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawSocket:
    def __init__(self, f: Fuzzed) -> None:
        self.sock = socket.create_connection(("127.0.0.1", f.server.port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{f.server.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            response += self.sock.recv(4096)
        head, self.buffer = response.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head
        self.sock.sendall(frame(TEXT, orjson.dumps({"type": "auth", "token": f.tokens["fuzzer"]})))
        assert self.next_frame()[0] == TEXT  # ready

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65_536)
            if not chunk:
                raise ConnectionError("closed without a close frame")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def next_frame(self) -> tuple[int, bytes]:
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        return b0 & 0x0F, self._read(n)

    def close_code(self) -> int:
        """Read until the server's close frame; its code."""
        while True:
            opcode, payload = self.next_frame()
            if opcode == CLOSE:
                return int(struct.unpack("!H", payload[:2])[0])

    def texts_until(self, pong_id: str) -> list[dict[str, object]]:
        got: list[dict[str, object]] = []
        while True:
            opcode, payload = self.next_frame()
            assert opcode != CLOSE, struct.unpack("!H", payload[:2])
            if opcode == TEXT:
                got.extend(split(payload))
                if any(o.get("type") == "pong" and o.get("id") == pong_id for o in got):
                    return got

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


PING_FRAME = b'{"type":"ping","id":"after"}'
VIOLATIONS: dict[str, tuple[list[bytes], int]] = {
    "invalid UTF-8 text": ([frame(TEXT, b'{"type":"ping","id":"\xff\xfe"}')], 1007),
    "invalid UTF-8 across fragments": (
        [frame(TEXT, b'{"a":"\xe2\x82', fin=False), frame(CONT, b'\x28"}')],
        1007,
    ),
    "reserved opcode 0x3": ([frame(0x3, b"x")], 1002),
    "reserved control opcode 0xB": ([frame(0xB, b"x")], 1002),
    "RSV1 without an extension": ([frame(TEXT, PING_FRAME, rsv=0b100)], 1002),
    "RSV3": ([frame(TEXT, PING_FRAME, rsv=0b001)], 1002),
    "unmasked client frame": ([frame(TEXT, PING_FRAME, mask=False)], 1002),
    "continuation without a start": ([frame(CONT, PING_FRAME)], 1002),
    "new message inside a fragmented one": ([frame(TEXT, b"[", fin=False), frame(TEXT, PING_FRAME)], 1002),
    "fragmented ping": ([frame(PING, b"x", fin=False), frame(CONT, b"y")], 1002),
    "control frame over 125 bytes": ([frame(PING, b"x" * 126)], 1002),
    "close with a forbidden code": ([frame(CLOSE, struct.pack("!H", 999))], 1002),
    "oversize frame (length only)": ([frame(TEXT, b"", length=2**40)[:10]], 1009),
    "oversize message in fragments": (
        [frame(TEXT, b"[" + b"1," * 10_000, fin=False)]
        + [frame(CONT, b"1," * 10_000, fin=False) for _ in range(3)]
        + [frame(CONT, b"1]")],
        1009,
    ),
}


def test_protocol_violations_get_the_rfc_close_codes(fuzzed: Fuzzed) -> None:
    with watching(fuzzed):
        for name, (frames_, expected) in VIOLATIONS.items():
            raw = RawSocket(fuzzed)
            try:
                for data in frames_:
                    with contextlib.suppress(OSError):  # the server may close before we finish
                        raw.sock.sendall(data)
                assert raw.close_code() == expected, name
            finally:
                raw.close()

        # Well-formed fragmentation is reassembled, with a control frame in the middle too; a
        # binary frame is refused with an error frame and the socket keeps serving.
        raw = RawSocket(fuzzed)
        try:
            raw.sock.sendall(frame(TEXT, b'{"type":"ping",', fin=False) + frame(CONT, b'"id":"frag"}'))
            assert {"type": "pong", "id": "frag"} in raw.texts_until("frag")
            raw.sock.sendall(
                frame(TEXT, b'{"type":', fin=False) + frame(PING, b"hb") + frame(CONT, b'"ping",', fin=False)
                + frame(CONT, b'"id":"frag2"}')
            )  # fmt: skip
            assert {"type": "pong", "id": "frag2"} in raw.texts_until("frag2")
            raw.sock.sendall(frame(BINARY, PING_FRAME) + frame(TEXT, PING_FRAME))
            got = raw.texts_until("after")
            assert [(o["type"], o.get("code")) for o in got if o["type"] == "error"] == [
                ("error", "invalid_json")
            ]
            raw.sock.sendall(frame(CLOSE, struct.pack("!H", 1000)))
            assert raw.close_code() == 1000
        finally:
            raw.close()
    assert httpx.get(f"{fuzzed.server.base_url}/healthz").status_code == 200
