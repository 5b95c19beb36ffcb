"""Request and response bodies of the REST API (they generate the OpenAPI spec)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


class RegisterIn(Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    display_name: str | None = Field(default=None, max_length=256)


class LoginIn(Body):
    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=1024)


class RefreshIn(Body):
    refresh_token: str = Field(min_length=1, max_length=512)


class TokensOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth token type name
    expires_in: int
    user_id: str
    session_id: str


class UserOut(BaseModel):
    id: str
    username: str
    display_name: str
    bio: str
    avatar_url: str | None
    created_at: str


class MeOut(UserOut):
    presence_hidden: bool


class UsersOut(BaseModel):
    users: list[UserOut]


class ProfileIn(Body):
    display_name: str | None = Field(default=None, max_length=256)
    bio: str | None = Field(default=None, max_length=2000)
    presence_hidden: StrictBool | None = None
    avatar_media_id: str | None = Field(default=None, max_length=32, description="Your image; null removes")


class ConversationIn(Body):
    kind: Literal["direct", "group"]
    member_ids: list[str] = Field(default_factory=list, max_length=1000)
    title: str | None = Field(default=None, max_length=512)


class ConversationPatch(Body):
    title: str | None = Field(default=None, max_length=512)


class MembersIn(Body):
    user_ids: list[str] = Field(min_length=1, max_length=1000)


class RoleIn(Body):
    role: Literal["admin", "member"]


class MemberOut(BaseModel):
    user_id: str
    role: str
    read_seq: int = 0


class ReactionOut(BaseModel):
    emoji: str
    count: int
    user_ids: list[str]


class MessageOut(BaseModel):
    id: str
    conversation_id: str
    seq: int
    pos: int
    sender_id: str
    client_msg_id: str
    body: str | None
    media: list[dict[str, object]]
    reply_to_seq: int | None
    created_at: str
    edited_at: str | None
    deleted: bool
    mentions: list[str] = []
    reactions: list[ReactionOut] = []


class ConversationOut(BaseModel):
    id: str
    kind: str
    title: str | None
    created_at: str
    last_seq: int
    last_pos: int
    read_seq: int
    unread_count: int
    mention_count: int = 0
    muted: bool = False
    last_message: MessageOut | None
    members: list[MemberOut] | None = None


class ConversationsOut(BaseModel):
    conversations: list[ConversationOut]
    next_cursor: str | None


class MessageIn(Body):
    client_msg_id: str = Field(min_length=1, max_length=64)
    body: str | None = Field(default=None, max_length=262_144)
    media_ids: list[str] = Field(default_factory=list, max_length=10)
    reply_to_seq: int | None = Field(default=None, ge=1, le=2**63 - 1, strict=True)  # not `true`


class MessagesOut(BaseModel):
    messages: list[MessageOut]


class ReadIn(Body):
    seq: int = Field(ge=0, le=2**63 - 1, strict=True)  # `false` is not 0


class ErrorDetail(BaseModel):
    code: str
    message: str
    fields: list[dict[str, str]] | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


class EditIn(Body):
    body: str = Field(min_length=1, max_length=262_144)


class MuteIn(Body):
    muted: StrictBool


class ReactionsOut(BaseModel):
    seq: int
    reactions: list[ReactionOut]


class BadgeOut(BaseModel):
    conversation_id: str
    unread_count: int
    mention_count: int
    muted: bool


class NotificationsOut(BaseModel):
    total_unread: int
    total_mentions: int
    conversations: list[BadgeOut]


class PresenceOut(BaseModel):
    user_id: str
    status: Literal["online", "offline"]
    last_seen_at: str | None


class PresenceListOut(BaseModel):
    presence: list[PresenceOut]


class SessionOut(BaseModel):
    id: str
    device: str
    created_at: str
    expires_at: str
    current: bool


class SessionsOut(BaseModel):
    sessions: list[SessionOut]


class PasswordIn(Body):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class DeleteAccountIn(Body):
    password: str = Field(min_length=1, max_length=1024)
