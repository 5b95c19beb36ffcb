"""REST routes for chat state: edits, deletes, reactions, mute, notifications, presence."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from gochat.api.conversations import ERRORS, user_ids
from gochat.api.deps import PrincipalDep, ServicesDep, path_id
from gochat.api.schemas import (
    EditIn,
    MessageOut,
    MuteIn,
    NotificationsOut,
    PresenceListOut,
    ReactionsOut,
)
from gochat.clock import to_rfc3339
from gochat.domain.wire import message_json, notification_json, reactions_json

router = APIRouter()
MESSAGE = "/conversations/{conversation_id}/messages/{seq}"


@router.patch(MESSAGE, response_model=MessageOut, responses=ERRORS)
async def edit_message(
    conversation_id: str, seq: int, body: EditIn, me: PrincipalDep, svc: ServicesDep
) -> object:
    edited = await svc.chat_state.edit(me.user_id, path_id(conversation_id), _seq(seq), body.body)
    return message_json(edited)


@router.delete(MESSAGE, response_model=MessageOut, responses=ERRORS)
async def delete_message(conversation_id: str, seq: int, me: PrincipalDep, svc: ServicesDep) -> object:
    return message_json(await svc.chat_state.delete(me.user_id, path_id(conversation_id), _seq(seq)))


@router.put(MESSAGE + "/reactions/{emoji}", response_model=ReactionsOut, responses=ERRORS)
async def add_reaction(
    conversation_id: str, seq: int, emoji: str, me: PrincipalDep, svc: ServicesDep
) -> object:
    message = await svc.chat_state.react(me.user_id, path_id(conversation_id), _seq(seq), emoji, add=True)
    return {"seq": message.seq, "reactions": reactions_json(message)}


@router.delete(MESSAGE + "/reactions/{emoji}", response_model=ReactionsOut, responses=ERRORS)
async def remove_reaction(
    conversation_id: str, seq: int, emoji: str, me: PrincipalDep, svc: ServicesDep
) -> object:
    message = await svc.chat_state.react(me.user_id, path_id(conversation_id), _seq(seq), emoji, add=False)
    return {"seq": message.seq, "reactions": reactions_json(message)}


@router.put("/conversations/{conversation_id}/mute", status_code=204, responses=ERRORS)
async def set_mute(conversation_id: str, body: MuteIn, me: PrincipalDep, svc: ServicesDep) -> Response:
    await svc.chat_state.set_muted(me.user_id, path_id(conversation_id), body.muted)
    return Response(status_code=204)


@router.get("/notifications", response_model=NotificationsOut, responses=ERRORS)
async def notifications(me: PrincipalDep, svc: ServicesDep) -> object:
    body = notification_json(await svc.chat_state.summary(me.user_id))
    body.pop("type")
    return body


@router.get("/presence", response_model=PresenceListOut, responses=ERRORS)
async def presence(
    me: PrincipalDep,
    svc: ServicesDep,
    user_ids_csv: str = Query(alias="user_ids", max_length=2000, description="Comma-separated user ids"),
) -> object:
    wanted = user_ids([v for v in user_ids_csv.split(",") if v][:100], "user_ids")
    found = await svc.presence.query(me.user_id, set(wanted))
    return {
        "presence": [
            {
                "user_id": str(p.user_id),
                "status": "online" if p.online else "offline",
                "last_seen_at": to_rfc3339(p.last_seen_at),
            }
            for p in found
        ]
    }


def _seq(seq: int) -> int:
    from gochat.errors import NotFound

    if not 1 <= seq <= 2**63 - 1:
        raise NotFound("no such message")
    return seq
