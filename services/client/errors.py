"""The client's exceptions: one per HTTP answer a script may want to tell apart, each carrying the server's
``error_message`` and status (``status`` None: no answer at all)."""

from __future__ import annotations

from typing import Any


class DartApiError(Exception):
    """dart answered with an error, or could not be reached at all.

    ``status`` is the HTTP status, or None when no response arrived (connection refused, reset, timeout).
    ``message`` is the server's ``error_message`` when it sent one; ``body`` the decoded answer.
    """

    def __init__(self, status: int | None, message: str, body: Any = None) -> None:
        self.status = status
        self.message = message
        self.body = body
        super().__init__(f"HTTP {status}: {message}" if status is not None else message)


class Unreachable(DartApiError):
    """No (complete) answer: refused, reset, timed out, or the connection dropped mid-answer."""


class BadRequest(DartApiError):
    """400: the request is malformed or a state rule refuses it; the message names the field."""


class Unauthorized(DartApiError):
    """401: no key, an unknown key or a wrong secret."""


class Forbidden(DartApiError):
    """403: the key's role may not do this (the message names the role needed)."""


class NotFound(DartApiError):
    """404: no such entity (or route)."""


class Conflict(DartApiError):
    """409: the entity is not at the version the client stated."""


class Unprocessable(DartApiError):
    """422: an Idempotency-Key used before by this key with another body."""


class TooManyRequests(DartApiError):
    """429: too many failed authentications from this address."""


class ServerError(DartApiError):
    """5xx: the server failed (503: it is overloaded or not ready)."""


class WaitTimeout(TimeoutError):
    """``wait_for_instance`` gave up: the instance had not ended within the timeout."""

    def __init__(self, message: str, instance: Any = None) -> None:
        super().__init__(message)
        self.instance = instance


_BY_STATUS: dict[int, type[DartApiError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 422: Unprocessable,
    429: TooManyRequests,
}


def error_for(status: int | None, message: str, body: Any = None) -> DartApiError:
    """The exception for an answer: by status, ServerError for any 5xx, Unreachable without one."""
    if status is None:
        return Unreachable(None, message, body)
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else DartApiError)
    return cls(status, message, body)
