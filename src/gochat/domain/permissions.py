"""Who may do what in a conversation. Pure."""

from __future__ import annotations

from gochat.domain.models import Membership, Role
from gochat.errors import NotFound

RANK = {Role.MEMBER: 0, Role.ADMIN: 1, Role.OWNER: 2}


def require_active(membership: Membership | None) -> Membership:
    """The caller's membership; anyone else learns only "not found" (no existence oracle)."""
    if membership is None or not membership.active:
        raise NotFound("no such conversation")
    return membership


def can_manage(role: Role) -> bool:
    return role in (Role.OWNER, Role.ADMIN)


def can_remove(actor: Role, target: Role) -> bool:
    """Owners remove anyone; admins remove plain members only."""
    return can_manage(actor) and RANK[actor] > RANK[target]


def can_delete_message(actor_id: int, actor_role: Role, sender_id: int, sender_role: Role) -> bool:
    """The sender, or an owner/admin ranked above the sender (admins can't delete the owner's)."""
    return actor_id == sender_id or can_remove(actor_role, sender_role)
