"""Self-service account security: sessions (devices), password change, account deletion."""

from __future__ import annotations

from gochat.domain.models import ConversationKind, Session, User
from gochat.domain.protocol import encode_event
from gochat.domain.validation import check_password
from gochat.errors import InvalidCredentials, NotFound
from gochat.security.passwords import PasswordHasher
from gochat.services.context import ServiceContext
from gochat.services.conversations import ConversationService
from gochat.storage.uow import SqlUnitOfWork

DELETED_NAME = "Deleted user"


class AccountAdminService:
    def __init__(
        self, ctx: ServiceContext, hasher: PasswordHasher, conversations: ConversationService
    ) -> None:
        self._ctx = ctx
        self._hasher = hasher
        self._conversations = conversations

    async def sessions(self, user_id: int) -> list[Session]:
        async with self._ctx.uow() as uow:
            found = await uow.sessions.list_active(user_id, self._ctx.clock.now())
        return sorted(found, key=lambda s: s.created_at)

    async def revoke_session(self, user_id: int, session_id: int) -> None:
        """End one of my sessions (a lost phone): its refresh token dies, its sockets close."""
        async with self._ctx.uow() as uow:
            session = await uow.sessions.get(session_id)
            if session is None or session.user_id != user_id or session.revoked_at is not None:
                raise NotFound("no such session")
            await uow.sessions.revoke(session_id, self._ctx.clock.now())
            await uow.commit()
        await self._announce_revoked([session])

    async def change_password(self, user_id: int, session_id: int, current: str, new: str) -> None:
        """New password; every other session is revoked and its sockets closed."""
        check_password(new)
        await self._verify_password(user_id, current)
        new_hash = await self._hasher.hash(new)
        async with self._ctx.uow() as uow:
            await uow.users.set_password(user_id, new_hash)
            now = self._ctx.clock.now()
            others = [s for s in await uow.sessions.list_active(user_id, now) if s.id != session_id]
            for session in others:
                await uow.sessions.revoke(session.id, now)
            await uow.commit()
        await self._announce_revoked(others)

    async def delete_account(self, user_id: int, password: str) -> None:
        """The account can no longer log in; its messages stay, shown as from a deleted user."""
        await self._verify_password(user_id, password)
        now = self._ctx.clock.now()
        async with self._ctx.uow() as uow:
            sessions = await uow.sessions.list_active(user_id, now)
            for session in sessions:
                await uow.sessions.revoke(session.id, now)
            await uow.users.scrub(user_id, now, DELETED_NAME)
            # In this unit of work: a second one waits for SQLite's only connection (held here)
            # until the pool times out, and the deletion failed with a 500.
            groups = await _groups_of(uow, user_id)
            await uow.commit()
        for conversation_id in groups:
            await self._conversations.remove_member(user_id, conversation_id, user_id)
        await self._announce_revoked(sessions)

    async def _verify_password(self, user_id: int, password: str) -> User:
        async with self._ctx.uow() as uow:
            user = await uow.users.get(user_id)
            found = await uow.users.get_with_password(_key_of(user)) if user else None
        if found is None or not await self._hasher.verify(found[1], password):
            raise InvalidCredentials("the current password is wrong")
        return found[0]

    async def _announce_revoked(self, sessions: list[Session]) -> None:
        for session in sessions:
            frame = encode_event("session.revoked", session_id=str(session.id))
            await self._ctx.publisher.to_user(session.user_id, frame, route=f"revoke:{session.id}")


async def _groups_of(uow: SqlUnitOfWork, user_id: int) -> list[int]:
    ids = await uow.members.active_conversation_ids(user_id)
    convs = [await uow.conversations.get(i) for i in ids]
    return [c.id for c in convs if c is not None and c.kind is ConversationKind.GROUP]


def _key_of(user: User | None) -> str:
    from gochat.domain.validation import username_key

    return username_key(user.username) if user else ""
