"""Events of datastore secret streams (``datastore_secrets-<datastore id>``): where a datastore's secret args
are kept. Each event holds the whole current map of references (a name and version in the secrets store),
never a value, so a check-out reads only the stream's last event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from events.types import Event

CATEGORY = "datastore_secrets"


@dataclass(frozen=True)
class DatastoreSecretsStored(Event):
    """Secret args were set or rotated. ``secrets``: arg name -> {"name", "version"} for every secret the
    datastore now has; ``changed``: the arg names this write set (a rotation names the ones it replaced)."""

    type_name = "DatastoreSecretsStored"
    category = CATEGORY
    secrets: dict[str, Any]
    changed: list[str]


EVENTS = (DatastoreSecretsStored,)
