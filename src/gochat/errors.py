"""One error tree. Each error knows its machine code, HTTP status and WebSocket close code.

Services raise these; the REST and WebSocket edges translate them, nothing else does.
"""

from __future__ import annotations

from typing import ClassVar


class GoChatError(Exception):
    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "internal error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class InvalidRequest(GoChatError):
    code = "invalid_request"
    status = 422
    default_message = "the request is not valid"

    def __init__(self, message: str | None = None, fields: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.fields = fields or []


class InvalidCredentials(GoChatError):
    code = "invalid_credentials"
    status = 401
    default_message = "wrong username or password"


class InvalidToken(GoChatError):
    code = "invalid_token"
    status = 401
    default_message = "the token is missing, invalid, expired or revoked"


class Forbidden(GoChatError):
    code = "forbidden"
    status = 403
    default_message = "you may not do that"


class NotFound(GoChatError):
    code = "not_found"
    status = 404
    default_message = "not found"


class Conflict(GoChatError):
    code = "conflict"
    status = 409
    default_message = "conflict"


class UsernameTaken(Conflict):
    code = "username_taken"
    default_message = "that username is taken"


class TooLarge(GoChatError):
    code = "too_large"
    status = 413
    default_message = "too large"


class UnsupportedMediaType(GoChatError):
    code = "unsupported_media_type"
    status = 415
    default_message = "this type of file is not accepted"


class RateLimited(GoChatError):
    code = "rate_limited"
    status = 429
    default_message = "too many requests; slow down"

    def __init__(self, retry_after_s: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, retry_after_s)


class Unavailable(GoChatError):
    """A dependency (database, broker) is down: the client should retry later."""

    code = "unavailable"
    status = 503
    default_message = "temporarily unavailable; retry"
