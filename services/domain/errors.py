"""Domain errors a user can cause, each mapped to one HTTP status in the API (services/api/errors.py)."""

from __future__ import annotations


class DartError(Exception):
    status = 400

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class BadRequest(DartError):
    """Malformed input or a request the state rules refuse."""

    status = 400


class NotAuthenticated(DartError):
    status = 401


class Forbidden(DartError):
    status = 403


class NotFound(DartError):
    status = 404

    def __init__(self, entity: str, entity_id: str) -> None:
        self.entity = entity
        self.entity_id = entity_id
        super().__init__(f"{entity} {entity_id!r} not found")


class Unprocessable(DartError):
    """Well-formed, but contradicts an earlier request (an Idempotency-Key reused with another body)."""

    status = 422


class Conflict(DartError):
    """The client stated an expected version and the entity has moved on."""

    status = 409
