"""Smoke test of the benchmark tooling (bench/): correctness only, never timing.

Builds the Go load generator and the Go hub peer, seeds a real group, and checks that the
generator speaks GoChat's protocol against a real `gochat serve` (auth frame, message.send,
acks, "\\n"-coalesced frames) and the peers' plain protocol: every message reaches every
member, every send is acknowledged, nothing is lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import TEST_SECRET, free_port, serve_process, service_missing

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
GORILLA = Path("/usr/share/gocode/src/github.com/gorilla/websocket")

pytestmark = [pytest.mark.e2e]


@pytest.fixture(autouse=True)
def go_toolchain() -> None:
    """The generator is Go: missing tools fail in CI (GOCHAT_REQUIRE_SERVICES=1), skip elsewhere."""
    if shutil.which("go") is None or not GORILLA.exists():
        service_missing("Go toolchain", "needs golang-go and golang-github-gorilla-websocket-dev")


MEMBERS = 20
RATE = 40  # msg/s in, for one second


def build(tmp: Path) -> dict[str, Path]:
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": "/usr/share/gocode", "GOFLAGS": ""}
    out = {}
    for name, src in (("gen", "./bench/gen"), ("gohub", "./bench/peers/gohub")):
        out[name] = tmp / name
        subprocess.run(["go", "build", "-o", str(out[name]), src], cwd=ROOT, env=env, check=True, timeout=120)
    return out


def run_gen(gen: Path, spec: dict[str, Any], tmp: Path) -> dict[str, Any]:
    path = tmp / "spec.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.Popen(
        [str(gen), str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read().decode() if proc.stderr else ""
        return json.loads(line)
    finally:
        proc.communicate(timeout=20)


def spec_for(proto: str, url: str, clients: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "mode": "traffic",
        "proto": proto,
        "url": url,
        "local_ips": ["127.0.0.1"],
        "clients": clients,
        "connect_concurrency": 20,
        "settle_s": 0.3,
        "body_bytes": 100,
        "nonce": "smoke",
        "phases": [
            {
                "name": "fixed",
                "senders": [0, 1, 2, 3],
                "rate": RATE,
                "window": 0,
                "warmup_s": 0.2,
                "duration_s": 0.8,
                "drain_s": 10,
            }
        ],
    }


def assert_complete(result: dict[str, Any], *, acks: bool) -> None:
    assert result["connected"] == MEMBERS and result["connect_failed"] == 0, result.get("error_sample")
    (phase,) = result["phases"]
    assert phase["sent"] >= RATE * 0.9
    assert phase["expected"] == phase["sent"] * MEMBERS
    assert phase["delivered"] == phase["expected"], result.get("error_sample")
    assert phase["lost"] == 0
    assert phase["error_replies"] == 0, result.get("error_sample")
    if acks:
        assert phase["acks"] == phase["sent"]
    assert phase["latency"]["count"] > 0


def test_generator_against_gochat_and_go_hub(tmp_path: Path) -> None:
    binaries = build(tmp_path)
    sys.path.insert(0, str(BENCH))
    try:
        from seed import Plan, mint_tokens, seed_database
    finally:
        sys.path.remove(str(BENCH))
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'bench.db'}"
    plan = Plan(users=MEMBERS, group_a=MEMBERS, groups_b=0, directs_c=0, storm_groups=0)
    seed = asyncio.run(seed_database(db_url, plan, log=lambda _msg: None))
    tokens = mint_tokens(seed, TEST_SECRET)
    group = seed["a"]
    with serve_process(tmp_path, db_url, GOCHAT_RATE_LIMITS_ENABLED="false") as server:
        clients = [{"token": tokens[m], "room": str(group["conv"])} for m in group["members"]]
        result = run_gen(binaries["gen"], spec_for("gochat", server.ws_url, clients), tmp_path)
    assert_complete(result, acks=True)

    port = free_port()
    hub = subprocess.Popen([str(binaries["gohub"]), "-addr", f"127.0.0.1:{port}"])
    try:
        import httpx

        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        clients = [{"token": "", "room": "smoke"} for _ in range(MEMBERS)]
        result = run_gen(binaries["gen"], spec_for("plain", f"ws://127.0.0.1:{port}/ws", clients), tmp_path)
    finally:
        hub.terminate()
        hub.wait(10)
    assert_complete(result, acks=False)
