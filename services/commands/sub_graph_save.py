"""``POST /graph/sub_graph`` (reference §5.10): an entity map of unsaved entities, saved as ONE append of all their
created events, or not at all.

Each entity goes through its kind's own rules (prepare, validate, links, secrets, unique names), exactly as its
own create would, against the read models *as they will be after the save*: an overlay answers for the entities
of this save first, so a new workflow finds its new datastore and a new action its new workflow. Placeholder
ids (``UNSAVED-…``; ``PARENT-…`` and ``CHILD-…`` for the entity the recipe hangs from, given in
``related_entity_data``) are rewritten to the new ids in every reference field. Existing triggers the recipe
hangs from are updated in the same append (a new workflow added to a trigger's ``workflow_ids``; a new
trigger to a super trigger's ``completed_trigger_ids``). The effects of the creates (a datastore's activation,
a subscription's generation, a scheduled trigger's first fire, the next action) follow from the created events,
as for every other create. One refused entity is a 400 naming it and its field, and nothing is appended.
"""

from __future__ import annotations

import copy
import uuid
from types import SimpleNamespace
from typing import Any

from events.streams.trigger import TriggerUpdated
from events.types import ExpectedVersion, Metadata, NewEvent, StreamAppend
from projections.entities import with_nulls
from projections.reads import EntityReader
from services.commands.auth import Principal
from services.commands.entities import check_envelope
from services.commands.kinds import KINDS
from services.commands.retry import retry_on_conflict
from services.domain.errors import BadRequest, NotFound
from services.domain.graph import (
    CHILD,
    GRAPH_TYPES,
    PARENT,
    UNSAVED,
    is_placeholder,
    references_of,
    split_node_id,
)
from services.domain.ids import random_id

# Saved in this order, so what an entity's rules look up (its datastore, workflow, dataset) is there first.
ORDER = ("datastore", "dataset", "event", "workflow", "subscription", "action", "trigger")
MAX_ENTITIES = 1000
BODY_FIELDS = {"unsaved_entities", "related_entity_data"}


class _Overlay(EntityReader):
    """The entity reads the kinds' rules make, answered from this save's entities first."""

    def __init__(self, reader: EntityReader) -> None:
        super().__init__(reader.store)
        self.base = reader
        self.pending: dict[str, dict[str, dict[str, Any]]] = {}

    def add(self, category: str, entity_id: str, data: dict[str, Any]) -> None:
        self.pending.setdefault(category, {})[entity_id] = data

    def row(self, category: str, entity_id: str, conn: Any = None) -> Any | None:
        data = self.pending.get(category, {}).get(entity_id)
        if data is None:
            return self.base.row(category, entity_id, conn)
        return SimpleNamespace(id=entity_id, version=0, created=None, updated=None, data=data,
                               state=data.get("state"), name=data.get("name"))

    def get(self, category: str, entity_id: str) -> dict[str, Any]:
        data = self.pending.get(category, {}).get(entity_id)
        if data is None:
            return self.base.get(category, entity_id)
        return {"id": entity_id, "version_id": 0, "created": None, "updated": None,
                "data": with_nulls(category, data)}

    def data(self, category: str, entity_id: str) -> dict[str, Any]:
        return self.get(category, entity_id)["data"]

    def find_by(self, category: str, **fields: Any) -> list[dict[str, Any]]:
        found = self.base.find_by(category, **fields)
        for entity_id, data in self.pending.get(category, {}).items():
            if all(data.get(k) == v or (v is not None and str(data.get(k)) == str(v)) for k, v in fields.items()):
                found.append(self.get(category, entity_id))
        return found


class _Service:
    """What a kind's rules use of the entity service (services/commands/kind_base.py), over the overlay."""

    def __init__(self, entities: Any, overlay: _Overlay) -> None:
        self.store = entities.store
        self.reader: EntityReader = overlay
        self.base: EntityReader = entities.reader
        self.context = entities.context


def save_sub_graph(entities: Any, body: Any, who: Principal) -> dict[str, Any]:
    """Save the map; ``{node_id: entity}`` of what was created. ``entities`` is the EntityService."""
    unsaved, related = _parse(body)
    return retry_on_conflict(lambda: _attempt(entities, unsaved, related, who), what="sub_graph")


