"""A hand-written, in-memory fake of dart's orchestration for the rule tests: streams folded in a dict (each
event's own ``evolve``), expected versions checked as the store checks them, and the consumers' handler
tables (orchestrator, launcher, an engine that checks out at once) driven by the domain rules of
services/domain, the way services/commands drives them over the read models. Milliseconds per run."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from events.streams.action import ActionCheckedIn, ActionCheckedOut, ActionCreated
from events.streams.datastore import DatastoreCreated
from events.streams.trigger import TriggerCreated
from events.streams.workflow import WorkflowCreated
from events.types import Event, ExpectedVersion, Metadata, NewEvent, StreamAppend
from services.domain import completion, next_action, run_start, slots, trigger_rules
from services.domain.completion import CompletionFacts
from services.domain.ids import derived_event_id, random_id
from services.domain.rows import Entity, Row
from services.domain.run_start import Fire, Started

SUCCEEDS = "fake_action_that_succeeds"
FAILS = "fake_action_that_fails"
LIVE = ("HAS_NEVER_RUN", "QUEUED", "PENDING", "RUNNING", "FINISHING")
META = Metadata(actor="test")


def payload(new: NewEvent) -> dict[str, Any]:
    """A new event's payload (every event the rules make is typed)."""
    assert isinstance(new.event, Event)
    return new.event.payload()


class Conflict(Exception):
    """An expected version did not match (the store's ConcurrencyError)."""


@dataclass
class Recorded:
    stream_id: str
    event: Event
    event_id: uuid.UUID

    @property
    def type(self) -> str:
        return self.event.type_name

    @property
    def entity_id(self) -> str:
        return self.stream_id.split("-", 1)[1]


