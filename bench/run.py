"""GoChat benchmark suite: GoChat and peer servers side by side, one command.

    .venv/bin/python bench/run.py            # full run (~10 min): bench/results/<date>.{json,md}, docs
    .venv/bin/python bench/run.py --quick    # smoke run (< 2 min once seeded): bench/.build/quick/
    .venv/bin/python bench/run.py --only a,d --peers gohub   # some scenarios (p = the py-spy passes)
    .venv/bin/python bench/run.py --render bench/results/<date>.json   # re-render a report

Scenarios (see docs/benchmarks.md): a) one group of 1,000 at 100 and 200 msg/s in and at
maximum; b) 100 groups x 10 at maximum, persisted (SQLite, MySQL) and peers; c) 1,000 direct
conversations, request->ack latency at a fixed rate; d) idle sockets, memory per connection;
e) reconnect storm; f) history and sync with 1,000,000 messages in MySQL; p) py-spy profiles.

Servers, generator and this process get their own scheduling group with autogroup nice -10
(--nice): the host is shared with other sessions, and CFS splits CPUs between sessions first.

Placement: every server under test runs on CPU 0 (taskset), the load generator (bench/gen, Go,
gorilla/websocket) on CPU 1; MariaDB is a system service and is not pinned. The peers are the
gorilla-style Go hub (bench/peers/gohub), Node.js ws (bench/peers/nodews) and Python
websockets (bench/peers/pyws), driven by the same generator with the same message sizes.
Needs: go (golang-go) + golang-github-gorilla-websocket-dev, node + npm, MariaDB on
127.0.0.1:3306 (root, no password; GOCHAT_BENCH_MYSQL_URL overrides), py-spy in the venv.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
BUILD = BENCH / ".build"
CACHE = BENCH / ".cache"
RESULTS = BENCH / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
PY = sys.executable
sys.path.insert(0, str(BENCH))

from seed import Plan, mint_tokens, seed_database, seed_sqlite_cached  # noqa: E402

MYSQL_URL = os.environ.get("GOCHAT_BENCH_MYSQL_URL", "mysql+asyncmy://root@127.0.0.1:3306")
SERVER_CPU, GEN_CPU = "0", "1"
PEERS = ("gohub", "nodews", "pyws")
HZ = os.sysconf("SC_CLK_TCK")
SECRET = "bench-" + secrets.token_urlsafe(40)
FD_HEADROOM = 50  # the server needs a few descriptors besides its sockets


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------ config


@dataclass
class Config:
    quick: bool
    plan: Plan
    peers: tuple[str, ...]
    a_members: int
    a_rates: tuple[int, ...]
    a_max_repeats: int
    a_window: int
    rate_phase_s: float
    max_phase_s: float
    b_window: int
    b_phase_s: float
    c_rate: int
    c_phase_s: float
    d_sizes: tuple[int, ...]
    e_timeout_s: float
    f_messages: int
    f_conversations: int
    f_samples: int
    profile_s: float
    nice: int
    d_connect_deadline_s: float = 180
    skip_gochat: bool = False
    body_bytes: int = 100
    out_dir: Path = RESULTS
    only: set[str] = field(default_factory=set)


def make_config(args: argparse.Namespace) -> Config:
    nofile = __import__("resource").getrlimit(__import__("resource").RLIMIT_NOFILE)[1]
    top = min(20_000, nofile - FD_HEADROOM)
    if args.quick:
        plan = Plan(users=3000, group_a=200, groups_b=20, directs_c=100, storm_groups=25)
        cfg = Config(
            quick=True,
            plan=plan,
            peers=("gohub",),
            a_members=200,
            a_rates=(100,),
            a_max_repeats=1,
            a_window=8,
            rate_phase_s=2,
            max_phase_s=2,
            b_window=4,
            b_phase_s=2,
            c_rate=100,
            c_phase_s=2,
            d_sizes=(1000, 2000),
            e_timeout_s=30,
            f_messages=20_000,
            f_conversations=10,
            f_samples=20,
            profile_s=3,
            nice=args.nice,
            out_dir=BUILD / "quick",
        )
    else:
        plan = Plan(users=top)
        cfg = Config(
            quick=False,
            plan=plan,
            peers=PEERS,
            a_members=1000,
            a_rates=(100, 200),
            a_max_repeats=3,
            a_window=8,
            rate_phase_s=8,
            max_phase_s=5,
            b_window=4,
            b_phase_s=8,
            c_rate=200,
            c_phase_s=8,
            d_sizes=(10_000, top),
            e_timeout_s=120,
            f_messages=1_000_000,
            f_conversations=100,
            f_samples=200,
            profile_s=10,
            nice=args.nice,
        )
    # The quick smoke run skips the profiles unless asked for (--only ...,p).
    cfg.only = set(args.only.split(",")) if args.only else set("abcdef" if args.quick else "abcdefp")
    if args.peers:
        cfg.peers = tuple(p for p in args.peers.split(",") if p in PEERS)
    cfg.skip_gochat = args.skip_gochat
    return cfg


# ------------------------------------------------------------------------------ processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cpu: str, nice: int, cmd: list[str]) -> list[str]:
    """``cmd`` on one CPU (``nice`` is applied by :func:`own_session`, per scheduling group)."""
    del nice
    return ["taskset", "-c", cpu, *cmd]


def own_session(nice: int) -> Any:
    """preexec_fn: a new session, hence a new autogroup, with the given autogroup nice.

    With sched_autogroup_enabled=1, CFS shares a CPU between sessions first, so a process's
    own nice value only matters inside its session; --nice sets the whole group's weight.
    """

    def setup() -> None:
        os.setsid()
        if nice:
            with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as f:
                f.write(str(nice))

    return setup


def proc_cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime of every thread
    except (OSError, IndexError):
        return 0


def proc_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    total = sum(parts[:8])
    return total - idle, total


def socket_count(pid: int) -> int:
    """Sockets the process holds (each accepted connection is one)."""
    n = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            n += os.readlink(fd).startswith("socket:")
    return n


def mariadb_pid() -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() in ("mariadbd", "mysqld"):
                    return int(entry.name)
    return None


class Server:
    """A server under test, pinned to SERVER_CPU."""

    def __init__(
        self,
        name: str,
        cmd: list[str],
        port: int,
        health: str,
        env: dict[str, str] | None = None,
        nice: int = 0,
        log_path: Path | None = None,
    ) -> None:
        self.name, self.port, self.health = name, port, health
        self.log_path = log_path or BUILD / "logs" / f"{name}-{port}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                pinned(SERVER_CPU, nice, cmd),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                preexec_fn=own_session(nice),
            )
        self._wait_ready()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_ready(self, timeout: float = 60) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text(errors='replace')[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}{self.health}", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready in {timeout}s")

    def rss_kib(self) -> int:
        return proc_rss_kib(self.pid)

    def stop(self) -> None:
        """SIGKILL: a bench server's data is disposable, and a graceful close of thousands of
        sockets (presence updates) would overlap the next measurement on the same CPU."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def gochat_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOCHAT_")}
    env.update(
        GOCHAT_SECRET_KEY=SECRET,
        GOCHAT_DATABASE_URL=database_url,
        GOCHAT_RATE_LIMITS_ENABLED="false",
        GOCHAT_ACCESS_TOKEN_TTL_S="86400",
        GOCHAT_LOG_LEVEL="warning",
        GOCHAT_WS_AUTH_TIMEOUT_S="30",
    )
    # A/B runs: BENCH_GOCHAT_X=v starts the servers with GOCHAT_X=v (e.g. BENCH_GOCHAT_WS_FLUSH_PACING=0).
    env.update({k[len("BENCH_") :]: v for k, v in os.environ.items() if k.startswith("BENCH_GOCHAT_")})
    return env


