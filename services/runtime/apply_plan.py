"""``dart apply``'s plan: the definitions (services/runtime/definitions.py) against what the server holds now,
as the creates, updates and deletes that would make the server match, every file checked first.

Entities are matched by kind and name (an action by its workflow and its place in it). An entity is changed only
where a field the file gives differs from the server's (fields the server keeps for itself are never compared),
so applying the same files twice plans nothing. Deletes are planned only with ``prune``, and only of entities
that ``dart apply`` created (their first event's source says so) or of template actions past a workflow's last.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from services.client import Dart, Entity
from services.domain.cron import CronError, validate_cron_args
from services.runtime.definitions import KINDS, ORDER, REFERENCES, Definition, DefinitionError

SOURCE_PREFIX = "dart apply"
# Fields the server keeps for itself (or a run or an engine sets): never written by files, never compared.
SERVER_FIELDS: dict[str, frozenset[str]] = {
    "datastore": frozenset({"user_id", "workflow_datastore_id", "workflow_id", "workflow_instance_id",
                            "s3_artifacts_path", "s3_logs_path", "extra_data"}),
    "dataset": frozenset({"user_id"}),
    "event": frozenset({"user_id"}),
    "workflow": frozenset({"user_id", "engine_name", "avg_runtime", "definition_commit"}),
    "action": frozenset({"user_id", "state", "datastore_id", "workflow_id", "workflow_action_id",
                         "workflow_instance_id", "first_in_workflow", "last_in_workflow", "queued_time",
                         "start_time", "end_time", "error_message", "progress", "ecs_task_arn", "avg_runtime",
                         "completed_runs", "extra_data", "attempt", "retry_of", "not_before"}),
    "trigger": frozenset({"user_id", "extra_data", "paused", "pause_note"}),
    "subscription": frozenset({"user_id", "state", "failed_time", "generating_time", "initial_active_time",
                               "message_id", "queued_time"}),
}
# The create request whose body (in the OpenAPI document) a kind's data is checked against
CREATE_BODIES = {"engine": "/api/1/engine", "dataset": "/api/1/dataset", "datastore": "/api/1/datastore",
                 "workflow": "/api/1/datastore/{entity_id}/workflow", "action": "/api/1/workflow/{entity_id}/action",
                 "trigger": "/api/1/trigger", "subscription": "/api/1/dataset/{entity_id}/subscription",
                 "event": "/api/1/event"}


@dataclass
class Change:
    op: str  # create, update, delete
    kind: str
    label: str
    file: str | None
    entity_id: str  # the server's id, or a placeholder (UNSAVED-n) for a create
    data: dict[str, Any] = field(default_factory=dict)  # what is sent: references as ids or placeholders
    diff: list[str] = field(default_factory=list)
    definition: Definition | None = None

    def line(self) -> str:
        mark = {"create": "+", "update": "~", "delete": "-"}[self.op]
        where = f"  ({self.file})" if self.file else ""
        detail = f": {'; '.join(self.diff)}" if self.diff else ""
        return f"  {mark} {self.label}{detail}{where}"


@dataclass
class Plan:
    changes: list[Change]
    kept: int  # entities of the files that need nothing
    left: list[str] = field(default_factory=list)  # on the server, not in the files (without prune: kept)

    def of(self, op: str) -> list[Change]:
        return [c for c in self.changes if c.op == op]

    def summary(self) -> str:
        return (f"{len(self.of('create'))} to create, {len(self.of('update'))} to update, "
                f"{len(self.of('delete'))} to delete, {self.kept} unchanged")

    def text(self) -> str:
        lines = [f"plan: {self.summary()}"] + [c.line() for c in self.changes]
        if self.left:
            lines.append(f"  not in the files, kept (--prune deletes what dart apply created): {', '.join(self.left)}")
        return "\n".join(lines)


class Server:
    """What the server holds of the kinds files define (run clones left out), read once per plan."""

    def __init__(self, dart: Dart) -> None:
        self.dart = dart
        self.engines = {e.data.name: e for e in dart.engines.list()}
        self.by_name: dict[str, dict[str, list[Entity[Any]]]] = {}
        for kind in KINDS.values():
            found: dict[str, list[Entity[Any]]] = {}
            for entity in dart.entities(kind).list():
                if getattr(entity.data, "workflow_instance_id", None):
                    continue  # a run's own datastore: not a definition
                found.setdefault(str(entity.data.name), []).append(entity)
            self.by_name[kind] = found
        self._actions: dict[str, list[Entity[Any]]] = {}

    def find(self, kind: str, name: str, where: str) -> Entity[Any] | None:
        found = self.by_name[kind].get(name) or []
        if len(found) > 1:
            raise DefinitionError(f"{where}: {len(found)} {kind}s on the server are named {name!r} "
                                  f"({', '.join(e.id for e in found)}); rename all but one")
        return found[0] if found else None

    def actions(self, workflow_id: str) -> list[Entity[Any]]:
        """A workflow's template actions in their order."""
        if workflow_id not in self._actions:
            found = self.dart.actions.list(filters=[f"workflow_id = {workflow_id}", "state = TEMPLATE"])
            self._actions[workflow_id] = sorted(found, key=lambda a: (a.data.order_idx or 0, a.id))
        return self._actions[workflow_id]

    def created_by_apply(self, kind: str, entity_id: str) -> bool:
        for event in self.dart.entities(kind).history(entity_id, page_size=1):
            return str(event.metadata.get("source") or "").startswith(SOURCE_PREFIX)
        return False


