"""Events of API key streams (`api_key-<key>`): who was given access, when, and when it was revoked.

Only a salted hash of the secret is recorded; the secret itself is shown once, to whoever created the key.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.streams.entity import EntityCreated, EntityDeleted, EntityUpdated

CATEGORY = "api_key"


@dataclass(frozen=True)
class ApiKeyCreated(EntityCreated):
    type_name = "ApiKeyCreated"
    category = CATEGORY


@dataclass(frozen=True)
class ApiKeyUpdated(EntityUpdated):
    type_name = "ApiKeyUpdated"
    category = CATEGORY


@dataclass(frozen=True)
class ApiKeyRevoked(EntityDeleted):
    type_name = "ApiKeyRevoked"
    category = CATEGORY


EVENTS = (ApiKeyCreated, ApiKeyUpdated, ApiKeyRevoked)