@dataclass
class World:
    streams: dict[str, tuple[int, dict[str, Any] | None]] = field(default_factory=dict)
    log: list[Recorded] = field(default_factory=list)
    delivered: int = 0
    clock: datetime = datetime(2026, 1, 1, tzinfo=UTC)

    # ------------------------------------------------------------------------------------- the store
    def append(self, *appends: StreamAppend) -> None:
        """All or nothing; event ids already stored make the whole append a no-op (idempotency)."""
        ids = {r.event_id for r in self.log}
        if any(e.event_id in ids for a in appends for e in a.events):
            return
        for a in appends:
            version = self.streams.get(a.stream_id, (0, None))[0]
            expected = a.expected_version
            if expected == ExpectedVersion.NO_STREAM and version != 0:
                raise Conflict(a.stream_id)
            if isinstance(expected, int) and expected != version:
                raise Conflict(f"{a.stream_id}: expected {expected}, at {version}")
        for a in appends:
            version, state = self.streams.get(a.stream_id, (0, None))
            for new in a.events:
                assert isinstance(new.event, Event)
                state = new.event.evolve(state)  # type: ignore[attr-defined]
                version += 1
                self.log.append(Recorded(a.stream_id, new.event, new.event_id))
            self.streams[a.stream_id] = (version, state)

    def row(self, category: str, entity_id: str | None) -> Entity | None:
        version, state = self.streams.get(f"{category}-{entity_id}", (0, None))
        return None if state is None else Entity(str(entity_id), version, state)

    def rows(self, category: str) -> list[Entity]:
        found = [self.row(category, s.split("-", 1)[1]) for s in self.streams if s.startswith(f"{category}-")]
        return [r for r in found if r is not None]

    def actions(self, **fields: Any) -> list[dict[str, Any]]:
        return [{**r.data, "id": r.id, "_version": r.version} for r in self.rows("action")
                if all(r.data.get(k) == v for k, v in fields.items())]

    def live_actions(self, datastore_id: str) -> list[dict[str, Any]]:
        return [a for a in self.actions(datastore_id=datastore_id) if a["state"] in LIVE]

    def events(self, type_name: str) -> list[Recorded]:
        return [r for r in self.log if r.type == type_name]

    def tick(self, seconds: float = 1.0) -> datetime:
        self.clock += timedelta(seconds=seconds)
        return self.clock

    # ---------------------------------------------------------------------------------- set-up
    def create(self, category: str, data: dict[str, Any]) -> str:
        kinds = {"datastore": DatastoreCreated, "workflow": WorkflowCreated, "action": ActionCreated,
                 "trigger": TriggerCreated}
        entity_id = random_id()
        self.append(StreamAppend(f"{category}-{entity_id}", ExpectedVersion.NO_STREAM,
                                 [NewEvent(kinds[category](data), META)]))
        self.delivered = len(self.log)  # set-up events are not worker business here
        return entity_id

    def workflow(self, action_types: Iterable[str], *, datastore_state: str = "TEMPLATE",
                 on_failure: list[str] | None = None, **fields: Any) -> str:
        datastore_id = self.create("datastore", {"name": "d", "engine_name": "no_op_engine",
                                                 "state": datastore_state, "concurrency": 1})
        workflow_id = self.create("workflow", {"name": "w", "state": "ACTIVE", "datastore_id": datastore_id,
                                               "engine_name": "no_op_engine", **fields})
        for index, kind in enumerate(action_types):
            data = {"name": f"a{index}", "action_type_name": kind, "engine_name": "no_op_engine",
                    "state": "TEMPLATE", "workflow_id": workflow_id, "order_idx": index}
            if on_failure and on_failure[index]:
                data["on_failure"] = on_failure[index]
            self.create("action", data)
        return workflow_id

    def trigger(self, kind: str, args: dict[str, Any], workflow_ids: list[str]) -> str:
        return self.create("trigger", {"trigger_type_name": kind, "state": "ACTIVE", "args": args,
                                       "workflow_ids": workflow_ids})

    # ------------------------------------------------------------------------------ the commands
    def start(self, workflow_id: str, fire: Fire) -> Started:
        earlier = run_start.instance_id_for(workflow_id, fire)
        if earlier is not None and self.row("workflow_instance", earlier) is not None:
            return Started(earlier)
        workflow = self.row("workflow", workflow_id)
        refused = run_start.workflow_refusal(workflow_id, None if workflow is None else workflow.data)
        if workflow is not None and refused is None:
            active = [i for i in self.rows("workflow_instance") if i.data.get("workflow_id") == workflow_id
                      and i.data.get("state") in run_start.ACTIVE_INSTANCE_STATES]
            refused = run_start.concurrency_refusal(workflow.data, len(active))
        if workflow is None or refused is not None:
            return Started(None, refused)
        datastore_id = str(workflow.data.get("datastore_id"))
        datastore = self.row("datastore", datastore_id)
        templates = sorted(((a["id"], a) for a in self.actions(workflow_id=workflow_id, state="TEMPLATE")),
                           key=lambda t: float(t[1].get("order_idx") or 0))
        base = max([float(a.get("order_idx") or 0) for a in self.actions(datastore_id=datastore_id)] or [0.0])
        instance_id, appends = run_start.plan_start(workflow, fire, datastore, templates, base,
                                                    self.clock.isoformat(), "s3://dart/datastores")
        self.append(*appends)
        return Started(instance_id)

    def manual(self, workflow_id: str) -> Started:
        return self.start(workflow_id, Fire("manual", cause=uuid.uuid4()))

    def try_next(self, datastore_id: str, cause: uuid.UUID | None = None) -> list[str]:
        datastore = self.row("datastore", datastore_id)
        if datastore is None:
            return []
        chosen = next_action.to_queue(self.live_actions(datastore_id))
        self.append(*next_action.queue_appends(datastore, chosen, self.clock.isoformat(), META))
        return [a["id"] for a in chosen]

    def take_slots(self, datastore_id: str) -> list[str]:
        """The launcher: slots taken, and each engine checks out at once."""
        datastore = self.row("datastore", datastore_id)
        if datastore is None:
            return []
        taken = slots.slots_to_take(datastore.data, self.live_actions(datastore_id))
        self.append(*slots.pending_appends(datastore_id, datastore.version, taken, META))
        for action in taken:
            row = self.row("action", action["id"])
            assert row is not None
            self.append(StreamAppend(f"action-{row.id}", row.version, [NewEvent(
                ActionCheckedOut(self.tick().isoformat()), META)]))
        return [a["id"] for a in taken]

    def complete(self, action_id: str, state: str, error_message: str | None, cause: uuid.UUID) -> None:
        row = self.row("action", action_id)
        if row is None or row.data.get("state") in completion.DONE:
            return
        action = row.data
        template_id = action.get("workflow_action_id")
        template = self.row("action", template_id) if state == "COMPLETED" and template_id else None
        instance = self.row("workflow_instance", action.get("workflow_instance_id"))
        workflow = self.row("workflow", action.get("workflow_id")) if instance is not None else None
        waiting = [a for a in self.actions(workflow_instance_id=action.get("workflow_instance_id"))
                   if a["state"] == "HAS_NEVER_RUN"]
        averages = {t["id"]: t.get("avg_runtime") for t in self.actions(workflow_id=action.get("workflow_id"),
                                                                        state="TEMPLATE")}
        target = completion.datastore_to_deactivate(action, state, instance, workflow)
        facts = CompletionFacts(row, state, error_message, self.tick(), template, instance, workflow, waiting,
                                averages, self.row("datastore", target) if target else None)
        plan = completion.plan_completion(facts, META, cause, f"complete:{action_id}:0")
        datastore = self.row("datastore", action.get("datastore_id"))
        appends = plan.appends
        if datastore is not None:  # the next action queued in the completion's own append, where it can be
            touched = {a.stream_id for a in appends}
            chosen = next_action.to_queue(next_action.live_after(self.live_actions(datastore.id), touched))
            queueing = next_action.queue_appends(datastore, chosen, self.clock.isoformat(), META)
            if not next_action.queueing_clashes(queueing, touched):
                appends = [*appends, *queueing]
        self.append(*appends)
        if plan.retry is not None:
            self.start(plan.retry[0], Fire("retry", None, plan.retry[1], "orchestrator",
                                           derived_event_id(cause, f"retry:{action_id}")))

    # ----------------------------------------------------------------------- the triggers
    def fire(self, trigger: Row, cause: uuid.UUID, key: str) -> None:
        fired_id = trigger_rules.fired_event_id(cause, trigger.id)
        if any(r.event_id == fired_id for r in self.log):
            return
        self.append(trigger_rules.fire_append(trigger, cause, key))
        self.start_fired(trigger, fired_id, trigger_rules.fire_note(trigger, key)["workflow_ids"])

    def start_fired(self, trigger: Row, fired_id: uuid.UUID, workflow_ids: list[str]) -> None:
        for workflow_id in workflow_ids:
            kind = str(trigger.data.get("trigger_type_name"))
            started = self.start(workflow_id, Fire(kind, trigger.id, 0, "anonymous", uuid.uuid5(fired_id, workflow_id)))
            if started.instance_id is None:
                self.append(run_start.skipped_fire(trigger.id, workflow_id, started.refused or "refused", fired_id))

    def active_triggers(self, kind: str) -> list[Entity]:
        return [t for t in self.rows("trigger")
                if t.data.get("trigger_type_name") == kind and t.data.get("state") == "ACTIVE"]

    def super_input(self, fired_trigger_id: str, cause: uuid.UUID) -> None:
        for trigger in trigger_rules.watching_trigger(self.active_triggers("super"), fired_trigger_id):
            if trigger_rules.fires_on_any(trigger):
                self.fire(trigger, cause, f"input:{fired_trigger_id}")
                continue
            decision = trigger_rules.super_all_input(trigger, fired_trigger_id, cause, self.clock.isoformat())
            self.append(decision.append)
            if decision.fired is not None:
                self.start_fired(trigger, trigger_rules.fired_event_id(cause, trigger.id),
                                 decision.fired["workflow_ids"])

    # ------------------------------------------------------------------------------- the consumers
    def deliver(self) -> None:
        """Hand every new event to the orchestrator's and the launcher's handlers, until none is left."""
        while self.delivered < len(self.log):
            event = self.log[self.delivered]
            self.delivered += 1
            cause = event.event_id
            data = getattr(event.event, "data", None) or {}
            new_run = event.type == "WorkflowInstanceCreated" and data.get("state") == "QUEUED"
            new_adhoc = event.type == "ActionCreated" and data.get("state") == "HAS_NEVER_RUN" \
                and not data.get("workflow_instance_id")
            if new_run or new_adhoc:
                self.try_next(data["datastore_id"], cause)
            elif event.type == "ActionCheckedIn":
                checked_in = event.event
                assert isinstance(checked_in, ActionCheckedIn)
                self.complete(event.entity_id, checked_in.result, checked_in.error_message, cause)
            elif event.type == "ActionCompleted":
                action = self.row("action", event.entity_id)
                if action is not None:
                    self.try_next(action.data["datastore_id"], cause)
                    self.take_slots(action.data["datastore_id"])
            elif event.type == "ActionQueued":
                action = self.row("action", event.entity_id)
                if action is not None:
                    self.take_slots(action.data["datastore_id"])
            elif event.type == "WorkflowInstanceCompleted":
                instance = self.row("workflow_instance", event.entity_id)
                assert instance is not None
                for trigger in trigger_rules.watching_workflow(self.active_triggers("workflow_completion"),
                                                               instance.data["workflow_id"]):
                    self.fire(trigger, cause, f"instance:{instance.id}")
            elif event.type == "TriggerFired":
                self.super_input(event.entity_id, cause)

    def running(self) -> list[dict[str, Any]]:
        return [a for a in self.actions(state="RUNNING")]

    def check_in(self, action_id: str) -> None:
        """The engine reports its result: the action's type says which."""
        row = self.row("action", action_id)
        assert row is not None and row.data["state"] == "RUNNING"
        fails = row.data.get("action_type_name") == FAILS
        self.tick()
        self.append(StreamAppend(f"action-{action_id}", row.version, [NewEvent(ActionCheckedIn(
            "FAILED" if fails else "COMPLETED", "failed as expected" if fails else None), META)]))

    def run(self, limit: int = 100) -> None:
        """Deliver, let every running engine check in, and again, until nothing runs."""
        self.deliver()
        for _ in range(limit):
            running = self.running()
            if not running:
                return
            for action in running:
                self.check_in(action["id"])
            self.deliver()
        raise AssertionError("still running after the limit")

    # ------------------------------------------------------------------------------------- reads
    def instances(self, workflow_id: str) -> list[Entity]:
        found = [i for i in self.rows("workflow_instance") if i.data.get("workflow_id") == workflow_id]
        return sorted(found, key=lambda i: (i.data.get("retry_num") or 0, i.data.get("queued_time") or ""))

    def instance_actions(self, instance_id: str) -> list[dict[str, Any]]:
        return sorted(self.actions(workflow_instance_id=instance_id), key=lambda a: float(a.get("order_idx") or 0))

    def data(self, category: str, entity_id: str) -> dict[str, Any]:
        row = self.row(category, entity_id)
        assert row is not None, f"{category}-{entity_id} does not exist"
        return row.data

    def state(self, category: str, entity_id: str) -> Any:
        row = self.row(category, entity_id)
        return None if row is None else row.data.get("state")