def _parse(body: Any) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object with unsaved_entities")
    unknown = sorted(set(body) - BODY_FIELDS)
    if unknown:
        raise BadRequest(f"body: unknown field(s): {', '.join(unknown)}")
    unsaved = body.get("unsaved_entities")
    if not isinstance(unsaved, dict):
        raise BadRequest("unsaved_entities: required, a JSON object of <type>-UNSAVED-<id> keys")
    if len(unsaved) > MAX_ENTITIES:
        raise BadRequest(f"unsaved_entities: at most {MAX_ENTITIES} entities in one save")
    related = body.get("related_entity_data")
    related = {} if related is None else related
    if not isinstance(related, dict):
        raise BadRequest("related_entity_data: must be a JSON object")
    parsed: dict[str, dict[str, Any]] = {}
    for key, entity in unsaved.items():
        entity_type, entity_id = split_node_id(key)
        if entity_type not in GRAPH_TYPES or not is_placeholder(entity_id):
            raise BadRequest(f"unsaved_entities: {key!r} is not <type>-UNSAVED-<id> with a type of "
                             f"{', '.join(GRAPH_TYPES)}")
        try:
            check_envelope(entity)
        except BadRequest as exc:
            raise BadRequest(f"{key}: {exc.message}") from None
        parsed[key] = entity
    for key, entry in related.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("entity_id"), str) \
                or not isinstance(entry.get("entity_type"), str):
            raise BadRequest(f"related_entity_data.{key}: must be an object with entity_type and entity_id")
        edge = entry.get("edge")
        if edge is not None and not isinstance(edge, dict):
            raise BadRequest(f"related_entity_data.{key}.edge: must be an object")
    return parsed, related


def _attempt(entities: Any, unsaved: dict[str, dict[str, Any]], related: dict[str, dict[str, Any]],
             who: Principal) -> dict[str, Any]:
    # PARENT-… and CHILD-… entities stand for the existing entity the recipe hangs from: never created.
    new_keys = sorted((k for k in unsaved if split_node_id(k)[1].startswith(f"{UNSAVED}-")),
                      key=lambda k: (ORDER.index(split_node_id(k)[0]), k))
    ids = {split_node_id(k): random_id() for k in new_keys}
    meta = Metadata(actor=who.user_id)
    overlay = _Overlay(entities.reader)
    svc = _Service(entities, overlay)
    created: list[tuple[str, str, str, dict[str, Any], uuid.UUID]] = []  # key, type, id, data, event id
    appends: list[StreamAppend] = []
    secret_writes: list[Any] = []
    names: set[tuple[str, str]] = set()
    for key in new_keys:
        entity_type, placeholder = split_node_id(key)
        kind = KINDS[entity_type]
        entity_id = ids[(entity_type, placeholder)]
        event_id = uuid.uuid4()
        try:
            data = _resolved(entity_type, copy.deepcopy(unsaved[key]["data"]), ids, related)
            prepared = kind.prepare_batch(svc, [data], who, _parent(entity_type, data), [entity_id])[0]
            validated = kind.validate(svc, prepared, None)
            kind.check_links(svc, entity_id, validated)
            if kind.unique_name:
                if (entity_type, validated["name"]) in names:
                    raise BadRequest(f"name: {entity_type} name {validated['name']!r} is twice in this save")
                names.add((entity_type, validated["name"]))
                appends.append(entities._claim(kind, validated["name"], entity_id, meta, event_id))
        except NotFound as exc:
            raise BadRequest(f"{key}: {exc.entity} {exc.entity_id!r} does not exist") from None
        except BadRequest as exc:
            raise BadRequest(f"{key}: {exc.message}") from None
        recorded, secret = kind.hold_secrets(svc, entity_id, None, validated, meta, event_id)
        if secret is not None:
            secret_writes.append(secret)
        overlay.add(entity_type, entity_id, recorded)
        created.append((key, entity_type, entity_id, recorded, event_id))
    appends += _related_trigger_updates(svc, related, ids, meta)
    written: list[tuple[Any, dict[str, Any]]] = []  # every check passed: only now touch anything outside the log
    try:
        for _, entity_type, _, data, _ in created:
            written.append((KINDS[entity_type], KINDS[entity_type].before_write(svc, None, data)))
    except BaseException:
        for kind, data in written:
            kind.undo(svc, None, data)
        raise
    appends += [StreamAppend(f"{t}-{i}", ExpectedVersion.NO_STREAM, [NewEvent(kind.created(data), meta, e)])
                for (_, t, i, _, e), (kind, data) in zip(created, written)]
    appends += [write.append for write in secret_writes]
    if not appends:
        return {}
    try:
        recorded_events = entities.store.append(*appends)
    except BaseException:
        for kind, data in written:
            kind.undo(svc, None, data)
        raise
    for write in secret_writes:
        write.commit(entities.context.secrets)
    for kind, data in written:
        kind.after_write(svc, None, data)
    by_stream = {e.stream_id: e for e in recorded_events}
    return {key: _as_created(by_stream[f"{t}-{i}"]) for key, t, i, _, _ in created}


