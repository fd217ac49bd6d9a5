"""The ECS launcher (design.md §4, reference §8.3): engines run as ECS tasks started with boto3 ``run_task``.

Idempotent launch: the launch intent (``ActionPending``) is on the action's stream before ECS is called; the
call passes ``startedBy=<action id>`` and a ``clientToken`` derived from the action id and the version of its
PENDING event, and a repeated launch first looks for a task started for the action
(``list_tasks(startedBy=...)``, desired status RUNNING and STOPPED) before starting another.
``ActionLaunched`` records the task's ARN.

Periodic checks (``check``, run by ``run_periodic``):
- **orphans**: PENDING/RUNNING actions with a task ARN are described in batches of 50; a task that is STOPPED
  (desired or last status) or unknown to ECS fails its action with "the ECS task STOPPED unexpectedly";
- **stale PENDING**: an action PENDING for longer than ``stale_after`` with no task is re-queued; one whose
  task exists is FAILED (design.md §6) and the task is stopped;
- datastores whose launch met ``RESOURCE*`` failures are retried after ``resource_retry_after``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from events.errors import ConcurrencyError
from events.streams.action import ActionLaunched, ActionRequeued
from events.types import NewEvent, StreamAppend
from services.commands.context import Orchestration
from services.commands.launcher import META, Clock, Launcher, TokenFactory
from services.commands.retry import StillConflicting, retry_on_conflict

log = logging.getLogger("dart.launcher.ecs")
ORPHAN_MESSAGE = "the ECS task STOPPED unexpectedly"
DESCRIBE_BATCH = 50  # describe_tasks takes at most 100 ARNs; the original asked 50 at a time
_LAUNCH_NS = uuid.UUID("0c7f5f8e-9d1e-4a55-9b0e-5f1f3c3f6a10")
# Errors after which nobody knows whether the task started: leave the action PENDING; the stale check
# then finds the task (and fails the action) or finds none (and re-queues it).
TRANSIENT = {"ThrottlingException", "ServerException", "ServiceUnavailableException", "RequestLimitExceeded",
             "InternalFailure", "ServiceUnavailable", "Throttling"}


class EcsLauncher(Launcher):
    def __init__(
        self,
        orch: Orchestration,
        api_url: str,
        cluster: str,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        *,
        launch_type: str = "FARGATE",
        subnets: Sequence[str] = (),
        security_groups: Sequence[str] = (),
        assign_public_ip: bool = False,
        platform_version: str | None = None,
        stale_after: float = 120.0,
        orphan_interval: float = 30.0,
        resource_retry_after: float = 10.0,
        token_factory: TokenFactory | None = None,
        clock: Clock | None = None,
        client: Any = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(orch, api_url, stale_after, token_factory, clock)
        self.cluster = cluster
        self.launch_type = launch_type
        self.subnets = list(subnets)
        self.security_groups = list(security_groups)
        self.assign_public_ip = assign_public_ip
        self.platform_version = platform_version
        self.orphan_interval = orphan_interval
        self.resource_retry_after = resource_retry_after
        self.client = client or boto3.client("ecs", region_name=region, endpoint_url=endpoint_url or None)
        self.monotonic = monotonic  # the clock of the intervals (hold after RESOURCE failures, orphan checks)
        self._held: dict[str, float] = {}  # datastore id -> monotonic time before which launches wait
        self._last_orphan_check = float("-inf")

    # -------------------------------------------------------------------------------------- launch
    def launch(self, action: dict[str, Any], datastore: dict[str, Any]) -> str | None:
        """Start the action's task, or find the one an earlier delivery started. Returns the task ARN, or
        None when no task runs for it (re-queued, failed, or not PENDING)."""
        action_id = action["id"]
        minted = action.get("_token")  # created with the launch intent (take_slots), if it was
        row = self.orch.reader.row("action", action_id)
        if row is None:
            return None
        existing = self.tasks_started_for(action_id)
        if existing or row.data.get("state") != "PENDING":
            if minted:
                self.revoke_token(minted)
            if not existing:
                return None  # only a PENDING action (one holding a slot) may get a task
            arn = existing[0]
            log.info("action %s already has ECS task %s: not starting another", action_id, arn)
            self.record_launched(action_id, arn)
            return arn
        engine_name = str(row.data.get("engine_name"))
        engines = self.orch.reader.find_by("engine", name=engine_name)
        engine = engines[0]["data"] if engines else None
        definition_arn = (engine or {}).get("ecs_task_definition_arn")
        if not definition_arn:
            reason = ("is not registered" if engine is None
                      else "has no ECS task definition (ecs_task_definition_arn)")
            if minted:
                self.revoke_token(minted)
            self.fail_if(action_id, ("PENDING",),
                         f"engine {engine_name!r} {reason}: the action cannot run on ECS")
            return None
        pending_version = self.pending_version(action_id, row.version)
        environment = self.engine_environment({**row.data, "id": action_id, "_token": minted},
                                              datastore or self._datastore(row))
        overrides = {"containerOverrides": [
            {"name": name, "environment": [{"name": k, "value": v} for k, v in environment.items()]}
            for name in self.container_names(engine or {}, definition_arn)
        ]}
        kwargs: dict[str, Any] = {
            "cluster": self.cluster, "taskDefinition": definition_arn, "count": 1,
            "launchType": self.launch_type,
            "startedBy": action_id[:36], "clientToken": self.client_token(action_id, pending_version),
            "overrides": overrides,
        }
        if self.subnets:
            kwargs["networkConfiguration"] = {"awsvpcConfiguration": {
                "subnets": self.subnets, "securityGroups": self.security_groups,
                "assignPublicIp": "ENABLED" if self.assign_public_ip else "DISABLED"}}
        if self.platform_version:
            kwargs["platformVersion"] = self.platform_version
        try:
            response = self.client.run_task(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in TRANSIENT:
                log.warning("run_task for action %s: %s; left PENDING for the stale check", action_id, exc)
                return None
            self.revoke_token(environment["DART_API_TOKEN"])
            self.fail_if(action_id, ("PENDING",), f"ECS refused to run the engine's task: {exc}")
            return None
        except BotoCoreError as exc:
            log.warning("run_task for action %s: %s; left PENDING for the stale check", action_id, exc)
            return None
        tasks = response.get("tasks") or []
        if tasks:
            arn = str(tasks[0]["taskArn"])
            self.record_launched(action_id, arn)
            return arn
        self.revoke_token(environment["DART_API_TOKEN"])  # no task: no engine will use it
        reasons = [str(f.get("reason") or "") for f in response.get("failures") or []]
        if any(r.startswith("RESOURCE") for r in reasons):
            log.info("no ECS capacity for action %s (%s): back to QUEUED", action_id, ", ".join(reasons))
            self.requeue(action_id, pending_version)
            self._held[str(row.data.get("datastore_id"))] = self.monotonic() + self.resource_retry_after
            return None
        self.fail_if(action_id, ("PENDING",),
                     f"ECS could not start the engine's task: {', '.join(reasons) or 'no task'}")
        return None

    def client_token(self, action_id: str, pending_version: int) -> str:
        """The same for every try of one launch intent; a new intent (after a re-queue) gets a new token."""
        return f"dart-{action_id}-{pending_version}"

    def pending_version(self, action_id: str, current: int) -> int:
        """The stream version of the action's latest ActionPending (its launch intent)."""
        for event in reversed(self.orch.store.read_stream(f"action-{action_id}")):
            if event.type == "ActionPending":
                return event.stream_version
        return current

    def container_names(self, engine: dict[str, Any], definition_arn: str) -> list[str]:
        definition = engine.get("ecs_task_definition") or {}
        names = [str(c["name"]) for c in definition.get("containerDefinitions") or [] if c.get("name")]
        if names:
            return names
        described = self.client.describe_task_definition(taskDefinition=definition_arn)["taskDefinition"]
        return [str(c["name"]) for c in described.get("containerDefinitions") or []]

    def _datastore(self, row: Any) -> dict[str, Any]:
        found = self.orch.reader.row("datastore", str(row.data.get("datastore_id")))
        return found.data if found is not None else {}

    def tasks_started_for(self, action_id: str) -> list[str]:
        """ARNs of tasks started for the action, RUNNING ones first (ECS lists RUNNING by default only)."""
        arns: list[str] = []
        for status in ("RUNNING", "STOPPED"):
            paginator = self.client.get_paginator("list_tasks")
            pages = paginator.paginate(cluster=self.cluster, startedBy=action_id[:36], desiredStatus=status)
            for page in pages:
                arns += [a for a in page.get("taskArns") or [] if a not in arns]
        return arns

    def record_launched(self, action_id: str, arn: str) -> None:
        def attempt() -> None:
            row = self.orch.reader.row("action", action_id)
            if row is None or row.data.get("ecs_task_arn") == arn:
                return
            event_id = uuid.uuid5(_LAUNCH_NS, f"launched:{action_id}:{arn}")
            # A conflict: the engine checked out meanwhile; recorded on the fresh version.
            self.orch.store.append(StreamAppend(f"action-{action_id}", row.version, [NewEvent(
                ActionLaunched({"ecs_task_arn": arn}), META, event_id)]))

        try:
            retry_on_conflict(attempt, what=f"action {action_id}")
        except StillConflicting:
            log.error("could not record task %s of action %s", arn, action_id)

    def requeue(self, action_id: str, version: int) -> bool:
        """PENDING -> QUEUED, only if the action is still at ``version`` and PENDING."""
        row = self.orch.reader.row("action", action_id)
        if row is None or row.data.get("state") != "PENDING" or row.version != version:
            return False
        try:
            self.orch.store.append(StreamAppend(f"action-{action_id}", version, [NewEvent(
                ActionRequeued({"state": "QUEUED"}), META)]))
        except ConcurrencyError:
            return False
        return True

    # ------------------------------------------------------------------------------------ periodic
    def may_launch_on(self, datastore_id: str) -> bool:
        until = self._held.get(datastore_id)
        return until is None or self.monotonic() >= until

    def check(self, now: datetime | None = None) -> None:
        self.retry_held()
        self.check_stale(now)
        if self.monotonic() - self._last_orphan_check >= self.orphan_interval:
            self._last_orphan_check = self.monotonic()
            self.check_orphans(now)
        self.run_limits(now)

    def stop_engine(self, action_id: str, task: Any, reason: str) -> bool:
        """ECS StopTask (ECS sends SIGTERM, then SIGKILL after the task definition's stopTimeout)."""
        arn = str(task or "")
        if not arn.startswith("arn:"):
            return False
        try:
            self.client.stop_task(cluster=self.cluster, task=arn, reason=f"dart: {reason}"[:255])
        except (ClientError, BotoCoreError) as exc:
            log.warning("could not stop task %s of action %s: %s", arn, action_id, exc)
            return False
        return True

    def retry_held(self) -> list[str]:
        """Launch again on datastores whose hold (after RESOURCE failures) has run out."""
        launched: list[str] = []
        now = self.monotonic()
        for datastore_id, until in list(self._held.items()):
            if now >= until:
                self._held.pop(datastore_id, None)
                launched += self.launch_ready(datastore_id)
        return launched

    def check_orphans(self, now: datetime | None = None) -> list[str]:
        """Fail PENDING/RUNNING actions whose task has STOPPED (or is unknown to ECS); returns their ids."""
        rows = self._actions_in("PENDING", "RUNNING")
        # ECS tasks only: an action on a warm engine worker (task warm:...) is watched by the workers.
        watched = {str(r.data["ecs_task_arn"]): r.id for r in rows
                   if str(r.data.get("ecs_task_arn") or "").startswith("arn:")}
        watched.update(self._find_unrecorded(rows, now))
        arns = list(watched)
        failed: list[str] = []
        for start in range(0, len(arns), DESCRIBE_BATCH):
            batch = arns[start:start + DESCRIBE_BATCH]
            response = self.client.describe_tasks(cluster=self.cluster, tasks=batch)
            # Matched by task id: the same task may be named by its short or its long ARN form.
            gone: dict[str, str] = {}
            seen = set()
            for task in response.get("tasks") or []:
                seen.add(_task_id(task["taskArn"]))
                if "STOPPED" in (task.get("desiredStatus"), task.get("lastStatus")):
                    gone[_task_id(task["taskArn"])] = str(task.get("stoppedReason") or "")
            for failure in response.get("failures") or []:
                if failure.get("reason") == "MISSING" and failure.get("arn"):
                    seen.add(_task_id(failure["arn"]))
                    gone[_task_id(failure["arn"])] = "ECS no longer knows the task"
            by_id = {_task_id(arn): arn for arn in batch}
            for task_id in by_id:
                if task_id not in seen:
                    gone[task_id] = "ECS no longer knows the task"
            gone = {by_id[t]: reason for t, reason in gone.items() if t in by_id}
            for arn, reason in gone.items():
                message = f"{ORPHAN_MESSAGE} ({reason})" if reason else ORPHAN_MESSAGE
                # Read after describing: an engine checks in before its task stops, so an action still
                # PENDING/RUNNING now never checked in.
                if self.fail_if(watched[arn], ("PENDING", "RUNNING"), message, arn=arn):
                    log.warning("action %s: %s", watched[arn], message)
                    failed.append(watched[arn])
        return failed

    def _find_unrecorded(self, rows: list[Any], now: datetime | None = None) -> dict[str, str]:
        """RUNNING actions with no task recorded for longer than ``stale_after`` (a launcher died between
        run_task and recording it, and the engine checked out): their task, found by startedBy, is recorded
        and watched like any other; with no task at all, the action's engine is gone and it FAILS. Returns
        {arn: action id} for the tasks found."""
        limit = (now or self.clock()) - self.stale_after
        found: dict[str, str] = {}
        for row in rows:
            if row.data.get("ecs_task_arn") or row.data.get("state") != "RUNNING" or row.updated >= limit:
                continue
            arn = next(iter(self.tasks_started_for(row.id)), None)
            if arn is None:
                self.fail_if(row.id, ("RUNNING",), "no ECS task was recorded for the action and none started "
                                                   "for it runs or has stopped: its engine is gone")
                continue
            self.record_launched(row.id, arn)
            found[arn] = row.id
        return found

    def check_stale(self, now: datetime | None = None) -> dict[str, list[str]]:
        """PENDING for longer than ``stale_after``: no task -> QUEUED; a task -> FAILED (and the task is
        stopped). Returns the ids re-queued and failed."""
        now = now or self.clock()
        limit = now - self.stale_after
        result: dict[str, list[str]] = {"requeued": [], "failed": []}
        for row in self._actions_in("PENDING"):
            if row.updated >= limit:
                continue
            arn = row.data.get("ecs_task_arn") or next(iter(self.tasks_started_for(row.id)), None)
            if not arn:
                if self.requeue(row.id, row.version):
                    result["requeued"].append(row.id)
                continue
            self.record_launched(row.id, arn)
            seconds = int(self.stale_after.total_seconds())
            message = (f"the action stayed PENDING for more than {seconds} s although its ECS task {arn} was "
                       "started: the engine never checked out")
            if self.fail_if(row.id, ("PENDING",), message):
                result["failed"].append(row.id)
                try:
                    self.client.stop_task(cluster=self.cluster, task=arn, reason=f"dart: {message}")
                except (ClientError, BotoCoreError) as exc:
                    log.warning("could not stop task %s of stale action %s: %s", arn, row.id, exc)
        return result