def make_plan(dart: Dart, definitions: list[Definition], *, prune: bool = False) -> Plan:
    """The plan, or DefinitionError naming the file, entity and field of the first problem found."""
    server = Server(dart)
    document = dart.openapi()
    ids = _ids(server, definitions)
    changes: list[Change] = []
    kept = 0
    by_key = {d.key: d for d in definitions}
    for definition in sorted(definitions, key=lambda d: (ORDER.index(d.kind), d.file, d.workflow or "", d.position)):
        data = _desired(definition, ids, server, by_key)
        _check(definition, data, server, document)
        entity_id, current = ids[definition.key]
        if current is None:
            changes.append(Change("create", definition.kind, definition.label, definition.file, entity_id, data,
                                  definition=definition))
            continue
        diff = _differences(definition.kind, data, current.data.to_json(nulls=True))
        if diff:
            body = {k: v for k, v in current.data.to_json(nulls=True).items()
                    if k in SERVER_FIELDS.get(definition.kind, ()) and v is not None}
            changes.append(Change("update", definition.kind, definition.label, definition.file, entity_id,
                                  {**body, **data}, diff, definition))
        else:
            kept += 1
    plan = Plan(changes, kept)
    _leftovers(plan, server, definitions, ids, prune)
    return plan


def _ids(server: Server, definitions: list[Definition]) -> dict[tuple[str, ...], tuple[str, Entity[Any] | None]]:
    """Each definition's server id and entity, or a placeholder id and None for one to create."""
    ids: dict[tuple[str, ...], tuple[str, Entity[Any] | None]] = {}
    count = 0
    for definition in sorted(definitions, key=lambda d: ORDER.index(d.kind)):
        current: Entity[Any] | None = None
        if definition.kind == "action":
            workflow_id, workflow = ids[("workflow", str(definition.workflow))]
            templates = server.actions(workflow_id) if workflow is not None else []
            current = templates[definition.position] if definition.position < len(templates) else None
        else:
            current = server.find(definition.kind, definition.name, definition.where("name"))
        if current is None:
            count += 1
            ids[definition.key] = (f"UNSAVED-{count}", None)
        else:
            ids[definition.key] = (current.id, current)
    return ids


def _desired(definition: Definition, ids: dict[tuple[str, ...], tuple[str, Entity[Any] | None]], server: Server,
             by_key: dict[tuple[str, ...], Definition]) -> dict[str, Any]:
    """The data to send: the file's, with every name resolved to an id (or a placeholder)."""
    data = copy.deepcopy(definition.data)
    for path, names in definition.refs.items():
        ref = next(r for r in REFERENCES if r.owner == definition.kind and r.path == path)
        dotted = ".".join(ref.file_path)
        resolved = [_resolve(ref.target, n, ids, server, definition.where(dotted))
                    for n in (names if ref.many else [names])]
        holder = data
        for part in path[:-1]:
            holder = holder.setdefault(part, {})
        holder[path[-1]] = resolved if ref.many else resolved[0]
    if definition.kind == "action":
        workflow_id, _ = ids[("workflow", str(definition.workflow))]
        data["workflow_id"] = workflow_id
        data.setdefault("order_idx", definition.position)
        if "engine_name" not in data:
            data["engine_name"] = _workflow_engine(by_key[("workflow", str(definition.workflow))], by_key, server)
    return data


def _resolve(kind: str, name: str, ids: dict[tuple[str, ...], tuple[str, Entity[Any] | None]], server: Server,
             where: str) -> str:
    if (kind, name) in ids:
        return ids[(kind, name)][0]
    found = server.find(kind, name, where)
    if found is None:
        raise DefinitionError(f"{where}: no {kind} named {name!r} in the files or on the server")
    return found.id


def _workflow_engine(workflow: Definition, by_key: dict[tuple[str, ...], Definition], server: Server) -> Any:
    """The engine of the workflow's datastore: from its definition in the files, else the server's."""
    name = workflow.refs.get(("datastore_id",))
    if name is None:
        return None
    defined = by_key.get(("datastore", str(name)))
    if defined is not None:
        return defined.data.get("engine_name")
    found = server.find("datastore", str(name), workflow.where("datastore"))
    return found.data.engine_name if found is not None else None


