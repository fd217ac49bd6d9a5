"""Entity ids keep the original's form: random 10-character [A-Z0-9] strings, opaque to clients. Ids and
event ids a worker derives from what caused it are the same every time that cause is handled."""

from __future__ import annotations

import secrets
import string
import uuid

ALPHABET = string.ascii_uppercase + string.digits


def random_id(length: int = 10) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def id_from_uuid(value: uuid.UUID, length: int = 10) -> str:
    """A ``length``-character id spelled from a uuid's bits: the same uuid always gives the same id."""
    number = value.int
    out = []
    for _ in range(length):
        number, r = divmod(number, len(ALPHABET))
        out.append(ALPHABET[r])
    return "".join(out)


def derived_id(cause: uuid.UUID | None, tag: str) -> str:
    """A 10-character id that is the same every time the same cause is handled (redelivery-safe); random
    when there is no cause."""
    return id_from_uuid(uuid.uuid5(cause or uuid.uuid4(), tag))


def derived_event_id(cause: uuid.UUID | None, tag: str) -> uuid.UUID:
    """An event id that is the same every time the same cause is handled; random when there is no cause."""
    return uuid.uuid5(cause, tag) if cause else uuid.uuid4()
