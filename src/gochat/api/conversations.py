"""REST routes for conversations, members, messages and read positions."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response

from gochat.api.deps import PrincipalDep, ServicesDep, path_id
from gochat.api.schemas import (
    ConversationIn,
    ConversationOut,
    ConversationPatch,
    ConversationsOut,
    ErrorOut,
    MembersIn,
    MessageIn,
    MessageOut,
    MessagesOut,
    ReadIn,
    RoleIn,
)
from gochat.domain.models import Role
from gochat.domain.validation import field_error
from gochat.domain.wire import message_json, summary_json
from gochat.errors import NotFound

router = APIRouter(prefix="/conversations")
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 413, 422, 429)
}


def user_ids(values: list[str], field: str) -> list[int]:
    """Ids of users; a malformed one cannot name a user, so it is "not found"."""
    from gochat.ids import parse_id

    parsed = [parse_id(v) for v in values]
    if any(p is None for p in parsed):
        raise NotFound(f"{field} names something that does not exist")
    return [p for p in parsed if p is not None]


@router.post(
    "",
    status_code=201,
    response_model=ConversationOut,
    responses={**ERRORS, 200: {"model": ConversationOut, "description": "the existing direct conversation"}},
)
async def create(body: ConversationIn, me: PrincipalDep, svc: ServicesDep, response: Response) -> object:
    members = user_ids(body.member_ids, "member_ids")
    if body.kind == "direct":
        if len(members) != 1:
            raise field_error("member_ids", "a direct conversation has exactly one other member")
        conv, created = await svc.conversations.create_direct(me.user_id, members[0])
        if not created:
            response.status_code = 200
    else:
        if body.title is None:
            raise field_error("title", "a group needs a title")
        conv = await svc.conversations.create_group(me.user_id, body.title, members)
    return await _detail(svc, me.user_id, conv.id)


async def _detail(svc: ServicesDep, user_id: int, conversation_id: int) -> object:
    summary, members = await svc.conversations.get(user_id, conversation_id)
    return summary_json(summary, members)


@router.get("", response_model=ConversationsOut, responses=ERRORS)
async def list_conversations(
    me: PrincipalDep,
    svc: ServicesDep,
    limit: int = Query(default=50, ge=1, le=100),
    cursor: str | None = Query(default=None, max_length=64),
) -> object:
    summaries, next_cursor = await svc.conversations.list_for(me.user_id, limit, cursor)
    return {"conversations": [summary_json(s) for s in summaries], "next_cursor": next_cursor}


@router.get("/{conversation_id}", response_model=ConversationOut, responses=ERRORS)
async def get_conversation(conversation_id: str, me: PrincipalDep, svc: ServicesDep) -> object:
    return await _detail(svc, me.user_id, path_id(conversation_id))


@router.patch("/{conversation_id}", response_model=ConversationOut, responses=ERRORS)
async def patch_conversation(
    conversation_id: str, body: ConversationPatch, me: PrincipalDep, svc: ServicesDep
) -> object:
    conv_id = path_id(conversation_id)
    if body.title is not None:
        await svc.conversations.rename(me.user_id, conv_id, body.title)
    return await _detail(svc, me.user_id, conv_id)


@router.post("/{conversation_id}/members", response_model=ConversationOut, responses=ERRORS)
async def add_members(conversation_id: str, body: MembersIn, me: PrincipalDep, svc: ServicesDep) -> object:
    conv_id = path_id(conversation_id)
    await svc.conversations.add_members(me.user_id, conv_id, user_ids(body.user_ids, "user_ids"))
    return await _detail(svc, me.user_id, conv_id)


@router.delete("/{conversation_id}/members/{user_id}", status_code=204, responses=ERRORS)
async def remove_member(conversation_id: str, user_id: str, me: PrincipalDep, svc: ServicesDep) -> Response:
    await svc.conversations.remove_member(me.user_id, path_id(conversation_id), path_id(user_id))
    return Response(status_code=204)


@router.patch("/{conversation_id}/members/{user_id}", status_code=204, responses=ERRORS)
async def set_role(
    conversation_id: str, user_id: str, body: RoleIn, me: PrincipalDep, svc: ServicesDep
) -> Response:
    role = Role(body.role)
    await svc.conversations.set_role(me.user_id, path_id(conversation_id), path_id(user_id), role)
    return Response(status_code=204)


@router.get("/{conversation_id}/messages", response_model=MessagesOut, responses=ERRORS)
async def history(
    conversation_id: str,
    me: PrincipalDep,
    svc: ServicesDep,
    after_seq: int | None = Query(default=None, ge=0, le=2**63 - 1),
    before_seq: int | None = Query(default=None, ge=1, le=2**63 - 1),
    limit: int = Query(default=50, ge=1, le=200),
) -> object:
    page = await svc.messages.history(me.user_id, path_id(conversation_id), after_seq, before_seq, limit)
    return {"messages": [message_json(m) for m in page]}


@router.post(
    "/{conversation_id}/messages",
    status_code=201,
    response_model=MessageOut,
    responses={**ERRORS, 200: {"model": MessageOut, "description": "a retry: the message already sent"}},
)
async def send(
    conversation_id: str,
    body: MessageIn,
    me: PrincipalDep,
    svc: ServicesDep,
    request: Request,
    response: Response,
) -> object:
    await svc.limiter.hit("send:user", str(me.user_id))
    media = tuple(user_ids(body.media_ids, "media_ids"))
    message, created = await svc.messages.send(
        me.user_id, path_id(conversation_id), body.client_msg_id, body.body, media, body.reply_to_seq
    )
    if created:
        request.app.state.metrics.messages_sent.inc()
    else:
        response.status_code = 200
    return message_json(message)


@router.post("/{conversation_id}/read", status_code=204, responses=ERRORS)
async def mark_read(conversation_id: str, body: ReadIn, me: PrincipalDep, svc: ServicesDep) -> Response:
    await svc.messages.mark_read(me.user_id, path_id(conversation_id), body.seq)
    return Response(status_code=204)
