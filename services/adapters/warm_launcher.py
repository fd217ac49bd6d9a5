"""The production launcher with warm engine workers (issue 16): an action of an engine named in
``warm_worker_engines`` is handed to that engine's worker queue (``<prefix>-engine-<name>``), where a
long-lived `dart engine-worker` forks its engine from a warm parent; every other engine gets an ECS task as
before (EcsLauncher, the original's protocol).

The message names the launch intent (the action and the version of its ActionPending) and carries the engine's
action-scoped token, as ECS RunTask's overrides do. Exactly one launch per intent: the intent is taken once
(``take_slots`` moves the action to PENDING under the datastore's version, so a redelivered event publishes
nothing new); a worker drops a message whose intent is no longer the action's latest (it was re-queued) and
records the engine it starts under the action's version (services/runtime/engine_workers.py). A PENDING action
no worker took within ``stale_after`` is re-queued by the ECS launcher's stale check, as a task never started."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from services.adapters.ecs_launcher import EcsLauncher

log = logging.getLogger("dart.launcher.warm")
WARM_TASK = "warm:"  # a warm worker's engine, as recorded in ecs_task_arn: warm:<host>:<worker pid>:<pid>
Publish = Callable[[str, dict[str, Any]], None]  # (engine name, message) -> on that engine's worker queue


class WarmWorkerLauncher(EcsLauncher):
    """EcsLauncher that sends the actions of ``warm_engines`` to their engine's warm workers instead."""

    def __init__(self, *args: Any, publish: Publish, warm_engines: Iterable[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.publish = publish
        self.warm_engines = frozenset(warm_engines)

    def launch(self, action: dict[str, Any], datastore: dict[str, Any]) -> str | None:
        engine_name = str(action.get("engine_name"))
        if engine_name not in self.warm_engines:
            return super().launch(action, datastore)
        action_id = action["id"]
        version = action.get("_version")
        if version is None:  # not from take_slots: its intent is the latest ActionPending
            row = self.orch.reader.row("action", action_id)
            if row is None or row.data.get("state") != "PENDING":
                return None
            version = self.pending_version(action_id, row.version)
        message = {"action_id": action_id, "pending_version": version, "engine": engine_name,
                   "token": action.get("_token")}
        # A failed publish leaves the action PENDING without a task: the stale check re-queues it.
        self.publish(engine_name, message)
        log.info("action %s sent to the warm workers of %s", action_id, engine_name)
        return None
