"""Entity ids keep the original's form: random 10-character [A-Z0-9] strings, opaque to clients."""

from __future__ import annotations

import re
import secrets
import string

ALPHABET = string.ascii_uppercase + string.digits
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def random_id(length: int = 10) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))