def _resolve_id(target: str, value: str, ids: dict[tuple[str, str], str], related: dict[str, dict[str, Any]],
                hops: int = 0) -> str:
    if not is_placeholder(value):
        return value
    if value.startswith(f"{UNSAVED}-"):
        if (target, value) not in ids:
            raise BadRequest(f"{value!r} is not a {target} of unsaved_entities")
        return ids[(target, value)]
    entry = related.get(f"{target}-{value}")
    if entry is None or hops > 1:
        raise BadRequest(f"{value!r}: related_entity_data names no {target}-{value}")
    return _resolve_id(target, entry["entity_id"], ids, related, hops + 1)


def _resolved(entity_type: str, data: dict[str, Any], ids: dict[tuple[str, str], str],
              related: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``data`` with every placeholder in its reference fields replaced by the real id."""
    for ref in references_of(entity_type):
        value = ref.get(data)
        try:
            if ref.many and isinstance(value, list):
                ref.set(data, list(dict.fromkeys(
                    _resolve_id(ref.target, v, ids, related) if isinstance(v, str) else v for v in value)))
            elif isinstance(value, str):
                ref.set(data, _resolve_id(ref.target, value, ids, related))
        except BadRequest as exc:
            raise BadRequest(f"{ref.field}: {exc.message}") from None
    return data


def _parent(entity_type: str, data: dict[str, Any]) -> Any:
    """What the kind's create takes as its parent (as the nested create routes give it)."""
    if entity_type == "workflow":
        if not isinstance(data.get("datastore_id"), str):
            raise BadRequest("datastore_id: a workflow needs its datastore")
        return data["datastore_id"]
    if entity_type == "subscription":
        if not isinstance(data.get("dataset_id"), str):
            raise BadRequest("dataset_id: a subscription needs its dataset")
        return data["dataset_id"]
    if entity_type == "action":
        if isinstance(data.get("workflow_id"), str):
            return ("workflow", data["workflow_id"])
        if isinstance(data.get("datastore_id"), str):
            return ("datastore", data["datastore_id"])
        raise BadRequest("workflow_id: an action needs a workflow_id (a template) or a datastore_id (ad hoc)")
    return None


def _related_trigger_updates(svc: _Service, related: dict[str, dict[str, Any]],
                             ids: dict[tuple[str, str], str], meta: Metadata) -> list[StreamAppend]:
    """The existing triggers a recipe hangs from, changed to take in the new entities (the original's
    ``update_related_triggers``): a PARENT trigger gets the new workflow among its workflow_ids, a CHILD super
    trigger the new trigger among its completed_trigger_ids."""
    kind = KINDS["trigger"]
    changed: dict[str, tuple[Any, dict[str, Any]]] = {}
    for key, entry in related.items():
        trigger_id, edge = entry["entity_id"], entry.get("edge") or {}
        if entry["entity_type"] != "trigger" or is_placeholder(trigger_id):
            continue
        if trigger_id not in changed:
            row = svc.base.row("trigger", trigger_id)
            if row is None:
                raise BadRequest(f"related_entity_data.{key}: trigger {trigger_id!r} does not exist")
            changed[trigger_id] = (row, copy.deepcopy(row.data))
        data = changed[trigger_id][1]
        try:
            if entry.get("relationship") == PARENT and edge.get("destination_type") == "workflow":
                workflow_id = _resolve_id("workflow", str(edge.get("destination_id")), ids, related)
                data["workflow_ids"] = list(dict.fromkeys([*(data.get("workflow_ids") or []), workflow_id]))
            elif entry.get("relationship") == CHILD and edge.get("source_type") == "trigger":
                if data.get("trigger_type_name") != "super":
                    raise BadRequest(f"trigger {trigger_id!r} is a {data.get('trigger_type_name')} trigger, "
                                     "not a super trigger")
                new_id = _resolve_id("trigger", str(edge.get("source_id")), ids, related)
                args = dict(data.get("args") or {})
                args["completed_trigger_ids"] = list(dict.fromkeys([*(args.get("completed_trigger_ids") or []),
                                                                    new_id]))
                data["args"] = args
        except BadRequest as exc:
            raise BadRequest(f"related_entity_data.{key}.edge: {exc.message}") from None
    appends = []
    for trigger_id, (row, data) in changed.items():
        try:
            validated = kind.validate(svc, data, row.data)
            kind.check_links(svc, trigger_id, validated)
        except BadRequest as exc:
            raise BadRequest(f"trigger-{trigger_id}: {exc.message}") from None
        changes = {k: v for k, v in validated.items() if row.data.get(k) != v}
        if changes:
            appends.append(StreamAppend(f"trigger-{trigger_id}", row.version,
                                        [NewEvent(TriggerUpdated(changes), meta)]))
    return appends


def _as_created(event: Any) -> dict[str, Any]:
    at = event.recorded_at.isoformat()
    return {"id": event.entity_id, "version_id": event.stream_version, "created": at, "updated": at,
            "data": with_nulls(event.category, event.data["data"])}