def _task_id(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _split(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def ecs_launcher_from_settings(orch: Orchestration, api_url: str, settings: Any,
                               token_factory: TokenFactory | None = None,
                               launcher_class: type[EcsLauncher] | None = None, **extra: Any) -> EcsLauncher:
    """An EcsLauncher from dart's settings: ``ecs_cluster``, ``aws_region``, ``aws_endpoint_url`` (or
    ``ecs_endpoint_url``), ``stale_pending_seconds``; optional, when settings have them: ``ecs_launch_type``,
    ``ecs_subnets`` and ``ecs_security_groups`` (comma-separated), ``ecs_assign_public_ip``,
    ``ecs_platform_version``, ``orphan_check_seconds`` (default 10 poll intervals) and
    ``ecs_resource_retry_seconds`` (default 10). ``launcher_class`` and ``extra``: a subclass and its own
    arguments (the warm engine workers' launcher)."""
    poll = float(getattr(settings, "poll_interval", 0.5) or 0.5)
    return (launcher_class or EcsLauncher)(
        orch,
        api_url,
        settings.ecs_cluster,
        settings.aws_region,
        getattr(settings, "ecs_endpoint_url", "") or settings.aws_endpoint_url or None,
        launch_type=getattr(settings, "ecs_launch_type", "") or "FARGATE",
        subnets=_split(getattr(settings, "ecs_subnets", "")),
        security_groups=_split(getattr(settings, "ecs_security_groups", "")),
        assign_public_ip=str(getattr(settings, "ecs_assign_public_ip", "")).lower() in ("1", "true", "yes"),
        platform_version=getattr(settings, "ecs_platform_version", "") or None,
        stale_after=float(settings.stale_pending_seconds),
        orphan_interval=float(getattr(settings, "orphan_check_seconds", 0) or poll * 10),
        resource_retry_after=float(getattr(settings, "ecs_resource_retry_seconds", 0) or 10.0),
        token_factory=token_factory,
        **extra,
    )