def _check(definition: Definition, data: dict[str, Any], server: Server, document: dict[str, Any]) -> None:
    """Refuse before anything is written: an unknown engine or action type, a bad cron pattern, or data its
    create request's schema (the OpenAPI document's) refuses."""
    kind = definition.kind
    if kind == "datastore" and data.get("engine_name") not in server.engines:
        raise DefinitionError(definition.where("engine_name") + f": unknown engine {data.get('engine_name')!r} "
                              f"(registered: {', '.join(sorted(map(str, server.engines)))})")
    if kind == "action" and data.get("engine_name") in server.engines:
        engine = server.engines[data["engine_name"]]
        types = [t.get("name") for t in engine.data.supported_action_types or []]
        if data.get("action_type_name") not in types:
            raise DefinitionError(definition.where("action_type_name") + f": {data.get('action_type_name')!r} is "
                                  f"not an action of {data['engine_name']} ({', '.join(map(str, types))})")
    if kind == "trigger" and data.get("trigger_type_name") == "scheduled":
        try:
            validate_cron_args(data.get("args"))
        except CronError as exc:
            raise DefinitionError(definition.where("args.cron_pattern") + f": {exc}") from None
    schema = _request_schema(document, kind, data)
    if schema is None:
        sub = {"datastore": "engine_name", "action": "action_type_name", "trigger": "trigger_type_name"}.get(kind)
        raise DefinitionError(definition.where(sub or "") + f": {data.get(sub or '')!r} is not known to the server")
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        dotted = ".".join(str(p) for p in first.absolute_path) or "data"
        raise DefinitionError(definition.where(_file_field(kind, dotted)) + f": {first.message}")


def _file_field(kind: str, dotted: str) -> str:
    for ref in REFERENCES:
        if ref.owner == kind and ".".join(ref.path) == dotted:
            return ".".join(ref.file_path)
    return dotted


def _request_schema(document: dict[str, Any], kind: str, data: dict[str, Any]) -> dict[str, Any] | None:
    """The ``data`` schema of the kind's create body; for a datastore, action or trigger the alternative of
    its engine, action type or trigger type (None when there is none)."""
    body = document["paths"][CREATE_BODIES[kind]]["post"]["requestBody"]["content"]["application/json"]["schema"]
    if "oneOf" in body:
        body = body["oneOf"][0]
    schema = body["properties"]["data"]
    sub = {"datastore": "engine_name", "action": "action_type_name", "trigger": "trigger_type_name"}.get(kind)
    if "anyOf" not in schema or sub is None:
        return dict(schema)
    for alternative in schema["anyOf"]:
        same_type = (alternative.get("properties") or {}).get(sub, {}).get("const") == data.get(sub)
        if same_type and (kind != "action" or _fits_engine(alternative, data)):
            return dict(alternative)
    return None


def _fits_engine(alternative: dict[str, Any], data: dict[str, Any]) -> bool:
    """Engines may share an action type's name with other params: the alternative whose params take these."""
    args = (alternative.get("properties") or {}).get("args")
    return args is None or not list(jsonschema.Draft7Validator(args).iter_errors(data.get("args") or {}))


def _differences(kind: str, desired: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``field: server -> file`` for each field the file gives that the server holds otherwise."""
    ignored = SERVER_FIELDS.get(kind, frozenset())
    out = []
    for name, value in desired.items():
        if name in ignored:
            continue
        if not _same(value, current.get(name)):
            out.append(f"{name}: {_short(current.get(name))} -> {_short(value)}")
    return out


def _same(desired: Any, current: Any) -> bool:
    """Equal, where a dict the file gives matches a server dict holding at least its keys (the server fills
    schema defaults the file leaves out: an engine's args, a column's is_nullable)."""
    if isinstance(desired, dict) and isinstance(current, dict):
        return all(_same(v, current.get(k)) for k, v in desired.items())
    if isinstance(desired, list) and isinstance(current, list):
        return len(desired) == len(current) and all(_same(d, c) for d, c in zip(desired, current))
    if isinstance(desired, float) or isinstance(current, float):
        return isinstance(desired, (int, float)) and isinstance(current, (int, float)) and desired == current
    return bool(desired == current)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _leftovers(plan: Plan, server: Server, definitions: Iterable[Definition],
               ids: dict[tuple[str, ...], tuple[str, Entity[Any] | None]], prune: bool) -> None:
    """What the server holds that the files do not: deletes with ``prune`` (see the module's doc), else named."""
    defined = {entity_id for entity_id, current in ids.values() if current is not None}
    deletes: list[Change] = []
    for kind in reversed(ORDER):
        if kind == "action":
            for definition in definitions:
                if definition.kind != "workflow":
                    continue
                workflow_id, workflow = ids[definition.key]
                if workflow is None:
                    continue
                for action in server.actions(workflow_id):
                    if action.id not in defined:
                        label = f"action {definition.name}/{action.data.name} (#{(action.data.order_idx or 0) + 1})"
                        if prune:
                            deletes.append(Change("delete", "action", label, definition.file, action.id))
                        else:
                            plan.left.append(label)
            continue
        for name, entities in server.by_name.get(kind, {}).items():
            for entity in entities:
                if entity.id in defined:
                    continue
                if prune and server.created_by_apply(kind, entity.id):
                    deletes.append(Change("delete", kind, f"{kind} {name}", None, entity.id))
                else:
                    plan.left.append(f"{kind} {name}")
    plan.changes += deletes
