"""Where does GoChat's memory per idle authenticated WebSocket go? (tracemalloc, scenario d)

    .venv/bin/python bench/memory_probe.py [--sockets 2000] [--top 25]

Runs GoChat in this process (uvicorn + GochatWebSocketProtocol, as `gochat serve` does) on
CPU 0 with tracemalloc on, connects ``--sockets`` authenticated clients with the Go generator
(bench/gen, CPU 1), and prints the Python allocations per socket grouped by source line,
next to the RSS growth per socket. Needs the seeded SQLite database of bench/run.py (run it
once, or `bench/run.py --only d`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

import run  # noqa: E402
from seed import Plan, mint_tokens, seed_sqlite_cached  # noqa: E402


async def probe(db: Path, seed: dict[str, Any], sockets: int, top: int) -> None:
    import uvicorn

    from gochat.app import create_app
    from gochat.config import Settings
    from gochat.realtime.wsproto import GochatWebSocketProtocol

    data = run.BUILD / "run" / "memprobe"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    shutil.copy(db, data / "gochat.db")
    settings = Settings(
        data_dir=data,
        database_url=f"sqlite+aiosqlite:///{data / 'gochat.db'}",
        secret_key=run.SECRET,
        rate_limits_enabled=False,
        access_token_ttl_s=86_400,
        log_level="warning",
    )
    port = run.free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        loop="none",
        ws=GochatWebSocketProtocol,
        ws_per_message_deflate=False,
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    tokens = mint_tokens(seed, run.SECRET)
    users = [m for g in seed["rest"] for m in g["members"]][:sockets]  # small groups, like most users
    gc.collect()
    rss0 = run.proc_rss_kib(os.getpid())
    before = tracemalloc.take_snapshot()
    spec = {
        "mode": "idle",
        "proto": "gochat",
        "url": f"ws://127.0.0.1:{port}/ws",
        "local_ips": run.local_ips(1, 4),
        "clients": [{"token": tokens[u], "room": ""} for u in users],
        "connect_concurrency": 64,
    }
    spec_path = run.BUILD / "specs" / "memprobe.json"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(json.dumps(spec))
    gen = subprocess.Popen(
        ["taskset", "-c", run.GEN_CPU, str(run.BUILD / "gen"), str(spec_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert gen.stdout is not None
    line = await asyncio.get_running_loop().run_in_executor(None, gen.stdout.readline)
    await asyncio.sleep(3)
    gc.collect()
    held = run.socket_count(os.getpid())
    after = tracemalloc.take_snapshot()
    rss1 = run.proc_rss_kib(os.getpid())
    print(f"generator: {line.decode().strip()}; sockets held: {held}")
    print(
        f"RSS growth: {(rss1 - rss0) / max(1, sockets):.1f} KiB per socket (tracemalloc itself inflates RSS)"
    )
    by_file = after.compare_to(before, "filename")
    traced = sum(s.size_diff for s in by_file)
    print(
        f"Python allocations traced: {traced / 1024 / sockets:.2f} KiB per socket; "
        "by file (bytes per socket):"
    )
    for s in by_file[:15]:
        where = s.traceback[0].filename.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
        print(f"{s.size_diff / sockets:9.0f} B  {where}")
    stats = after.compare_to(before, "lineno")
    print("top lines (bytes per socket):")
    for s in stats[:top]:
        frame = s.traceback[0]
        where = frame.filename.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
        print(f"{s.size_diff / sockets:9.0f} B  {s.count_diff / sockets:6.2f} objs  {where}:{frame.lineno}")
    gen.stdin.close()  # type: ignore[union-attr]
    gen.wait(30)
    server.should_exit = True
    await asyncio.wait_for(task, 30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(run.SERVER_CPU)})
    run.build({})
    # The full run's seed (bench/run.py): its "rest" users sit in groups of 50.
    db, seed = seed_sqlite_cached(
        run.CACHE, Plan(users=20_000 - run.FD_HEADROOM), run.schema_fingerprint(), print
    )
    tracemalloc.start(1)
    import uvloop

    started = time.monotonic()
    uvloop.run(probe(db, seed, args.sockets, args.top))
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
