"""dart's Python client for scripts (docs/client.md): ``Dart`` over the public REST API, typed entities
generated from the OpenAPI document, errors as exceptions. Imports nothing of the server (setup.cfg)."""

from services.client.client import Dart
from services.client.entity import ApiKey, Entity, LoggedEvent
from services.client.errors import (
    BadRequest,
    Conflict,
    DartApiError,
    Forbidden,
    NotFound,
    ServerError,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
    Unreachable,
    WaitTimeout,
)
from services.client.transport import NO_RETRIES, RetryPolicy, Transport

__all__ = [
    "NO_RETRIES", "ApiKey", "BadRequest", "Conflict", "Dart", "DartApiError", "Entity", "Forbidden", "LoggedEvent",
    "NotFound", "RetryPolicy", "ServerError", "TooManyRequests", "Transport", "Unauthorized", "Unprocessable",
    "Unreachable", "WaitTimeout",
]
