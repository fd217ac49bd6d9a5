"""The rules of each entity kind (reference §3-§5): its schema, the fields a user may edit, server-set
fields, state rules and cascades. Pure decisions over plain dicts; the service does the appends."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

from events.store import EventStore
from events.streams import (
    action,
    dataset,
    datastore,
    engine,
    event,
    subscription,
    trigger,
    workflow,
    workflow_instance,
)
from events.types import Metadata
from projections.reads import EntityReader
from services.commands.auth import Principal
from services.commands.secret_args import (
    Secrets,
    SecretWrite,
    hold_secrets,
    kept_secrets,
    scrub,
    validation_schema,
    without_null_secrets,
)
from services.domain import schemas, trigger_graph
from services.domain.cron import CronError, validate_cron_args
from services.domain.errors import BadRequest


class TaskDefinitions(Protocol):
    """ECS task definitions of engines (services/adapters/ecs.py)."""

    def register(self, definition: dict[str, Any]) -> str: ...

    def deregister(self, arn: str) -> None: ...


class EntityContext(Protocol):
    """What the kinds' rules need beyond the store, built by the composition root: the secrets store, the
    ECS task definitions (None without a cluster), where datastores' S3 folders go, the task memory cap."""

    @property
    def secrets(self) -> Secrets: ...

    @property
    def ecs(self) -> TaskDefinitions | None: ...

    @property
    def s3_datastores_root(self) -> str: ...

    @property
    def max_task_memory_mb(self) -> int: ...


