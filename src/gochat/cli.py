"""`gochat serve | migrate | create-user | demo` - the command line."""

from __future__ import annotations

import asyncio
import gc
import signal
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError

from gochat.config import Settings
from gochat.errors import GoChatError

cli = typer.Typer(add_completion=False, no_args_is_help=True, help="GoChat, a real-time chat server.")

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Where the embedded database, media and secret live.")
]


def load_settings(**overrides: object) -> Settings:
    """Environment (GOCHAT_*) first, command-line options on top."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        # One line per problem (e.g. a production secret refused), not a traceback.
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            typer.echo(f"gochat: {where + ': ' if where else ''}{message}", err=True)
        raise typer.Exit(2) from None


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind (0 picks a free one).")] = None,
    data_dir: DataDir = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="PEM certificate: serve https/wss.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="PEM private key for --tls-cert.")] = None,
) -> None:
    """Serve REST, WebSocket and the web client on one port."""
    from gochat.app import create_app
    from gochat.observability import configure_logging
    from gochat.realtime.wsproto import GochatWebSocketProtocol

    settings = load_settings(host=host, port=port, data_dir=data_dir, tls_cert=tls_cert, tls_key=tls_key)
    configure_logging(settings.log_level, settings.log_json)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        ws=GochatWebSocketProtocol,
        ws_max_size=settings.ws_max_frame_bytes,
        ws_ping_interval=settings.ws_ping_interval_s,
        ws_ping_timeout=settings.ws_ping_timeout_s,
        # The direct-write fan-out path sends pre-built frames: compression must stay off.
        ws_per_message_deflate=False,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    # Fan-out allocates many short-lived lists per tick: freezing the start-up heap and a
    # larger generation-0 threshold removed the GC pauses measured in FANOUT.md.
    scheme = "https" if settings.tls_cert else "http"
    where = "embedded SQLite in " + str(settings.data_dir) if settings.is_embedded else "external database"
    typer.echo(
        f"GoChat serving {scheme}://{settings.host}:{settings.port} ({where}, broker {settings.broker_url})",
        err=True,
    )
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal into the
    # handler that was there before it; this one turns that into a clean exit status 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_after_graceful_shutdown)
    uvicorn.Server(config).run()


def _exit_after_graceful_shutdown(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


@cli.command()
def migrate(
    data_dir: DataDir = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
    down: Annotated[bool, typer.Option("--down", help="Downgrade to --revision instead.")] = False,
) -> None:
    """Apply the schema migrations to the configured database."""
    from gochat.storage import migrate as migrations
    from gochat.storage.database import create_engine

    settings = load_settings(data_dir=data_dir)

    async def run() -> str | None:
        engine = create_engine(settings.effective_database_url)
        try:
            if down:
                await migrations.downgrade(engine, revision if revision != "head" else "base")
            else:
                await migrations.upgrade(engine, revision)
            return await migrations.current_revision(engine)
        finally:
            await engine.dispose()

    typer.echo(f"database at revision {asyncio.run(run())}")


@cli.command("create-user")
def create_user(
    username: str,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    display_name: Annotated[str | None, typer.Option()] = None,
    data_dir: DataDir = None,
) -> None:
    """Create an account (administration; bypasses registration limits)."""
    from gochat.admin import create_user as create

    try:
        user = asyncio.run(create(load_settings(data_dir=data_dir), username, password, display_name))
    except GoChatError as exc:  # a traceback here would print the SQL, password hash included
        typer.echo(f"gochat: {exc.message}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"created user {user.username} with id {user.id}")


@cli.command()
def demo(
    data_dir: DataDir = None,
    password: Annotated[str, typer.Option(help="Password for every demo user.")] = "gochat-demo",  # noqa: S107 - documented demo password
) -> None:
    """Load demo data: users alice, bob and carol and a group 'Welcome' with messages."""
    from gochat.admin import load_demo

    for line in asyncio.run(load_demo(load_settings(data_dir=data_dir), password)):
        typer.echo(line)


@cli.command("media-cleanup")
def media_cleanup(
    data_dir: DataDir = None,
    older_than: Annotated[
        int | None,
        typer.Option(
            "--older-than",
            min=0,
            help="Seconds after which unattached uploads expire (default: GOCHAT_MEDIA_UNATTACHED_TTL_S).",
        ),
    ] = None,
) -> None:
    """Remove expired unattached uploads and deleted media, from storage and the database."""
    from gochat.admin import components

    async def run() -> int:
        async with components(load_settings(data_dir=data_dir)) as parts:
            try:
                return await parts.services.media.cleanup(older_than)
            finally:
                await parts.services.media.store.close()

    typer.echo(f"removed {asyncio.run(run())} media")


@cli.command()
def cluster(
    nodes: Annotated[int, typer.Option(min=1, max=16, help="How many gochat nodes.")] = 3,
    port: Annotated[int, typer.Option(help="The load balancer's port.")] = 8000,
    database_url: Annotated[str, typer.Option(help="Shared MySQL/MariaDB database.")] = (
        "mysql+asyncmy://root@127.0.0.1:3306/gochat"
    ),
    broker_url: Annotated[str, typer.Option(help="Shared Redis.")] = "redis://127.0.0.1:6379/0",
    work_dir: Annotated[Path, typer.Option(help="Logs, configs and local media.")] = Path("./gochat-cluster"),
) -> None:
    """Run a local cluster: N nodes on MariaDB + Redis behind HAProxy, until Ctrl-C."""
    import signal
    import time

    from gochat.cluster import LocalCluster

    local = LocalCluster(work_dir, database_url, broker_url, nodes, port=port)
    local.start()
    typer.echo(f"GoChat cluster: {local.url} (nodes: {', '.join(n.url for n in local.nodes)})")
    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        while not stopping:
            time.sleep(0.5)
    finally:
        local.stop()


def main() -> None:
    cli()
