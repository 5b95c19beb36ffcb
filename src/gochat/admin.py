"""Administrative tasks run by the CLI against the configured database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gochat.app import Components, build_components
from gochat.clock import SystemClock
from gochat.config import Settings
from gochat.domain.models import User
from gochat.errors import UsernameTaken
from gochat.security.passwords import PasswordHasher
from gochat.storage import migrate

DEMO_USERS = [("alice", "Alice"), ("bob", "Bob"), ("carol", "Carol")]
DEMO_MESSAGES = [
    ("alice", "Welcome to GoChat! 👋"),
    ("bob", "Hi Alice - messages here are acked only after they are committed."),
    ("carol", "And a reconnecting client syncs what it missed. ✅"),
]


@asynccontextmanager
async def components(settings: Settings) -> AsyncIterator[Components]:
    parts = build_components(settings, SystemClock(), PasswordHasher())
    await migrate.upgrade(parts.engine)
    try:
        yield parts
    finally:
        await parts.engine.dispose()


async def create_user(settings: Settings, username: str, password: str, display_name: str | None) -> User:
    async with components(settings) as parts:
        return await parts.services.accounts.register(username, password, display_name)


async def load_demo(settings: Settings, password: str) -> list[str]:
    lines: list[str] = []
    async with components(settings) as parts:
        accounts = parts.services.accounts
        users: dict[str, int] = {}
        for name, shown in DEMO_USERS:
            try:
                users[name] = (await accounts.register(name, password, shown)).id
                lines.append(f"user {name} (password {password!r})")
            except UsernameTaken:
                found = await accounts.search(name, 1)
                users[name] = found[0].id
                lines.append(f"user {name} exists already")
        group = await parts.services.conversations.create_group(
            users["alice"], "Welcome", [users["bob"], users["carol"]]
        )
        for i, (sender, text) in enumerate(DEMO_MESSAGES):
            await parts.services.messages.send(users[sender], group.id, f"demo-{group.id}-{i}", text)
        lines.append(f"group 'Welcome' ({group.id}) with {len(DEMO_MESSAGES)} messages")
    return lines