def start_gochat(
    cfg: Config, tag: str, database_url: str | None = None, seed_db: Path | None = None
) -> Server:
    port = free_port()
    data = BUILD / "run" / f"{tag}-{port}"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    if database_url is None:
        assert seed_db is not None
        shutil.copy(seed_db, data / "gochat.db")
        database_url = f"sqlite+aiosqlite:///{data / 'gochat.db'}"
    cmd = [PY, "-m", "gochat", "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data)]
    server = Server(f"gochat-{tag}", cmd, port, "/readyz", gochat_env(database_url), cfg.nice)
    server.database_url = database_url  # type: ignore[attr-defined]
    return server


def start_peer(cfg: Config, name: str) -> Server:
    port = free_port()
    cmd = {
        "gohub": [str(BUILD / "gohub"), "-addr", f"127.0.0.1:{port}"],
        "nodews": ["node", str(BENCH / "peers" / "nodews" / "server.js"), "--port", str(port)],
        "pyws": [PY, str(BENCH / "peers" / "pyws" / "server.py"), "--port", str(port)],
    }[name]
    return Server(name, cmd, port, "/healthz", None, cfg.nice)


def ws_url(server: Server) -> str:
    return f"ws://127.0.0.1:{server.port}/ws"


class Gen:
    """One load-generator process on GEN_CPU; CPU usage sampled at its MEASURE markers."""

    def __init__(
        self,
        cfg: Config,
        spec: dict[str, Any],
        name: str,
        watch: dict[str, int],
        hooks: list[Any] | None = None,
    ) -> None:
        BUILD.joinpath("specs").mkdir(parents=True, exist_ok=True)
        path = BUILD / "specs" / f"{name}.json"
        path.write_text(json.dumps(spec))
        self.watch = watch  # label -> pid, CPU sampled at MEASURE markers
        self.samples: dict[str, dict[str, Any]] = {}
        self.on_measure: list[Any] = list(hooks or [])  # called as hook(edge, phase) per marker
        self.proc = subprocess.Popen(
            pinned(GEN_CPU, cfg.nice, [str(BUILD / "gen"), str(path)]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            preexec_fn=own_session(cfg.nice),
        )
        self.watch = {"gen": self.proc.pid, **watch}
        self.log_lines: list[str] = []
        self._stderr = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr.start()

    def _snapshot(self) -> dict[str, Any]:
        busy, total = machine_busy_ticks()
        return {
            "t": time.monotonic(),
            "busy": busy,
            "total": total,
            **{k: proc_cpu_ticks(pid) for k, pid in self.watch.items()},
        }

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line.startswith("MEASURE "):
                _, edge, phase = line.split(" ", 2)
                self.samples.setdefault(phase, {})[edge] = self._snapshot()
                for hook in self.on_measure:
                    hook(edge, phase)
            else:
                self.log_lines.append(line)

    def cpu(self, phase: str) -> dict[str, float]:
        """Cores used per watched process during a phase's measured window, and by others."""
        s = self.samples.get(phase, {})
        if "start" not in s or "end" not in s:
            return {}
        a, b = s["start"], s["end"]
        secs = b["t"] - a["t"]
        out = {k: (b[k] - a[k]) / HZ / secs for k in self.watch}
        ncpu = os.cpu_count() or 1
        machine = (b["busy"] - a["busy"]) / max(1, b["total"] - a["total"]) * ncpu
        out["machine"] = machine
        out["foreign"] = max(0.0, machine - sum(out[k] for k in self.watch))
        return {k: round(v, 3) for k, v in out.items()}

    def readline(self, timeout: float = 900) -> str:
        assert self.proc.stdout is not None
        result: list[bytes] = []
        reader = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        if not result or not result[0]:
            raise RuntimeError("generator produced no output: " + "\n".join(self.log_lines[-20:]))
        return result[0].decode()

    def result(self, timeout: float = 900) -> dict[str, Any]:
        return json.loads(self.readline(timeout))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def local_ips(first: int, count: int) -> list[str]:
    return [f"127.0.0.{i}" for i in range(first, first + count)]


# ------------------------------------------------------------------------------ build


def build(log_env: dict[str, Any]) -> None:
    BUILD.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": "/usr/share/gocode", "GOFLAGS": ""}
    for target, src in (("gen", "./bench/gen"), ("gohub", "./bench/peers/gohub")):
        subprocess.run(["go", "build", "-o", str(BUILD / target), src], cwd=ROOT, env=env, check=True)
    node_dir = BENCH / "peers" / "nodews"
    if not (node_dir / "node_modules" / "ws").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=node_dir, check=True, capture_output=True
        )
    versions = {
        "go": subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip(),
        "gorilla_websocket": _dpkg_version("golang-github-gorilla-websocket-dev"),
        "node": subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip(),
        "ws": json.loads((node_dir / "node_modules" / "ws" / "package.json").read_text())["version"],
    }
    import uvicorn
    import websockets

    versions.update(
        python=platform.python_version(), uvicorn=uvicorn.__version__, websockets=websockets.__version__
    )
    log_env["versions"] = versions


def _dpkg_version(package: str) -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    return out.stdout.strip()


def schema_fingerprint() -> str:
    digest = hashlib.sha256()
    # The schema (migrations) and the seeding code decide what a seeded database holds.
    for path in [
        *sorted((ROOT / "src" / "gochat" / "storage" / "migrations").rglob("*.py")),
        BENCH / "seed.py",
    ]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


# ------------------------------------------------------------------------------ mysql


def mysql_exec(sql: str, database: str | None = None) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(MYSQL_URL)
    cmd = [
        "mysql",
        "-h",
        url.host or "127.0.0.1",
        "-P",
        str(url.port or 3306),
        "-u",
        url.username or "root",
        "-N",
        "-B",
    ]
    if url.password:
        cmd.append(f"-p{url.password}")
    if database:
        cmd.append(database)
    out = subprocess.run(cmd, input=sql, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"mysql failed: {out.stderr.strip()}\n{sql[:500]}")
    return out.stdout


def mysql_db_url(name: str) -> str:
    return f"{MYSQL_URL.rstrip('/')}/{name}"


def cached_mysql_db(name: str, fingerprint: str) -> tuple[str, dict[str, Any] | None]:
    """(url, layout) of a bench database whose bench_meta matches ``fingerprint``, else (url, None)."""
    layout_path = CACHE / f"{name}.json"
    with contextlib.suppress(Exception):
        if (
            mysql_exec("SELECT fingerprint FROM bench_meta;", name).strip() == fingerprint
            and layout_path.exists()
        ):
            log(f"mysql: reusing {name}")
            return mysql_db_url(name), json.loads(layout_path.read_text())
    return mysql_db_url(name), None


def remember_mysql_db(name: str, fingerprint: str, layout: dict[str, Any]) -> None:
    mysql_exec(
        "CREATE TABLE bench_meta (fingerprint VARCHAR(64)); "
        f"INSERT INTO bench_meta VALUES ('{fingerprint}');",
        name,
    )
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / f"{name}.json").write_text(json.dumps(layout))


def prepare_mysql_bc(cfg: Config) -> tuple[str, dict[str, Any]]:
    """Scenario b and c users and conversations on MariaDB (seeded once, reused across runs)."""
    plan = Plan(
        users=cfg.plan.groups_b * cfg.plan.group_b_size + 2 * cfg.plan.directs_c,
        group_a=0,
        groups_b=cfg.plan.groups_b,
        group_b_size=cfg.plan.group_b_size,
        directs_c=cfg.plan.directs_c,
        storm_groups=0,
    )
    name = "gochat_bench_bc_quick" if cfg.quick else "gochat_bench_bc"
    fingerprint = hashlib.sha256((schema_fingerprint() + plan.key()).encode()).hexdigest()[:16]
    url, layout = cached_mysql_db(name, fingerprint)
    if layout is None:
        log(f"mysql: seeding {name}")
        url = fresh_mysql_db(name)
        layout = asyncio.run(seed_database(url, plan, log))
        remember_mysql_db(name, fingerprint, layout)
    return url, layout


def fresh_mysql_db(name: str) -> str:
    mysql_exec(
        f"DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;"
    )
    return mysql_db_url(name)


# ------------------------------------------------------------------------------ specs


def gochat_clients(tokens: list[str], groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"token": tokens[m], "room": str(g["conv"])} for g in groups for m in g["members"]]


