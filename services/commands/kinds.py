"""The rules of each entity kind (reference §3-§5): its schema, the fields a user may edit, server-set
fields, state rules and cascades. Pure decisions over plain dicts; the service does the appends."""

from __future__ import annotations

import re
import uuid
from typing import Any

from events.streams import (
    action,
    event,
    subscription,
    trigger,
    workflow,
    workflow_instance,
)
from services.commands.auth import Principal
from services.commands.engine_kinds import DatasetKind, DatastoreKind, EngineKind, engine_by_name
from services.commands.kind_base import EntityService, Kind, now_iso
from services.commands.subgraph_definitions import SubgraphDefinitionKind
from services.domain import schemas, trigger_graph
from services.domain.cron import CronError, validate_cron_args
from services.domain.errors import BadRequest


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
        "retries_on_failure", "tags", "definition_commit",
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
              TriggerKind(), SubscriptionKind(), EventKind(), SubgraphDefinitionKind())
}