class EntityService(Protocol):
    """What a kind's rules use of the entity service (services/commands/entities.py): the read models and
    the context of effects outside the log."""

    @property
    def store(self) -> EventStore: ...

    @property
    def reader(self) -> EntityReader: ...

    @property
    def context(self) -> EntityContext: ...


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _validate(data: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    try:
        return schemas.default_and_validate(data, schema)
    except schemas.SchemaValidationError as exc:
        raise BadRequest(str(exc)) from exc


class Kind:
    category = ""
    created: Any = None
    updated: Any = None
    deleted: Any = None
    editable: frozenset[str] | None = None  # None: a PUT replaces every field (engine, dataset)
    default_order = "desc"
    unique_name = False
    states_editable_from: frozenset[str] | None = None  # the states a PUT/PATCH is allowed in

    def schema(self, svc: EntityService, data: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def prepare_batch(self, svc: EntityService, items: list[dict[str, Any]], who: Principal,
                      parent: Any, ids: list[str]) -> list[dict[str, Any]]:
        for data, entity_id in zip(items, ids):
            self.prepare(svc, data, who, parent, entity_id)
        return items

    def prepare(self, svc: EntityService, data: dict[str, Any], who: Principal, parent: Any,
                entity_id: str) -> None:
        data["user_id"] = who.user_id

    def validate(self, svc: EntityService, data: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
        data = _validate(data, self.schema(svc, data))
        if before is not None:
            self.check_transition(before, data)
        return data

    def validate_update(self, svc: EntityService, entity_id: str, data: dict[str, Any],
                        before: dict[str, Any]) -> dict[str, Any]:
        """``validate`` for an update of the entity ``entity_id``."""
        return self.validate(svc, data, before)

    def check_transition(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        if self.states_editable_from is not None and before.get("state") not in self.states_editable_from:
            allowed = " or ".join(sorted(self.states_editable_from))
            raise BadRequest(f"state: a {self.category} can be changed only while {allowed}, not {before.get('state')}")

    def merge(self, svc: EntityService, current: dict[str, Any], new: dict[str, Any],
              who: Principal) -> dict[str, Any]:
        known = set(self.schema(svc, current).get("properties", {}))  # non-editable fields come from current
        unknown = sorted(set(new) - known)
        if unknown:
            raise BadRequest(f"data: unknown field(s): {', '.join(unknown)}")
        if self.editable is None:
            merged = {k: v for k, v in new.items() if k != "user_id"}
            merged["user_id"] = current.get("user_id")
            return merged
        merged = dict(current)
        for name in self.editable:
            if name in new:
                merged[name] = new[name]
            else:
                merged.pop(name, None)
        return merged

    def cascade(self, svc: EntityService, entity_id: str) -> list[tuple[str, str]]:
        return []

    def check_links(self, svc: EntityService, entity_id: str, data: dict[str, Any]) -> None:
        """Checks of the entity (validated, as it would be saved, with its id) against others of its kind."""

    def hold_secrets(self, svc: EntityService, entity_id: str, before: dict[str, Any] | None,
                     data: dict[str, Any], meta: Metadata, cause: uuid.UUID | None,
                     ) -> tuple[dict[str, Any], SecretWrite | None]:
        """Validated ``data`` split into what the log records and the secret values the write holds back
        (their references go in the write's append; the values to the secrets store once it committed)."""
        return data, None

    # Effects outside the log (ECS), run around the append: ``before_*`` may change the data to record,
    # ``undo`` compensates when the append then fails, ``after_*`` runs once the append committed.
    def before_write(self, svc: EntityService, before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any]:
        return after

    def undo(self, svc: EntityService, before: dict[str, Any] | None, after: dict[str, Any]) -> None:
        return None

    def after_write(self, svc: EntityService, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        return None


class EngineKind(Kind):
    category = "engine"
    created, updated, deleted = engine.EngineCreated, engine.EngineUpdated, engine.EngineDeleted
    default_order = "asc"
    unique_name = True

    def schema(self, svc: EntityService, data: dict[str, Any]) -> dict[str, Any]:
        return schemas.ENGINE_SCHEMA

    def validate(self, svc: EntityService, data: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
        data = super().validate(svc, data, before)
        for field in ("options_json_schema",):
            if data.get(field) is not None:
                _check_declared(field, data[field])
        for i, action_type in enumerate(data.get("supported_action_types") or []):
            if action_type.get("params_json_schema") is not None:
                _check_declared(f"supported_action_types.{i}.params_json_schema", action_type["params_json_schema"])
        limit = svc.context.max_task_memory_mb
        definition = data.get("ecs_task_definition") or {}
        memory = sum(int(c.get("memory") or 0) for c in definition.get("containerDefinitions") or [])
        if memory > limit:
            raise BadRequest(f"ecs_task_definition: containers ask for {memory} MB in all; the limit is {limit} MB")
        return data

    def before_write(self, svc: EntityService, before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any]:
        ecs = svc.context.ecs
        definition = after.get("ecs_task_definition")
        if ecs is None or not definition:
            return after
        if before is not None and before.get("ecs_task_definition") == definition and before.get("ecs_task_definition_arn"):
            return {**after, "ecs_task_definition_arn": before["ecs_task_definition_arn"]}
        try:
            arn = ecs.register(definition)
        except Exception as exc:  # botocore's ClientError and ParamValidationError: the definition is refused
            raise BadRequest(f"ecs_task_definition: ECS refused it: {exc}") from exc
        return {**after, "ecs_task_definition_arn": arn}

    def undo(self, svc: EntityService, before: dict[str, Any] | None, after: dict[str, Any]) -> None:
        ecs = svc.context.ecs
        arn = after.get("ecs_task_definition_arn")
        if ecs is not None and arn and arn != (before or {}).get("ecs_task_definition_arn"):
            ecs.deregister(arn)

    def after_write(self, svc: EntityService, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        ecs = svc.context.ecs
        old = (before or {}).get("ecs_task_definition_arn")
        if ecs is not None and old and old != (after or {}).get("ecs_task_definition_arn"):
            ecs.deregister(old)


def _check_declared(field: str, schema: Any) -> None:
    try:
        schemas.check_schema(schema)
    except schemas.SchemaValidationError as exc:
        raise BadRequest(f"{field}: not a valid JSON schema: {exc}") from exc


class DatasetKind(Kind):
    category = "dataset"
    created, updated, deleted = dataset.DatasetCreated, dataset.DatasetUpdated, dataset.DatasetDeleted
    default_order = "asc"
    unique_name = True

    def schema(self, svc: EntityService, data: dict[str, Any]) -> dict[str, Any]:
        return schemas.DATASET_SCHEMA

    def validate(self, svc: EntityService, data: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
        if isinstance(data.get("location"), str):
            data["location"] = data["location"].rstrip("/")
        return super().validate(svc, data, before)


def engine_by_name(svc: EntityService, name: Any) -> dict[str, Any]:
    found = svc.reader.find_by("engine", name=name) if isinstance(name, str) else []
    if not found:
        raise BadRequest(f"engine_name: unknown engine {name!r}")
    return found[0]["data"]


class DatastoreKind(Kind):
    category = "datastore"
    created, updated, deleted = datastore.DatastoreCreated, datastore.DatastoreUpdated, datastore.DatastoreDeleted
    editable = frozenset({"name", "host", "port", "connection_url", "state", "concurrency", "args", "extra_data", "tags"})

    def schema(self, svc: EntityService, data: dict[str, Any]) -> dict[str, Any]:
        return schemas.datastore_schema(engine_by_name(svc, data.get("engine_name")).get("options_json_schema"))

    def prepare(self, svc: EntityService, data: dict[str, Any], who: Principal, parent: Any,
                entity_id: str) -> None:
        super().prepare(svc, data, who, parent, entity_id)
        engine_by_name(svc, data.get("engine_name"))  # an unknown engine is named before anything else
        root = svc.context.s3_datastores_root
        base = f"{root}/{data.get('name')}/{data.get('engine_name')}"
        data["s3_artifacts_path"] = f"{base}/artifacts/{entity_id}"
        data["s3_logs_path"] = f"{base}/logs/{entity_id}"

    def validate(self, svc: EntityService, data: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
        """The whole body, secret args included (a required secret, its minLength). No error message holds
        a secret's value."""
        return self._validate_keeping(svc, data, before, set())

    def validate_update(self, svc: EntityService, entity_id: str, data: dict[str, Any],
                        before: dict[str, Any]) -> dict[str, Any]:
        """A secret an update leaves out (or sends as null, as a form round-trip of what GET served would) is
        kept, so it is neither required nor defaulted."""
        options = engine_by_name(svc, data.get("engine_name")).get("options_json_schema")
        if isinstance(data.get("args"), dict):
            data = {**data, "args": without_null_secrets(data["args"], options)}
        return self._validate_keeping(svc, data, before, kept_secrets(svc.store, entity_id, options, data.get("args")))

    def _validate_keeping(self, svc: EntityService, data: dict[str, Any], before: dict[str, Any] | None,
                          kept: set[str]) -> dict[str, Any]:
        options = engine_by_name(svc, data.get("engine_name")).get("options_json_schema")
        try:
            validated = _validate(data, schemas.datastore_schema(validation_schema(options, kept)))
        except BadRequest as exc:
            raise BadRequest(scrub(exc.message, data.get("args"), options)) from None
        if before is not None:
            self.check_transition(before, validated)
        return validated

    def hold_secrets(self, svc: EntityService, entity_id: str, before: dict[str, Any] | None,
                     data: dict[str, Any], meta: Metadata, cause: uuid.UUID | None,
                     ) -> tuple[dict[str, Any], SecretWrite | None]:
        options = engine_by_name(svc, data.get("engine_name")).get("options_json_schema")
        return hold_secrets(svc.store, entity_id, before is None, options, data, meta, cause)

    def check_transition(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        if before.get("state") == after.get("state"):
            return
        if before.get("state") == "TEMPLATE":
            raise BadRequest("state: TEMPLATE state cannot be changed")
        if after.get("state") not in ("ACTIVE", "INACTIVE", "DONE"):
            raise BadRequest(f"state: a datastore can be set to ACTIVE, INACTIVE or DONE, not {after.get('state')}")


class ActionKind(Kind):
    category = "action"
    created, updated, deleted = action.ActionCreated, action.ActionUpdated, action.ActionDeleted
    editable = frozenset({
        "name", "args", "tags", "progress", "order_idx", "on_failure", "on_failure_email", "on_success_email",
        "extra_data",
    })

    def schema(self, svc: EntityService, data: dict[str, Any]) -> dict[str, Any]:
        found = engine_by_name(svc, data.get("engine_name"))
        for action_type in found.get("supported_action_types") or []:
            if action_type.get("name") == data.get("action_type_name"):
                return schemas.action_schema(action_type.get("params_json_schema"))
        raise BadRequest(f'action_type_name: unknown action: "{data.get("action_type_name")}"')

    def prepare_batch(self, svc: EntityService, items: list[dict[str, Any]], who: Principal,
                      parent: Any, ids: list[str]) -> list[dict[str, Any]]:
        category, parent_id = parent
        if category == "datastore":
            store_data = svc.reader.data("datastore", parent_id)
            existing = svc.reader.find_by("action", datastore_id=parent_id)
            next_idx = max([float(a["data"].get("order_idx") or 0) for a in existing] or [0]) + 1
            for data in items:
                data.update(datastore_id=parent_id, state="HAS_NEVER_RUN", engine_name=store_data.get("engine_name"))
                data.pop("workflow_id", None)
                if not data.get("order_idx"):
                    data["order_idx"] = next_idx
                    next_idx += 1
                data["user_id"] = who.user_id
        else:
            flow = svc.reader.data("workflow", parent_id)
            for index, data in enumerate(items):
                data.update(workflow_id=parent_id, state="TEMPLATE", engine_name=flow.get("engine_name"))
                data.pop("datastore_id", None)
                if data.get("order_idx") is None:
                    data["order_idx"] = index
                data["user_id"] = who.user_id
        for data in items:
            if data.get("args") is None:
                data["args"] = {}
        return items


class WorkflowKind(Kind):
    category = "workflow"
    created, updated, deleted = workflow.WorkflowCreated, workflow.WorkflowUpdated, workflow.WorkflowDeleted
    editable = frozenset({
        "name", "state", "concurrency", "on_failure", "on_failure_email", "on_success_email", "on_started_email",
        "retries_on_failure", "tags",
    })
    states_editable_from = frozenset({"ACTIVE", "INACTIVE"})

    def schema(self, svc: EntityService, data: dict[str, Any]) -> dict[str, Any]:
        return schemas.WORKFLOW_SCHEMA

    def prepare(self, svc: EntityService, data: dict[str, Any], who: Principal, parent: Any,
                entity_id: str) -> None:
        super().prepare(svc, data, who, parent, entity_id)
        store_data = svc.reader.data("datastore", parent)
        data.update(datastore_id=parent, engine_name=store_data.get("engine_name"))
        if store_data.get("state") == "ACTIVE":
            data["concurrency"] = 1  # instances on one real datastore run one at a time

    def check_transition(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        super().check_transition(before, after)
        if after.get("state") not in ("ACTIVE", "INACTIVE"):
            raise BadRequest(f"state: a workflow can be set to ACTIVE or INACTIVE, not {after.get('state')}")

    def cascade(self, svc: EntityService, entity_id: str) -> list[tuple[str, str]]:
        pairs = [("action", a["id"]) for a in svc.reader.find_by("action", workflow_id=entity_id)]
        pairs += [("workflow_instance", i["id"]) for i in svc.reader.find_by("workflow_instance", workflow_id=entity_id)]
        return pairs


class WorkflowInstanceKind(Kind):
    category = "workflow_instance"
    created = workflow_instance.WorkflowInstanceCreated
    updated = workflow_instance.WorkflowInstanceUpdated
    deleted = workflow_instance.WorkflowInstanceDeleted

    def schema(self, svc: EntityService, data: dict[str, Any]) -> dict[str, Any]:
        return schemas.WORKFLOW_INSTANCE_SCHEMA

    def cascade(self, svc: EntityService, entity_id: str) -> list[tuple[str, str]]:
        return [("action", a["id"]) for a in svc.reader.find_by("action", workflow_instance_id=entity_id)]


class TriggerKind(Kind):
    category = "trigger"
    created, updated, deleted = trigger.TriggerCreated, trigger.TriggerUpdated, trigger.TriggerDeleted
    editable = frozenset({"name", "workflow_ids", "args", "state", "tags", "extra_data"})

    def schema(self, svc: EntityService, data: dict[str, Any]) -> dict[str, Any]:
        name = data.get("trigger_type_name")
        found = schemas.trigger_type(name) if isinstance(name, str) else None
        if found is None:
            raise BadRequest(f"trigger_type_name: unknown trigger type {name!r}")
        return schemas.trigger_schema(found.params_json_schema)

    def validate(self, svc: EntityService, data: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
        data = super().validate(svc, data, before)
        if data.get("trigger_type_name") == "scheduled":
            try:
                validate_cron_args(data.get("args") or {})
            except CronError as exc:
                raise BadRequest(f"args.{exc}") from exc
        if data.get("trigger_type_name") == "subscription_batch":
            subscription_id = (data.get("args") or {}).get("subscription_id")
            if svc.reader.row("subscription", str(subscription_id)) is None:
                raise BadRequest(f"args.subscription_id: subscription {subscription_id!r} does not exist")
        return data

    def check_links(self, svc: EntityService, entity_id: str, data: dict[str, Any]) -> None:
        """A trigger that would fire itself is refused, naming the loop (services/domain/trigger_graph.py)."""
        if data.get("trigger_type_name") not in trigger_graph.LOOPING_TYPES:
            return
        others = [trigger_graph.links(t["id"], t["data"]) for kind in trigger_graph.LOOPING_TYPES
                  for t in svc.reader.find_by("trigger", trigger_type_name=kind)]
        refused = trigger_graph.loop_refusal(others, trigger_graph.links(entity_id, data))
        if refused is not None:
            raise BadRequest(refused)

    def prepare(self, svc: EntityService, data: dict[str, Any], who: Principal, parent: Any,
                entity_id: str) -> None:
        super().prepare(svc, data, who, parent, entity_id)
        name = data.get("trigger_type_name")
        if isinstance(name, str) and schemas.trigger_type(name) is not None and not schemas.storable(name):
            raise BadRequest(f"trigger_type_name: {name} triggers cannot be saved")
        tags = data.get("tags")
        data["tags"] = [*(tags if isinstance(tags, list) else []), uuid.uuid4().hex]


class SubscriptionKind(Kind):
    category = "subscription"
    created = subscription.SubscriptionCreated
    updated = subscription.SubscriptionUpdated
    deleted = subscription.SubscriptionDeleted
    editable = frozenset({"name", "state", "on_failure_email", "on_success_email", "tags"})
    states_editable_from = frozenset({"ACTIVE", "INACTIVE"})

    def schema(self, svc: EntityService, data: dict[str, Any]) -> dict[str, Any]:
        return schemas.SUBSCRIPTION_SCHEMA

    def prepare(self, svc: EntityService, data: dict[str, Any], who: Principal, parent: Any,
                entity_id: str) -> None:
        super().prepare(svc, data, who, parent, entity_id)
        svc.reader.data("dataset", parent)  # 404 for an unknown dataset
        data.update(dataset_id=parent, state="QUEUED", queued_time=now_iso())

    def validate(self, svc: EntityService, data: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
        data = super().validate(svc, data, before)
        regex = data.get("s3_path_regex_filter")
        if regex is not None:
            try:
                re.compile(regex)
            except re.error as exc:
                raise BadRequest(f"s3_path_regex_filter: {regex!r} is not a regular expression: {exc}") from exc
        return data

    def check_transition(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        super().check_transition(before, after)
        if after.get("state") not in ("ACTIVE", "INACTIVE"):
            raise BadRequest(f"state: a subscription can be set to ACTIVE or INACTIVE, not {after.get('state')}")


class EventKind(Kind):
    category = "event"
    created, updated, deleted = event.EventCreated, event.EventUpdated, event.EventDeleted
    editable = frozenset({"name", "description", "state", "tags"})

    def schema(self, svc: EntityService, data: dict[str, Any]) -> dict[str, Any]:
        return schemas.EVENT_SCHEMA


KINDS: dict[str, Kind] = {
    k.category: k
    for k in (EngineKind(), DatasetKind(), DatastoreKind(), ActionKind(), WorkflowKind(), WorkflowInstanceKind(),
              TriggerKind(), SubscriptionKind(), EventKind())
}