def plain_clients(groups: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [{"token": "", "room": f"{prefix}{i}"} for i, g in enumerate(groups) for _ in g["members"]]


def traffic_spec(
    proto: str,
    url: str,
    clients: list[dict[str, Any]],
    phases: list[dict[str, Any]],
    cfg: Config,
    ips: int = 4,
) -> dict[str, Any]:
    return {
        "mode": "traffic",
        "proto": proto,
        "url": url,
        "local_ips": local_ips(1, ips),
        "clients": clients,
        "connect_concurrency": 200,
        "connect_deadline_s": 180,
        "settle_s": 2.0 if proto == "gochat" else 0.5,
        "body_bytes": cfg.body_bytes,
        "nonce": secrets.token_hex(4),
        "phases": phases,
    }


def phase(
    name: str, senders: list[int], rate: float, window: int, warmup: float, duration: float, drain: float = 10
) -> dict[str, Any]:
    return {
        "name": name,
        "senders": senders,
        "rate": rate,
        "window": window,
        "warmup_s": warmup,
        "duration_s": duration,
        "drain_s": drain,
    }


def run_traffic(
    cfg: Config,
    server: Server,
    spec: dict[str, Any],
    name: str,
    extra_watch: dict[str, int] | None = None,
    hooks: list[Any] | None = None,
) -> dict[str, Any]:
    watch = {"server": server.pid, **(extra_watch or {})}
    gen = Gen(cfg, spec, name, watch, hooks)
    try:
        result = gen.result()
    finally:
        server.stop()
        gen.close()
    for p in result.get("phases", []):
        p["cpu_cores"] = gen.cpu(p["name"])
    result["server_log_tail"] = server.log_path.read_text(errors="replace")[-1500:]
    return result


def summarize_phase(p: dict[str, Any]) -> dict[str, Any]:
    lat, ack = p.get("latency", {}), p.get("ack_latency", {})
    server_cores = p.get("cpu_cores", {}).get("server")
    return {
        "deliveries_per_s": round(p["deliveries_per_s"]),
        # Throughput per CPU-second the server actually got: robust to other load on the host.
        "deliveries_per_server_cpu_s": round(p["deliveries_per_s"] / server_cores) if server_cores else None,
        # Coalescing: messages per WebSocket frame the clients received (GoChat and the Go hub pack).
        "msgs_per_frame": round(p["deliveries_per_s"] / p["frames_per_s"], 1)
        if p.get("frames_per_s")
        else None,
        "mib_per_s": round(p.get("bytes_per_s", 0) / 2**20, 1),
        "bytes_per_delivery": round(p.get("bytes_per_s", 0) / p["deliveries_per_s"])
        if p["deliveries_per_s"]
        else None,
        "acks_per_s": round(p.get("acks_per_s", 0)),
        "p50_ms": lat.get("p50_ms"),
        "p99_ms": lat.get("p99_ms"),
        "max_ms": lat.get("max_ms"),
        "ack_p50_ms": ack.get("p50_ms"),
        "ack_p99_ms": ack.get("p99_ms"),
        "ack_max_ms": ack.get("max_ms"),
        "sent": p["sent"],
        "expected": p["expected"],
        "delivered": p["delivered"],
        "lost": p["lost"],
        "error_replies": p.get("error_replies", 0),
        "cpu_cores": p.get("cpu_cores", {}),
    }


# ------------------------------------------------------------------------------ scenario a


def scenario_a(cfg: Config, seed: dict[str, Any], seed_db: Path, tokens: list[str]) -> dict[str, Any]:
    a = seed["a"]
    members = len(a["members"])
    senders = list(range(10))
    phases = [phase(f"rate{r}", senders, r, 0, 2, cfg.rate_phase_s) for r in cfg.a_rates]
    phases += [
        phase(f"max{i + 1}", senders, 0, cfg.a_window, 1, cfg.max_phase_s) for i in range(cfg.a_max_repeats)
    ]
    out: dict[str, Any] = {
        "members": members,
        "senders": len(senders),
        "body_bytes": cfg.body_bytes,
        "window": cfg.a_window,
        "targets": {},
    }
    for target in ("gochat", *cfg.peers)[int(cfg.skip_gochat) :]:
        log(f"a: {target}")
        if target == "gochat":
            server = start_gochat(cfg, "a", seed_db=seed_db)
            spec = traffic_spec("gochat", ws_url(server), gochat_clients(tokens, [a]), phases, cfg)
        else:
            server = start_peer(cfg, target)
            spec = traffic_spec("plain", ws_url(server), plain_clients([a], "a"), phases, cfg)
        raw = run_traffic(cfg, server, spec, f"a-{target}")
        out["targets"][target] = _a_summary(raw)
        log(f"a: {target}: " + _brief(out["targets"][target]))
    return out


def _a_summary(raw: dict[str, Any]) -> dict[str, Any]:
    phases = {p["name"]: summarize_phase(p) for p in raw.get("phases", [])}
    maxes = [v for k, v in phases.items() if k.startswith("max")]
    best = {}
    if maxes:
        rates = [m["deliveries_per_s"] for m in maxes]
        best = {
            "deliveries_per_s": statistics.median(rates),
            "per_cpu_s": statistics.median([m["deliveries_per_server_cpu_s"] or 0 for m in maxes]),
            "runs": rates,
            "lost": sum(m["lost"] for m in maxes),
            "p99_ms": statistics.median([m["p99_ms"] or 0 for m in maxes]),
        }
    return {
        "connected": raw.get("connected"),
        "connect_failed": raw.get("connect_failed"),
        "phases": phases,
        "max": best,
        "disconnects": raw.get("disconnects"),
        "error_sample": raw.get("error_sample"),
        "gen_cpu_s": raw.get("gen_cpu_s"),
    }


def _brief(t: dict[str, Any]) -> str:
    parts = []
    for name, p in t.get("phases", {}).items():
        parts.append(f"{name}: {p['deliveries_per_s']:,}/s p99 {p['p99_ms']} ms lost {p['lost']}")
    return "; ".join(parts)


# ------------------------------------------------------------------------------ scenario b


def scenario_b(
    cfg: Config,
    seed: dict[str, Any],
    seed_db: Path,
    tokens: list[str],
    mysql: tuple[str, dict[str, Any], list[str]] | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "groups": len(seed["b"]),
        "group_size": cfg.plan.group_b_size,
        "window": cfg.b_window,
        "targets": {},
    }
    flush = mysql_exec("SELECT @@innodb_flush_log_at_trx_commit, @@sync_binlog, @@log_bin;").split()
    out["mysql_durability"] = {
        "innodb_flush_log_at_trx_commit": flush[0],
        "sync_binlog": flush[1],
        "log_bin": flush[2],
    }
    mdb = mariadb_pid()
    runs: list[tuple[str, Any]] = [("gochat-sqlite", None)]
    if mysql:
        runs.append(("gochat-mysql", mysql))
    runs += [(p, None) for p in cfg.peers]
    for target, my in runs:
        log(f"b: {target}")
        watch: dict[str, int] = {}
        if target == "gochat-sqlite":
            server = start_gochat(cfg, "b", seed_db=seed_db)
            groups, toks = seed["b"], tokens
        elif target == "gochat-mysql":
            url, mseed, mtokens = my
            server = start_gochat(cfg, "b-mysql", database_url=url)
            groups, toks = mseed["b"], mtokens
            if mdb:
                watch["mariadb"] = mdb
        else:
            server = start_peer(cfg, target)
            groups = seed["b"]
        senders = [i * cfg.plan.group_b_size for i in range(len(groups))]
        phases = [phase("max", senders, 0, cfg.b_window, 2, cfg.b_phase_s)]
        if target.startswith("gochat"):
            before = count_messages(server.database_url)  # type: ignore[attr-defined]
            spec = traffic_spec("gochat", ws_url(server), gochat_clients(toks, groups), phases, cfg)
        else:
            spec = traffic_spec("plain", ws_url(server), plain_clients(groups, "b"), phases, cfg)
        raw = run_traffic(cfg, server, spec, f"b-{target}", watch)
        summary = {
            "phases": {p["name"]: summarize_phase(p) for p in raw.get("phases", [])},
            "connected": raw.get("connected"),
            "error_sample": raw.get("error_sample"),
        }
        if target.startswith("gochat"):
            summary["rows_persisted"] = count_messages(server.database_url) - before  # type: ignore[attr-defined]
        m = summary["phases"].get("max", {})
        summary["max"] = {
            "deliveries_per_s": m.get("deliveries_per_s"),
            "persisted_per_s": m.get("acks_per_s"),
            "p99_ms": m.get("p99_ms"),
            "ack_p99_ms": m.get("ack_p99_ms"),
            "lost": m.get("lost"),
        }
        out["targets"][target] = summary
        log(f"b: {target}: {summary['max']}")
    return out


def count_messages(database_url: str) -> int:
    if database_url.startswith("sqlite"):
        import sqlite3

        path = database_url.split(":///", 1)[1]
        with sqlite3.connect(path) as conn:
            return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
    name = database_url.rsplit("/", 1)[1]
    return int(mysql_exec("SELECT count(*) FROM messages;", name).strip())


# ------------------------------------------------------------------------------ scenario c


def scenario_c(
    cfg: Config,
    seed: dict[str, Any],
    seed_db: Path,
    tokens: list[str],
    mysql: tuple[str, dict[str, Any], list[str]] | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"conversations": len(seed["c"]), "rate_in": cfg.c_rate, "targets": {}}
    runs: list[tuple[str, Any]] = [("gochat-sqlite", None)]
    if mysql:
        runs.append(("gochat-mysql", mysql))
    for target, my in runs:
        log(f"c: {target}")
        if my is None:
            server = start_gochat(cfg, "c", seed_db=seed_db)
            pairs, toks = seed["c"], tokens
        else:
            url, mseed, toks = my
            server = start_gochat(cfg, "c-mysql", database_url=url)
            pairs = mseed["c"]
        senders = [2 * i for i in range(len(pairs))]
        phases = [phase("fixed", senders, cfg.c_rate, 0, 2, cfg.c_phase_s)]
        spec = traffic_spec("gochat", ws_url(server), gochat_clients(toks, pairs), phases, cfg)
        raw = run_traffic(cfg, server, spec, f"c-{target}")
        p = {q["name"]: summarize_phase(q) for q in raw.get("phases", [])}.get("fixed", {})
        out["targets"][target] = {
            "phase": p,
            "connected": raw.get("connected"),
            "error_sample": raw.get("error_sample"),
        }
        log(f"c: {target}: ack p50 {p.get('ack_p50_ms')} p99 {p.get('ack_p99_ms')} ms, lost {p.get('lost')}")
    return out


# ------------------------------------------------------------------------------ scenario d


def scenario_d(cfg: Config, seed: dict[str, Any], seed_db: Path, tokens: list[str]) -> dict[str, Any]:
    sizes = list(cfg.d_sizes)
    out: dict[str, Any] = {
        "sizes": sizes,
        "targets": {},
        "nofile_limit": __import__("resource").getrlimit(__import__("resource").RLIMIT_NOFILE),
    }
    room_of = {}
    for key in ("a", "b", "c", "e", "rest"):
        groups = seed[key] if isinstance(seed[key], list) else ([seed[key]] if seed[key] else [])
        for g in groups:
            for m in g["members"]:
                room_of[m] = str(g["conv"])
    for target in ("gochat", *cfg.peers)[int(cfg.skip_gochat) :]:
        log(f"d: {target}")
        server = start_gochat(cfg, "d", seed_db=seed_db) if target == "gochat" else start_peer(cfg, target)
        time.sleep(1.0)
        base = server.rss_kib()
        base_sockets = socket_count(server.pid)
        points = []
        gens: list[Gen] = []
        done = 0
        try:
            for i, size in enumerate(sizes):
                batch = range(sizes[i - 1] if i else 0, size)
                if target == "gochat":
                    clients = [{"token": tokens[u], "room": room_of.get(u, "")} for u in batch]
                else:
                    clients = [{"token": "", "room": f"d{u // 50}"} for u in batch]
                spec = {
                    "mode": "idle",
                    "proto": "gochat" if target == "gochat" else "plain",
                    "url": ws_url(server),
                    "local_ips": local_ips(1 + 4 * i, 4),
                    "clients": clients,
                    # Bounded: GoChat's auth path queues on the database pool (see docs/benchmarks.md).
                    "connect_concurrency": 64,
                    "connect_deadline_s": cfg.d_connect_deadline_s,
                }
                cpu_before, t_conn = proc_cpu_ticks(server.pid), time.monotonic()
                gen = Gen(cfg, spec, f"d-{target}-{size}", {"server": server.pid})
                gens.append(gen)
                ready = gen.readline(600).split()
                t_settle = time.monotonic()
                time.sleep(3.0 if target == "gochat" else 1.0)
                rss = server.rss_kib()
                held = socket_count(server.pid) - base_sockets
                cpu_now = proc_cpu_ticks(server.pid)
                ok = int(ready[1]) + (points[-1]["ok"] if points else 0)
                points.append(
                    {
                        "sockets": size,
                        "ok": ok,
                        "failed": int(ready[2]),
                        "server_sockets": held,
                        "rss_kib": rss,
                        "kib_per_conn": round((rss - base) / max(1, held), 2),
                        "connect_s": round(t_settle - t_conn, 1),
                        "server_cpu_ms_per_conn": round(
                            (cpu_now - cpu_before) / HZ * 1000 / max(1, ok - done), 2
                        ),
                    }
                )
                done = ok
                log(f"d: {target}: {points[-1]}")
                if ok < size:  # the connect deadline passed: measure no further
                    break
        finally:
            alive = server.proc.poll() is None
            server.stop()
            for gen in gens:
                gen.close()
        if len(points) >= 2:
            marginal = (points[-1]["rss_kib"] - points[-2]["rss_kib"]) / max(
                1, points[-1]["server_sockets"] - points[-2]["server_sockets"]
            )
        else:
            marginal = None
        out["targets"][target] = {
            "base_rss_kib": base,
            "points": points,
            "marginal_kib_per_conn": round(marginal, 2) if marginal else None,
            "server_alive_at_end": alive,
            "log_tail": server.log_path.read_text(errors="replace")[-800:],
        }
    return out


# ------------------------------------------------------------------------------ scenario e


def storm_clients(seed: dict[str, Any], tokens: list[str]) -> list[dict[str, Any]]:
    """Scenario e's clients: every member of every storm group, with its cursor."""
    return [
        {"token": tokens[m], "room": str(g["conv"]), "cursor": g["cursor"]}
        for g in seed["e"]
        for m in g["members"]
    ]


def storm_spec(cfg: Config, clients: list[dict[str, Any]], server: Server) -> dict[str, Any]:
    """The generator's spec for the reconnect storm (the measured run and its profile)."""
    return {
        "mode": "storm",
        "proto": "gochat",
        "url": ws_url(server),
        "local_ips": local_ips(1, 4),
        "clients": clients,
        "connect_concurrency": 0,
        "storm_expect": cfg.plan.storm_missed,
        "storm_timeout_s": cfg.e_timeout_s,
        "storm_marker": "MISSED:",
    }


def scenario_e(cfg: Config, seed: dict[str, Any], seed_db: Path, tokens: list[str]) -> dict[str, Any]:
    clients = storm_clients(seed, tokens)
    log(f"e: gochat, {len(clients)} clients")
    server = start_gochat(cfg, "e", seed_db=seed_db)
    spec = storm_spec(cfg, clients, server)
    gen = Gen(cfg, spec, "e-gochat", {"server": server.pid})
    try:
        raw = gen.result()
    finally:
        server.stop()
        gen.close()
    storm = raw["storm"]
    storm["cpu_cores"] = gen.cpu("storm")
    storm["error_sample"] = raw.get("error_sample")
    log(
        f"e: {storm['caught_up']}/{storm['clients']} caught up in {storm['time_to_all_caught_up_s']} s, "
        f"missing {storm['missing_messages']}"
    )
    return {
        "targets": {"gochat-sqlite": storm},
        "clients": len(clients),
        "missed_each": cfg.plan.storm_missed,
    }


# ------------------------------------------------------------------------------ scenario f


F_BODY = "history message, the quick brown fox jumps over the lazy dog; padding to a typical chat line"


def prepare_f(cfg: Config) -> tuple[str, dict[str, Any]]:
    """A MySQL database with cfg.f_messages messages (and their events), reused across runs."""
    name = f"gochat_bench_f_{cfg.f_messages}"
    fingerprint = hashlib.sha256((schema_fingerprint() + str(cfg.f_conversations)).encode()).hexdigest()[:16]
    url, layout = cached_mysql_db(name, fingerprint)
    if layout is not None:
        return url, layout
    log(f"f: loading {cfg.f_messages:,} messages into {name} (bulk SQL, once)")
    url = fresh_mysql_db(name)
    plan = Plan(
        users=cfg.f_conversations * 10,
        group_a=0,
        groups_b=cfg.f_conversations,
        group_b_size=10,
        directs_c=0,
        storm_groups=0,
    )
    seed = asyncio.run(seed_database(url, plan, log))
    per = cfg.f_messages // cfg.f_conversations
    conv_ids = [g["conv"] for g in seed["b"]]
    t0 = time.perf_counter()
    values = ",".join(f"({i},{c})" for i, c in enumerate(conv_ids))
    mysql_exec(
        f"""
        CREATE TABLE bench_convs (rn INT PRIMARY KEY, id BIGINT NOT NULL);
        INSERT INTO bench_convs VALUES {values};
        SET SESSION max_statement_time = 0;
        INSERT INTO messages (id, conversation_id, seq, pos, sender_id, client_msg_id, body, reply_to_seq,
                              created_at, edited_at, deleted_at, mention_ids)
        SELECT 1000000000000 + b.rn * 100000000 + s.seq, c.id, s.seq, c.last_pos + s.seq, c.created_by,
               CONCAT('f-', b.rn, '-', s.seq), CONCAT('{F_BODY} #', s.seq), NULL,
               NOW(6) - INTERVAL ({per} - s.seq) SECOND, NULL, NULL, NULL
        FROM bench_convs b JOIN conversations c ON c.id = b.id JOIN seq_1_to_{per} s
        ORDER BY c.id, s.seq;
        INSERT INTO events (conversation_id, pos, kind, seq, user_id, created_at)
        SELECT c.id, c.last_pos + s.seq, 'message.created', s.seq, c.created_by,
               NOW(6) - INTERVAL ({per} - s.seq) SECOND
        FROM bench_convs b JOIN conversations c ON c.id = b.id JOIN seq_1_to_{per} s
        ORDER BY c.id, s.seq;
        UPDATE conversations c JOIN bench_convs b ON b.id = c.id
           SET c.last_seq = c.last_seq + {per}, c.last_pos = c.last_pos + {per};
        ANALYZE TABLE messages, events, members, conversations;
        """,
        name,
    )
    seed["load_s"] = round(time.perf_counter() - t0, 1)
    seed["per_conversation"] = per
    rows = mysql_exec("SELECT id, last_pos FROM conversations;", name).split("\n")
    seed["last_pos"] = {r.split()[0]: int(r.split()[1]) for r in rows if r.strip()}
    remember_mysql_db(name, fingerprint, seed)
    log(f"f: loaded in {seed['load_s']} s")
    return url, seed


def scenario_f(cfg: Config) -> dict[str, Any]:
    url, seed = prepare_f(cfg)
    name = url.rsplit("/", 1)[1]
    total = int(mysql_exec("SELECT count(*) FROM messages;", name).strip())
    tokens = mint_tokens(seed, SECRET)
    server = start_gochat(cfg, "f", database_url=url)
    try:
        os.sched_setaffinity(0, {int(GEN_CPU)})
        lat = asyncio.run(_f_measure(cfg, server, seed, tokens))
    finally:
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
        server.stop()
    explain = asyncio.run(_f_explain(url, seed))
    return {
        "messages_in_db": total,
        "conversations": len(seed["b"]),
        "per_conversation": seed.get("per_conversation"),
        "latency": lat,
        "explain": explain,
        "load_s": seed.get("load_s"),
    }


def _pct(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    n = len(values)
    pick = lambda q: values[min(n - 1, int(q * n))]  # noqa: E731
    return {
        "n": n,
        "p50_ms": round(pick(0.5), 2),
        "p99_ms": round(pick(0.99), 2),
        "max_ms": round(values[-1], 2),
    }


async def _f_measure(cfg: Config, server: Server, seed: dict[str, Any], tokens: list[str]) -> dict[str, Any]:
    import random

    import httpx
    from websockets.asyncio.client import connect

    rng = random.Random(7)
    per = seed["per_conversation"]
    name = server.database_url.rsplit("/", 1)[1]  # type: ignore[attr-defined]
    rows = mysql_exec("SELECT id, last_pos FROM conversations;", name).split("\n")
    positions = {int(r.split()[0]): int(r.split()[1]) for r in rows if r.strip()}
    base = f"http://127.0.0.1:{server.port}/api/v1"
    groups = seed["b"]
    results: dict[str, list[float]] = defaultdict(list)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        for i in range(cfg.f_samples):
            g = groups[rng.randrange(len(groups))]
            headers = {"Authorization": f"Bearer {tokens[g['members'][rng.randrange(10)]]}"}
            conv = g["conv"]
            for label, params in (
                ("history_latest_50", {"limit": 50, "before_seq": per + 1}),
                ("history_deep_50", {"limit": 50, "before_seq": rng.randrange(60, per)}),
                ("history_after_50", {"limit": 50, "after_seq": rng.randrange(0, per - 60)}),
            ):
                t = time.perf_counter()
                r = await http.get(f"/conversations/{conv}/messages", params=params, headers=headers)
                results[label].append((time.perf_counter() - t) * 1000)
                if r.status_code != 200 or len(r.json()["messages"]) != 50:
                    raise RuntimeError(f"history failed: {r.status_code} {r.text[:200]}")
            if i == 0:
                results["_warm"] = []
    out: dict[str, Any] = {k: _pct(v) for k, v in results.items() if not k.startswith("_")}
    # Sync over the WebSocket: cursors 20 and 1,000 events behind (the replay limit).
    for behind in (20, 1000):
        samples = []
        for i in range(max(10, cfg.f_samples // 4)):
            g = groups[i % len(groups)]
            member = g["members"][i % 10]
            last_pos = positions[g["conv"]]
            async with connect(f"ws://127.0.0.1:{server.port}/ws", max_size=None, compression=None) as ws:
                await ws.send(json.dumps({"type": "auth", "token": tokens[member]}))
                while '"type":"ready"' not in str(await ws.recv()):
                    pass
                t = time.perf_counter()
                await ws.send(
                    json.dumps({"type": "sync", "id": 1, "cursors": {str(g["conv"]): last_pos - behind}})
                )
                got = 0
                while True:
                    frame = str(await ws.recv())
                    got += frame.count('"type":"message.created"')
                    if '"type":"notification"' in frame:
                        break
                samples.append((time.perf_counter() - t) * 1000)
                if got != behind:
                    raise RuntimeError(f"sync returned {got} messages, expected {behind}")
        out[f"sync_{behind}_behind"] = _pct(samples)
    return out


async def _f_explain(url: str, seed: dict[str, Any]) -> list[dict[str, Any]]:
    """ANALYZE (EXPLAIN + actual rows) the exact SELECTs GoChat's services issue.

    The statements are captured with a SQLAlchemy hook while the real services run: a history
    page, a sync 20 events behind, the notification badges a sync ends with, and one send
    (through the group-commit path; it adds one message to the last conversation).
    """
    from sqlalchemy import event

    from gochat.broker.memory import MemoryBroker
    from gochat.clock import SystemClock
    from gochat.services.chat_state import ChatStateService
    from gochat.services.context import Limits, ServiceContext
    from gochat.services.messages import MessageService
    from gochat.services.publisher import Publisher
    from gochat.services.sync import SyncService
    from gochat.storage.database import create_engine
    from gochat.storage.uow import SqlUnitOfWorkFactory

    engine = create_engine(url, pool_size=1)
    ctx = ServiceContext(SqlUnitOfWorkFactory(engine), SystemClock(), Publisher(MemoryBroker()), Limits())
    messages = MessageService(ctx, typing=None)  # type: ignore[arg-type]
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        captured.append((statement, parameters))

    g, last = seed["b"][0], seed["b"][-1]
    per = seed["per_conversation"]
    user = seed["user_ids"][g["members"][1]]
    last_pos = int(
        mysql_exec(f"SELECT last_pos FROM conversations WHERE id = {g['conv']};", url.rsplit("/", 1)[1])
    )
    calls = [
        ("history page (before_seq)", lambda: messages.history(user, g["conv"], None, per - 500, 50)),
        ("sync 20 behind", lambda: SyncService(ctx).sync(user, {g["conv"]: last_pos - 20})),
        ("sync: notification badges", lambda: ChatStateService(ctx).summary(user)),
        (
            "send (group commit)",
            lambda: messages.send(
                seed["user_ids"][last["members"][0]], last["conv"], secrets.token_hex(8), "probe"
            ),
        ),
    ]
    plans = []
    try:
        for label, call in calls:
            captured.clear()
            event.listen(engine.sync_engine, "before_cursor_execute", capture)
            try:
                await call()
            finally:
                event.remove(engine.sync_engine, "before_cursor_execute", capture)
            seen = set()
            for statement, params in captured:
                flat = " ".join(statement.split())
                if not flat.upper().startswith("SELECT") or flat in seen:
                    continue
                seen.add(flat)
                async with engine.connect() as conn:
                    rows = [
                        dict(r._mapping) for r in await conn.exec_driver_sql("ANALYZE " + statement, params)
                    ]
                keep = ("table", "type", "key", "rows", "r_rows", "Extra")
                plans.append(
                    {"query": label, "sql": flat, "explain": [{k: r.get(k) for k in keep} for r in rows]}
                )
    finally:
        if hasattr(messages, "aclose"):
            await messages.aclose()
        await engine.dispose()
    return plans


# ------------------------------------------------------------------------------ profiles


def profile(
    cfg: Config,
    seed: dict[str, Any],
    seed_db: Path,
    tokens: list[str],
    mysql: tuple[str, dict[str, Any], list[str]] | None,
) -> dict[str, Any]:
    spy = Path(PY).with_name("py-spy")
    if not spy.exists():
        return {"error": "py-spy not installed in the venv (pip install py-spy)"}
    out: dict[str, Any] = {}
    runs = [("a", "gochat-sqlite", None)]
    if mysql:
        runs.append(("b", "gochat-mysql", mysql))
    for scen, target, my in runs:
        log(f"profile: {scen} {target}")
        if scen == "a":
            server = start_gochat(cfg, "prof-a", seed_db=seed_db)
            groups, toks, senders, window = [seed["a"]], tokens, list(range(10)), cfg.a_window
        else:
            url, mseed, toks = my
            server = start_gochat(cfg, "prof-b", database_url=url)
            groups, senders, window = mseed["b"], [i * 10 for i in range(len(mseed["b"]))], cfg.b_window
        stem = RESULTS / f"profile-{scen}" if not cfg.quick else cfg.out_dir / f"profile-{scen}"
        stem.parent.mkdir(parents=True, exist_ok=True)
        spies: list[subprocess.Popen[bytes]] = []
        dur = cfg.profile_s

        def hook(
            edge: str,
            name: str,
            stem: Path = stem,
            server: Server = server,
            dur: float = dur,
            spies: list[subprocess.Popen[bytes]] = spies,
        ) -> None:
            if edge != "start":
                return
            # The flame graph shows every non-idle stack (waits included); the raw pass keeps only
            # samples holding the GIL, i.e. where the CPU time of Python code goes.
            svg = name == "svg"
            out = Path(str(stem) + (".svg" if svg else ".txt"))
            spies.append(start_spy(cfg, spy, server.pid, int(dur), out, gil_only=not svg))

        phases = [phase("svg", senders, 0, window, 1, dur + 1), phase("raw", senders, 0, window, 1, dur + 1)]
        spec = traffic_spec("gochat", ws_url(server), gochat_clients(toks, groups), phases, cfg)
        raw = run_traffic(cfg, server, spec, f"profile-{scen}", hooks=[hook])
        for s in spies:
            with contextlib.suppress(subprocess.TimeoutExpired):
                s.wait(30)
        collapsed = Path(str(stem) + ".txt")
        out[scen] = {
            "target": target,
            "svg": str(Path(str(stem) + ".svg").relative_to(ROOT)),
            "deliveries_per_s_under_profiler": [round(p["deliveries_per_s"]) for p in raw.get("phases", [])],
            "breakdown": breakdown(collapsed, dur * 100) if collapsed.exists() else {},
        }
    if seed.get("e"):
        out["e"] = profile_storm(cfg, seed, seed_db, tokens, spy)
    return out


def start_spy(
    cfg: Config, spy: Path, pid: int, seconds: int, out: Path, *, gil_only: bool
) -> subprocess.Popen[bytes]:
    """py-spy on ``pid`` for ``seconds`` at 100 Hz, on the generator's CPU: a flame graph (.svg)
    of every non-idle stack, or raw folded stacks (.txt) of the samples holding the GIL."""
    fmt = ["--format", "raw", "--gil"] if gil_only else ["--format", "flamegraph"]
    cmd = [str(spy), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "100", *fmt]
    cmd += ["-o", str(out)]
    return subprocess.Popen(
        pinned(GEN_CPU, 0, cmd),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=own_session(cfg.nice),
    )


def profile_storm(
    cfg: Config, seed: dict[str, Any], seed_db: Path, tokens: list[str], spy: Path
) -> dict[str, Any]:
    """py-spy (GIL samples) over the first seconds of the reconnect storm of scenario e."""
    log("profile: e gochat-sqlite (storm)")
    stem = (cfg.out_dir if cfg.quick else RESULTS) / "profile-e"
    dur = max(3, int(cfg.profile_s * 2))
    server = start_gochat(cfg, "prof-e", seed_db=seed_db)
    spies: list[subprocess.Popen[bytes]] = []

    def hook(edge: str, _name: str) -> None:
        if edge == "start":
            spies.append(start_spy(cfg, spy, server.pid, dur, Path(f"{stem}.txt"), gil_only=True))

    clients = storm_clients(seed, tokens)
    spec = storm_spec(cfg, clients, server)
    gen = Gen(cfg, spec, "profile-e", {"server": server.pid}, [hook])
    try:
        raw = gen.result()
    finally:
        server.stop()
        gen.close()
    for s in spies:
        with contextlib.suppress(subprocess.TimeoutExpired):
            s.wait(30)
    collapsed = Path(f"{stem}.txt")
    return {
        "target": "gochat-sqlite (storm)",
        "svg": None,
        "deliveries_per_s_under_profiler": None,
        "storm_s_under_profiler": raw["storm"].get("time_to_all_caught_up_s"),
        "breakdown": breakdown(collapsed, dur * 100) if collapsed.exists() else {},
    }


CATEGORIES = [
    ("database: SQLAlchemy + driver", re.compile(r"sqlalchemy/|asyncmy|aiosqlite|sqlite3|pymysql")),
    ("JWT verification", re.compile(r"jwt/")),
    ("logging + metrics", re.compile(r"structlog/|prometheus_client/|gochat/observability")),
    ("JSON (orjson) + protocol/wire encoding", re.compile(r"gochat/domain/|orjson")),
    ("GoChat storage repositories (statement building)", re.compile(r"gochat/storage/")),
    (
        "fan-out: hub routing + per-tick flush + direct writes",
        re.compile(r"gochat/realtime/(hub|connection|wsproto)"),
    ),
    ("WebSocket gateway (receive loop, dispatch)", re.compile(r"gochat/realtime/gateway")),
    ("GoChat services (send, group commit, sync, presence)", re.compile(r"gochat/services/")),
    ("WebSocket protocol + handshake (uvicorn, websockets)", re.compile(r"websockets/|uvicorn/")),
    ("ASGI/HTTP stack (starlette, fastapi)", re.compile(r"starlette/|fastapi/")),
    ("asyncio event loop", re.compile(r"asyncio/|uvloop")),
]


# Frames every request passes through (entry point, middlewares): not informative inclusively.
WRAPPERS = re.compile(r"gochat/(cli|__main__|app|observability)\.py|gochat/security/headers|run_asgi")


def breakdown(collapsed: Path, possible_samples: float) -> dict[str, Any]:
    """Attribute py-spy samples (recorded with --gil: Python holding the GIL) to categories.

    Each sample goes to the category of its innermost recognised frame, so time in
    SQLAlchemy called from a repository counts as database, not as the repository.
    """
    self_by_fn: Counter[str] = Counter()
    incl_gochat: Counter[str] = Counter()  # GoChat functions, inclusive (callees counted)
    by_cat: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not count_s.isdigit():
            continue
        count = int(count_s)
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        self_by_fn[re.sub(r":\d+\)", ")", frames[-1])] += count
        for name in {re.sub(r":\d+\)", ")", f) for f in frames if "gochat/" in f and not WRAPPERS.search(f)}:
            incl_gochat[name] += count
        cat = "other"
        for f in reversed(frames):
            hit = next((name for name, pattern in CATEGORIES if pattern.search(f)), None)
            if hit:
                cat = hit
                break
        by_cat[cat] += count
    if not total:
        return {}
    return {
        "samples": total,
        "top_gochat_inclusive_pct": {k: round(100 * v / total, 1) for k, v in incl_gochat.most_common(15)},
        "gil_held_pct_of_wall": round(100 * total / possible_samples, 1) if possible_samples else None,
        "by_innermost_category_pct": {k: round(100 * v / total, 1) for k, v in by_cat.most_common()},
        "top_self_pct": {k: round(100 * v / total, 1) for k, v in self_by_fn.most_common(15)},
    }


# ------------------------------------------------------------------------------ report


def environment() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": {"cpu": cpu, "cpus": os.cpu_count(), "mem_mib": mem, "kernel": platform.release()},
        "placement": f"servers on CPU {SERVER_CPU}, generator on CPU {GEN_CPU} (taskset); MariaDB not pinned",
        "git": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "git_dirty": bool(
            subprocess.run(
                ["git", "status", "--porcelain", "src"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip()
        ),
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
        "mariadb": mysql_exec("SELECT @@version;").strip() if shutil.which("mysql") else None,
    }


def ratio(a: float | None, b: float | None) -> float | None:
    if not a or not b:
        return None
    return round(a / b, 2)


def targets_table(res: dict[str, Any]) -> list[dict[str, Any]]:
    s = res["scenarios"]
    rows: list[dict[str, Any]] = []
    if "a" in s:
        t = s["a"]["targets"]
        g = t.get("gochat", {})
        hub = t.get("gohub", {})
        gmax, hmax = g.get("max", {}).get("deliveries_per_s"), hub.get("max", {}).get("deliveries_per_s")
        rows.append(
            {
                "target": "a: max deliveries/s >= 1.0x Go hub",
                "measured": f"{ratio(gmax, hmax)}x ({gmax:,} vs {hmax:,})" if gmax and hmax else None,
                "met": bool(gmax and hmax and gmax >= hmax),
            }
        )
        top = f"rate{max(res['config']['a_rates'])}"
        gp = g.get("phases", {}).get(top, {}).get("p99_ms")
        hp = hub.get("phases", {}).get(top, {}).get("p99_ms")
        rows.append(
            {
                "target": f"a: p99 at {top[4:]} msg/s in <= Go hub's",
                "measured": f"{gp} ms vs {hp} ms ({ratio(gp, hp)}x)",
                "met": bool(gp and hp and gp <= hp),
            }
        )
    if "b" in s:
        t = s["b"]["targets"]
        my = t.get("gochat-mysql", {}).get("max", {}).get("persisted_per_s")
        rows.append(
            {
                "target": "b: MySQL >= 5,000 durable persisted msgs/s",
                "measured": f"{my:,}/s" if my is not None else None,
                "met": bool(my and my >= 5000),
            }
        )
        best_peer = max(
            (t[p]["max"]["deliveries_per_s"] or 0 for p in t if not p.startswith("gochat")), default=None
        )
        best_g = max(
            (t[p]["max"]["deliveries_per_s"] or 0 for p in t if p.startswith("gochat")), default=None
        )
        rows.append(
            {
                "target": "b: deliveries/s >= 1.0x best peer",
                "measured": f"{ratio(best_g, best_peer)}x ({best_g:,} vs {best_peer:,})"
                if best_g and best_peer
                else None,
                "met": bool(best_g and best_peer and best_g >= best_peer),
            }
        )
    if "d" in s:
        g = s["d"]["targets"].get("gochat", {})
        pts = g.get("points", [])
        if pts:
            last = pts[-1]
            rows.append(
                {
                    "target": "d: <= 6 KiB per idle authenticated connection, 20,000 sockets held",
                    "measured": f"{last['kib_per_conn']} KiB/conn at {last['server_sockets']:,} sockets held "
                    f"(marginal {g.get('marginal_kib_per_conn')})",
                    "met": bool(last["kib_per_conn"] <= 6 and last["ok"] >= 20_000),
                }
            )
    if "e" in s:
        e = s["e"]["targets"]["gochat-sqlite"]
        tt = e.get("time_to_all_caught_up_s")
        rows.append(
            {
                "target": "e: 5,000 caught up within 10 s, no loss",
                "measured": f"{e['caught_up']:,}/{e['clients']:,} in {tt:.2f} s, "
                f"missing {e['missing_messages']}"
                if tt
                else f"{e['caught_up']}/{e['clients']} caught up",
                "met": bool(tt and tt <= 10 and e["missing_messages"] == 0 and e["clients"] >= 5000),
            }
        )
    return rows


def fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and v >= 1000:
        return f"{v:,.0f}{unit}"
    if isinstance(v, int):
        return f"{v:,}{unit}"
    if isinstance(v, float):
        return f"{v:.2f}{unit}" if v < 10 else f"{v:.1f}{unit}"
    return f"{v}{unit}"


def table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return [*out, ""]


def per_cpu(target: dict[str, Any]) -> float | None:
    value = target["phases"]["max"].get("deliveries_per_server_cpu_s")
    return float(value) if value is not None else None


def xr(a: float | None, b: float | None) -> str:
    r = ratio(a, b)
    return "-" if r is None else f"{r}x"


def summary_table(res: dict[str, Any]) -> list[str]:
    """One row per headline figure: GoChat, each peer, and the ratios GoChat/peer."""
    s, conf = res["scenarios"], res["config"]
    peers = [p for p in PEERS if p in conf["peers"]]
    rows: list[list[Any]] = []

    def row(label: str, g: Any, values: dict[str, Any], lower_better: bool = False, unit: str = "") -> None:
        cells = [fmt(values.get(p), unit) if values.get(p) is not None else "-" for p in peers]
        ratios = " / ".join(xr(g, values.get(p)) for p in peers) if isinstance(g, int | float) else ""
        if ratios and lower_better:
            ratios += " (lower is better)"
        rows.append([label, fmt(g, unit) if isinstance(g, int | float) else g, *cells, ratios])

    if "a" in s:
        t = s["a"]["targets"]
        g = t.get("gochat", {})
        row(
            "a) max deliveries/s (median of runs)",
            g.get("max", {}).get("deliveries_per_s"),
            {p: t[p].get("max", {}).get("deliveries_per_s") for p in peers if p in t},
        )
        row(
            "a) max deliveries per server CPU-s",
            g.get("max", {}).get("per_cpu_s"),
            {p: t[p].get("max", {}).get("per_cpu_s") for p in peers if p in t},
        )
        for r in conf["a_rates"]:
            key = f"rate{r}"
            row(
                f"a) p99 ms at {r} msg/s in",
                g.get("phases", {}).get(key, {}).get("p99_ms"),
                {p: t[p]["phases"].get(key, {}).get("p99_ms") for p in peers if p in t},
                lower_better=True,
            )
        lost = sum(ph["lost"] for tt in t.values() for ph in tt.get("phases", {}).values())
        rows.append(["a) messages lost, every server and phase", fmt(lost), *["" for _ in peers], ""])
    if "b" in s:
        t = s["b"]["targets"]
        for name in ("gochat-sqlite", "gochat-mysql"):
            if name in t:
                m = t[name]["phases"].get("max", {})
                rows.append(
                    [f"b) {name}: persisted msgs/s", fmt(m.get("acks_per_s")), *["-" for _ in peers], ""]
                )
        best = max(
            (t[n]["phases"]["max"]["deliveries_per_s"] for n in t if n.startswith("gochat")), default=None
        )
        row(
            "b) deliveries/s (best GoChat backend)",
            best,
            {p: t[p]["phases"].get("max", {}).get("deliveries_per_s") for p in peers if p in t},
        )
    if "c" in s:
        for name, tt in s["c"]["targets"].items():
            ph = tt["phase"]
            rows.append(
                [
                    f"c) {name}: ack p50 / p99 ms at {s['c']['rate_in']} msg/s",
                    f"{fmt(ph.get('ack_p50_ms'))} / {fmt(ph.get('ack_p99_ms'))}",
                    *["-" for _ in peers],
                    "",
                ]
            )
    if "d" in s:
        t = s["d"]["targets"]

        def last(name: str, key: str) -> Any:
            pts = t.get(name, {}).get("points", [])
            return pts[-1].get(key) if pts else None

        top = last("gochat", "server_sockets")
        row(
            f"d) KiB per idle connection at {fmt(top)} sockets",
            last("gochat", "kib_per_conn"),
            {p: last(p, "kib_per_conn") for p in peers},
            lower_better=True,
        )
        row(
            "d) marginal KiB per connection (10k -> top)",
            t.get("gochat", {}).get("marginal_kib_per_conn"),
            {p: t.get(p, {}).get("marginal_kib_per_conn") for p in peers},
            lower_better=True,
        )
        row(
            "d) server CPU ms per new connection",
            last("gochat", "server_cpu_ms_per_conn"),
            {p: last(p, "server_cpu_ms_per_conn") for p in peers},
            lower_better=True,
        )
    if "e" in s:
        e = s["e"]["targets"]["gochat-sqlite"]
        rows.append(
            [
                f"e) {e['clients']:,} reconnect + sync {e['expected_per_client']} each: s to all caught up",
                f"{fmt(e.get('time_to_all_caught_up_s'))} ({e['missing_messages']} missing, "
                f"{e['reconnects']} reconnects)",
                *["-" for _ in peers],
                "",
            ]
        )
    if "f" in s:
        lat = s["f"]["latency"]
        for k, v in lat.items():
            rows.append(
                [
                    f"f) {k} (p50 / p99 ms)",
                    f"{fmt(v['p50_ms'])} / {fmt(v['p99_ms'])}",
                    *["-" for _ in peers],
                    "",
                ]
            )
    if not rows:
        return []
    return [
        "## Summary: GoChat and the peers",
        "",
        *table(["figure", "GoChat", *peers, "GoChat / " + " / ".join(peers)], rows),
    ]


def markdown(res: dict[str, Any]) -> str:
    env, s, conf = res["environment"], res["scenarios"], res["config"]
    v = env.get("versions", {})
    dirty = " (src/ had uncommitted changes)" if env["git_dirty"] else ""
    L = [
        f"# GoChat benchmark run {env['date']}",
        "",
        f"Command: `{res['command']}` ({'quick' if conf['quick'] else 'full'} mode), "
        f"{res['duration_s']:.0f} s.  ",
        f"Host: {env['host']['cpu']}, {env['host']['cpus']} CPUs, {env['host']['mem_mib']:,} MiB, "
        f"Linux {env['host']['kernel']}; {env['placement']}. Git {env['git']}{dirty}.  ",
        f"Versions: Python {v.get('python')}, uvicorn {v.get('uvicorn')}, websockets {v.get('websockets')}, "
        f"{v.get('go')}, gorilla/websocket {v.get('gorilla_websocket')}, Node {v.get('node')}, "
        f"ws {v.get('ws')}, "
        f"MariaDB {env.get('mariadb')}.  ",
        f"Load average at start {' '.join(env['loadavg_start'])}, "
        f"at end {' '.join(res.get('loadavg_end', []))}. "
        "*foreign* = CPU cores used by processes outside the benchmark during a measured window (the host is "
        "shared); *per server CPU-s* = deliveries/s divided by the cores the server process used, which is "
        "less sensitive to that noise.",
        "",
        "## Targets",
        "",
    ]
    L += table(
        ["target", "measured", "met"],
        [[r["target"], str(r["measured"]), "yes" if r["met"] else "**no**"] for r in res.get("targets", [])],
    )
    L += summary_table(res)
    if "a" in s:
        a = s["a"]
        L += [
            f"## a) one group of {a['members']:,}: {a['senders']} senders, {a['body_bytes']}-byte bodies, "
            f"closed loop with {a['window']} in flight per sender at maximum",
            "",
        ]
        rows = []
        for name, t in a["targets"].items():
            for pname, p in t["phases"].items():
                c = p.get("cpu_cores", {})
                rows.append(
                    [
                        name,
                        pname,
                        p["deliveries_per_s"],
                        p.get("deliveries_per_server_cpu_s"),
                        p.get("msgs_per_frame"),
                        p.get("bytes_per_delivery"),
                        p["p50_ms"],
                        p["p99_ms"],
                        p["max_ms"],
                        p["lost"],
                        c.get("server"),
                        c.get("gen"),
                        c.get("foreign"),
                    ]
                )
        L += table(
            [
                "server",
                "phase",
                "deliveries/s",
                "per server CPU-s",
                "msgs/frame",
                "bytes/delivery",
                "p50 ms",
                "p99 ms",
                "max ms",
                "lost",
                "server cores",
                "gen cores",
                "foreign cores",
            ],
            rows,
        )
        g = a["targets"].get("gochat", {})
        gmax = g.get("max", {})
        rows = []
        for name, t in a["targets"].items():
            if name == "gochat":
                continue
            tmax = t.get("max", {})
            row = [
                f"vs {name}",
                f"{xr(gmax.get('deliveries_per_s'), tmax.get('deliveries_per_s'))} "
                f"({fmt(gmax.get('deliveries_per_s'))} vs {fmt(tmax.get('deliveries_per_s'))})",
                xr(gmax.get("per_cpu_s"), tmax.get("per_cpu_s")),
            ]
            for r in conf["a_rates"]:
                gp = g.get("phases", {}).get(f"rate{r}", {}).get("p99_ms")
                pp = t.get("phases", {}).get(f"rate{r}", {}).get("p99_ms")
                row.append(f"{xr(gp, pp)} ({fmt(gp)} vs {fmt(pp)} ms)")
            rows.append(row)
        L += [
            "GoChat / peer: deliveries higher is better, latency lower is better "
            "(max = median of the max runs).",
            "",
        ]
        L += table(
            [
                "GoChat / peer",
                "max deliveries/s",
                "max deliveries per server CPU-s",
                *(f"p99 at {r} msg/s in" for r in conf["a_rates"]),
            ],
            rows,
        )
    if "b" in s:
        b = s["b"]
        L += [
            f"## b) {b['groups']} groups x {b['group_size']}: one sender per group, closed loop with "
            f"{b['window']} in flight, maximum",
            "",
            f"MariaDB durability settings: {b['mysql_durability']}.",
            "",
        ]
        rows = []
        for name, t in b["targets"].items():
            p = t["phases"].get("max", {})
            c = p.get("cpu_cores", {})
            persisted = p.get("acks_per_s") if name.startswith("gochat") else "n/a (not persisted)"
            rows.append(
                [
                    name,
                    persisted,
                    t.get("rows_persisted", "-"),
                    p.get("deliveries_per_s"),
                    p.get("deliveries_per_server_cpu_s"),
                    p.get("msgs_per_frame"),
                    p.get("p99_ms"),
                    p.get("ack_p99_ms"),
                    p.get("lost"),
                    c.get("server"),
                    c.get("gen"),
                    c.get("mariadb"),
                    c.get("foreign"),
                ]
            )
        L += table(
            [
                "server",
                "persisted msgs/s",
                "rows written",
                "deliveries/s",
                "per server CPU-s",
                "msgs/frame",
                "p99 deliver ms",
                "p99 ack ms",
                "lost",
                "server cores",
                "gen cores",
                "mariadb cores",
                "foreign",
            ],
            rows,
        )
        peers = {k: v for k, v in b["targets"].items() if not k.startswith("gochat")}
        if peers:
            rows = []
            for name, t in b["targets"].items():
                if name.startswith("gochat"):
                    tm = t["phases"].get("max", {})
                    rows.append(
                        [name]
                        + [
                            f"{xr(tm.get('deliveries_per_s'), p['phases']['max']['deliveries_per_s'])} "
                            f"(per CPU-s {xr(tm.get('deliveries_per_server_cpu_s'), per_cpu(p))})"
                            for p in peers.values()
                        ]
                    )
            L += table(["GoChat / peer, deliveries/s", *peers], rows)
    if "c" in s:
        c = s["c"]
        L += [
            f"## c) {c['conversations']:,} direct conversations, {c['rate_in']} msg/s in (open loop, "
            "round robin over the conversations)",
            "",
        ]
        rows = []
        for name, t in c["targets"].items():
            p = t["phase"]
            rows.append(
                [
                    name,
                    p.get("ack_p50_ms"),
                    p.get("ack_p99_ms"),
                    p.get("ack_max_ms"),
                    p.get("p50_ms"),
                    p.get("p99_ms"),
                    p.get("lost"),
                    p.get("error_replies"),
                    p.get("cpu_cores", {}).get("server"),
                    p.get("cpu_cores", {}).get("foreign"),
                ]
            )
        L += table(
            [
                "server",
                "ack p50 ms",
                "ack p99 ms",
                "ack max ms",
                "deliver p50 ms",
                "deliver p99 ms",
                "lost",
                "errors",
                "server cores",
                "foreign",
            ],
            rows,
        )
    if "d" in s:
        d = s["d"]
        L += [
            "## d) idle connections: server RSS delta / connections held",
            "",
            f"Open-files limit in this VM (soft, hard): {tuple(d['nofile_limit'])}; it cannot be raised here "
            f"(no CAP_SYS_RESOURCE), so the top size is {d['sizes'][-1]:,} sockets: a server needs a few "
            "descriptors besides its sockets. GoChat's sockets are authenticated (auth frame, `ready`), "
            "the peers' are plain WebSockets.",
            "",
        ]
        g = d["targets"].get("gochat", {})
        rows = []
        for name, t in d["targets"].items():
            for i, pnt in enumerate(t["points"]):
                gp = g.get("points", [])[i]["kib_per_conn"] if i < len(g.get("points", [])) else None
                last = i == len(t["points"]) - 1
                rows.append(
                    [
                        name,
                        pnt["ok"],
                        pnt["failed"],
                        pnt["kib_per_conn"],
                        t.get("marginal_kib_per_conn") if last else "",
                        pnt.get("connect_s"),
                        pnt.get("server_cpu_ms_per_conn"),
                        "" if name == "gochat" else xr(gp, pnt["kib_per_conn"]),
                    ]
                )
        L += table(
            [
                "server",
                "sockets held",
                "failed",
                "KiB/conn",
                "marginal KiB/conn",
                "connect s",
                "server CPU ms/conn",
                "GoChat / peer KiB",
            ],
            rows,
        )
    if "e" in s:
        e = s["e"]["targets"]["gochat-sqlite"]
        pc = e.get("per_client_catch_up", {})
        L += [
            f"## e) reconnect storm: {e['clients']:,} clients reconnect at once and sync "
            f"{e['expected_per_client']} missed messages each",
            "",
            f"Time to all caught up: **{fmt(e.get('time_to_all_caught_up_s'))} s**; caught up "
            f"{e['caught_up']:,}/{e['clients']:,}; missing messages {e['missing_messages']}; per client p50 "
            f"{fmt(pc.get('p50_ms'))} ms, p99 {fmt(pc.get('p99_ms'))} ms; reconnects {e['reconnects']}, "
            f"failed dials {e['dial_failures']}; server cores {e.get('cpu_cores', {}).get('server')}, "
            f"foreign {e.get('cpu_cores', {}).get('foreign')}.",
            "",
        ]
    if "f" in s:
        f = s["f"]
        L += [
            f"## f) history and sync with {f['conversations'] * f['per_conversation']:,} messages in MariaDB "
            f"({f['conversations']} conversations x {f['per_conversation']:,}, bulk-loaded with "
            f"INSERT ... SELECT; {f['messages_in_db']:,} rows: each run's ANALYZE step sends one probe "
            "message)",
            "",
            "Sequential requests from one client on CPU 1 (REST over httpx, sync over a WebSocket).",
            "",
        ]
        L += table(
            ["request", "n", "p50 ms", "p99 ms", "max ms"],
            [[k, v["n"], v["p50_ms"], v["p99_ms"], v["max_ms"]] for k, v in f["latency"].items()],
        )
        L += [
            "ANALYZE (EXPLAIN plus actual rows) of every SELECT GoChat's services issue for these requests "
            "(captured with a SQLAlchemy hook while the services ran):",
            "",
        ]
        rows = [
            [
                q["query"],
                r.get("table"),
                r.get("type"),
                r.get("key"),
                r.get("rows"),
                r.get("r_rows"),
                r.get("Extra") or "",
            ]
            for q in f["explain"]
            for r in q["explain"]
        ]
        L += table(["query", "table", "type", "key", "rows (estimate)", "r_rows (actual)", "Extra"], rows)
    if "profile" in s:
        L += ["## Profiles (py-spy on GoChat at maximum load)", ""]
        for scen, p in s["profile"].items():
            if not isinstance(p, dict) or "breakdown" not in p:
                continue
            bd = p["breakdown"]
            graph = f": flame graph `{p['svg']}`" if p.get("svg") else ""
            under = (
                f"Deliveries/s while profiled: {p.get('deliveries_per_s_under_profiler')}"
                if p.get("deliveries_per_s_under_profiler")
                else f"Storm time to all caught up while profiled: {fmt(p.get('storm_s_under_profiler'))} s"
            )
            L += [
                f"### scenario {scen} ({p['target']}){graph}",
                "",
                f"{under}; samples holding the GIL: {bd.get('gil_held_pct_of_wall')} % of wall time.",
                "",
            ]
            L += table(
                ["innermost category (GIL samples)", "%"],
                [[k, v] for k, v in bd.get("by_innermost_category_pct", {}).items()],
            )
            L += table(
                ["top self time", "%"],
                [[f"`{k}`", v] for k, v in list(bd.get("top_self_pct", {}).items())[:12]],
            )
            L += table(
                ["GoChat function, inclusive (callees counted)", "%"],
                [[f"`{k}`", v] for k, v in list(bd.get("top_gochat_inclusive_pct", {}).items())[:12]],
            )
    return "\n".join(L) + "\n"


def update_docs(md: str, results_name: str) -> None:
    start, end = "<!-- bench:results:start -->", "<!-- bench:results:end -->"
    # The run's headings move two levels down, under this page's "## Latest results".
    body = md.split("\n", 1)[1].replace("\n### ", "\n#### ").replace("\n## ", "\n### ")
    block = (
        f"{start}\n<!-- generated by bench/run.py from bench/results/{results_name}.json -->\n"
        f"Latest full run: [`bench/results/{results_name}.md`](../bench/results/{results_name}.md).\n"
        f"{body}\n{end}"
    )
    text = DOCS.read_text() if DOCS.exists() else f"# Benchmarks\n\n{start}\n{end}\n"
    if start in text and end in text:
        text = text.split(start)[0] + block + text.split(end, 1)[1]
    else:
        text += "\n" + block + "\n"
    DOCS.write_text(text)


# ------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run, < 2 minutes, results in bench/.build/quick"
    )
    parser.add_argument(
        "--render", metavar="JSON", help="only re-render a results JSON as Markdown (and docs)"
    )
    parser.add_argument("--only", default="", help="comma-separated scenarios: a,b,c,d,e,f,p (p = profiles)")
    parser.add_argument(
        "--nice",
        type=int,
        default=-10,
        help="autogroup nice of servers, generator and this process (the host may be shared; 0 = off)",
    )
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument(
        "--peers", default="", help="comma-separated peers to run (default: gohub,nodews,pyws)"
    )
    parser.add_argument(
        "--skip-gochat", action="store_true", help="debugging: peers only in scenarios a and d"
    )
    args = parser.parse_args()
    if args.render:
        source = Path(args.render)
        md = markdown(json.loads(source.read_text()))
        source.with_suffix(".md").write_text(md)
        if not args.no_docs:
            update_docs(md, source.stem)
        return
    cfg = make_config(args)
    started = time.monotonic()
    if cfg.nice:  # this process measures scenario f's latencies: same scheduling weight
        with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as f:
            f.write(str(cfg.nice))
    for tool in ("go", "node", "npm", "taskset", "mysql"):
        if not shutil.which(tool):
            sys.exit(f"missing tool: {tool} (see the module docstring)")
    shutil.rmtree(BUILD / "run", ignore_errors=True)  # the previous run's database copies
    env = environment()
    log(f"GoChat bench ({'quick' if cfg.quick else 'full'}); load average {' '.join(env['loadavg_start'])}")
    build(env)
    res: dict[str, Any] = {
        "command": " ".join(
            [f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("BENCH_GOCHAT_")]
            + ["python", "bench/run.py", *sys.argv[1:]]
        ),
        "environment": env,
        "config": {
            "quick": cfg.quick,
            "plan": cfg.plan.__dict__,
            "peers": cfg.peers,
            "a_rates": cfg.a_rates,
            "a_window": cfg.a_window,
            "b_window": cfg.b_window,
            "c_rate": cfg.c_rate,
            "d_sizes": cfg.d_sizes,
            "nice": cfg.nice,
            "body_bytes": cfg.body_bytes,
        },
        "scenarios": {},
    }
    need_sqlite = cfg.only & set("abcdep")
    seed_db, seed, tokens = None, None, None
    if need_sqlite:
        seed_db, seed = seed_sqlite_cached(CACHE, cfg.plan, schema_fingerprint(), log)
        tokens = mint_tokens(seed, SECRET)
    mysql = None
    if cfg.only & set("bcp"):
        url, mseed = prepare_mysql_bc(cfg)
        mysql = (url, mseed, mint_tokens(mseed, SECRET))
    steps = [
        ("a", lambda: scenario_a(cfg, seed, seed_db, tokens)),
        ("b", lambda: scenario_b(cfg, seed, seed_db, tokens, mysql)),
        ("c", lambda: scenario_c(cfg, seed, seed_db, tokens, mysql)),
        ("d", lambda: scenario_d(cfg, seed, seed_db, tokens)),
        ("e", lambda: scenario_e(cfg, seed, seed_db, tokens)),
        ("f", lambda: scenario_f(cfg)),
        ("p", lambda: profile(cfg, seed, seed_db, tokens, mysql)),
    ]
    for key, step in steps:
        if key not in cfg.only:
            continue
        t0 = time.monotonic()
        try:
            res["scenarios"]["profile" if key == "p" else key] = step()
        except Exception as exc:  # keep the other scenarios' figures
            log(f"{key}: FAILED: {exc!r}")
            res["scenarios"].setdefault("failed", {})[key] = repr(exc)
        log(f"{key}: {time.monotonic() - t0:.0f} s")
    res["duration_s"] = time.monotonic() - started
    res["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    res["targets"] = targets_table(res)
    stamp = dt.datetime.now().strftime("%Y-%m-%d-%H%M")
    if (cfg.out_dir / f"{stamp}.json").exists():  # two short runs in one minute: keep both
        stamp = dt.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    (cfg.out_dir / f"{stamp}.json").write_text(json.dumps(res, indent=1, default=str))
    md = markdown(res)
    (cfg.out_dir / f"{stamp}.md").write_text(md)
    if not cfg.quick and not args.no_docs and cfg.only >= set("abcdef"):
        update_docs(md, stamp)
    log(f"results: {cfg.out_dir / stamp}.json and .md ({res['duration_s']:.0f} s)")
    for r in res["targets"]:
        log(f"target: {r['target']}: {r['measured']} -> {'met' if r['met'] else 'NOT met'}")


if __name__ == "__main__":
    main()
