"""A datastore's secret args (design.md §3): validated with the rest of its body, recorded in the log only as
references (``datastore_secrets-<id>``), written to the secrets store once the append has committed, and
handed to the action's engine at check-out (a TEMPLATE's clone gets its template's)."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from events.store import EventStore
from events.streams.datastore_secrets import DatastoreSecretsStored
from events.types import ExpectedVersion, Metadata, NewEvent, StreamAppend
from services.domain.schemas import secret_properties

Refs = dict[str, dict[str, str]]  # arg name -> {"name": secret name, "version": version id}


class Secrets(Protocol):
    """Where secret values are kept (services/adapters/secrets.py, secrets_manager.py)."""

    def put(self, name: str, value: Any, version: str | None = None) -> None: ...

    def get(self, name: str, version: str | None = None) -> Any: ...


def secret_name(datastore_id: str, prop: str) -> str:
    """The original's name for a datastore's secret arg."""
    return f"dart-datastore-{datastore_id}-{prop}"


def stream_of(datastore_id: str) -> str:
    return f"datastore_secrets-{datastore_id}"


def current_refs(store: EventStore, datastore_id: str) -> tuple[int, Refs]:
    """(the references stream's version, the references now): one event read, whatever the history."""
    stream = stream_of(datastore_id)
    version = store.stream_version(stream)
    if version == 0:
        return 0, {}
    [last] = store.read_stream(stream, version, version)
    return version, dict(last.data["secrets"])


def validation_schema(options: dict[str, Any] | None, kept: set[str]) -> dict[str, Any] | None:
    """The engine's options schema for a write that keeps the secrets ``kept`` (stored, and not given again):
    they are no longer required, and get no default that would replace them."""
    if not options or not kept:
        return options
    schema = copy.deepcopy(options)
    if isinstance(schema.get("required"), list):
        schema["required"] = [name for name in schema["required"] if name not in kept]
    for name in kept:
        spec = (schema.get("properties") or {}).get(name)
        if isinstance(spec, dict):
            spec.pop("default", None)
    return schema


def kept_secrets(store: EventStore, datastore_id: str, options: dict[str, Any] | None,
                 args: Any) -> set[str]:
    """The secret args an update leaves out and the datastore already has: omitted means kept."""
    names = secret_properties(options)
    given = set(args) if isinstance(args, dict) else set()
    if not names - given:
        return set()
    return (names - given) & set(current_refs(store, datastore_id)[1])


def without_null_secrets(args: dict[str, Any], options: dict[str, Any] | None) -> dict[str, Any]:
    """``args`` without the secrets given as null: on an update, null means "keep", never "erase"."""
    names = secret_properties(options)
    return {k: v for k, v in args.items() if not (k in names and v is None)}


def scrub(message: str, args: Any, options: dict[str, Any] | None) -> str:
    """An error message without any secret value given in ``args`` (jsonschema quotes offending values,
    and a message about the args object as a whole quotes all of them)."""
    if not isinstance(args, dict):
        return message
    for name in secret_properties(options):
        value = args.get(name)
        if value is None or isinstance(value, bool):
            continue
        for shown in {str(value), repr(value)}:
            if shown:
                message = message.replace(shown, "***")
    return message


@dataclass
class SecretWrite:
    """Secret values a write holds back from the log: the append that records their references (it goes in
    the write's own append) and ``commit``, which puts the values in the store once that append committed."""

    append: StreamAppend
    values: dict[tuple[str, str], Any]

    def commit(self, secrets: Secrets) -> None:
        for (name, version), value in self.values.items():
            secrets.put(name, value, version)


def hold_secrets(store: EventStore, datastore_id: str, created: bool, options: dict[str, Any] | None,
                 data: dict[str, Any], meta: Metadata, cause: uuid.UUID | None) -> tuple[dict[str, Any],
                                                                                         SecretWrite | None]:
    """Validated datastore ``data`` split into what is recorded (args without secrets) and the secrets it
    sets. A given secret replaces the stored one (a rotation); a null one sets nothing. ``cause`` (the
    entity's created event id, when derived from an Idempotency-Key) makes versions and event id repeatable."""
    names = secret_properties(options)
    args = data.get("args")
    if not names or not isinstance(args, dict):
        return data, None
    given = {name: args[name] for name in names if args.get(name) is not None}
    recorded = {**data, "args": {k: v for k, v in args.items() if k not in names}}
    if not given:
        return recorded, None
    version, refs = (0, {}) if created else current_refs(store, datastore_id)
    refs = dict(refs)
    values: dict[tuple[str, str], Any] = {}
    for name, value in sorted(given.items()):
        secret_version = str(uuid.uuid5(cause, f"secret:{name}") if cause else uuid.uuid4())
        refs[name] = {"name": secret_name(datastore_id, name), "version": secret_version}
        values[(refs[name]["name"], secret_version)] = value
    event_id = uuid.uuid5(cause, "secrets") if cause else uuid.uuid4()
    expected = version if version else ExpectedVersion.NO_STREAM
    append = StreamAppend(stream_of(datastore_id), expected, [
        NewEvent(DatastoreSecretsStored(refs, sorted(given)), meta, event_id)])
    return recorded, SecretWrite(append, values)


def secret_args(store: EventStore, secrets: Secrets, datastore: dict[str, Any],
                options: dict[str, Any] | None) -> dict[str, Any]:
    """The secret args of a datastore envelope, for its engine at check-out: its own, else (a run's clone)
    its TEMPLATE's; a datastore from before references existed has unversioned values under the same names."""
    names = secret_properties(options)
    if not names:
        return {}
    owners = [str(datastore["id"])]
    template = (datastore.get("data") or {}).get("workflow_datastore_id")
    if template:
        owners.append(str(template))
    found: dict[str, Any] = {}
    for owner in owners:
        version, refs = current_refs(store, owner)
        for name in sorted(names - set(found)):
            ref = refs.get(name)
            if ref is not None:
                value = secrets.get(ref["name"], ref["version"])
            elif version == 0:
                value = secrets.get(secret_name(owner, name))  # written before references existed
            else:
                value = None  # removed, or never set
            if value is not None:
                found[name] = value
    return found
