"""Runs a plan on the cluster: uploads its scripts, adds each step with AddJobFlowSteps and follows it to
COMPLETED, FAILED or CANCELLED in the engine process (never a dart worker), reporting progress. If the action
ends elsewhere while a step runs (its check-in or failure by dart revokes the engine's token), or the engine
is told to stop (SIGTERM from its launcher), the step is cancelled with CancelSteps."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError

from engines.emr.cluster import poll_seconds, reason
from engines.emr.steps import Plan
from engines.sdk import ActionContext, ActionFailure, DartApiError, DartClient
from services.domain.s3_range import split_s3

log = logging.getLogger("dart.engine.emr")
ACTIVE = ("PENDING", "CANCEL_PENDING", "RUNNING")


class StepFailed(ActionFailure):
    """A step ended other than COMPLETED; ``considered_successful`` as the step was planned."""

    def __init__(self, message: str, considered_successful: bool) -> None:
        super().__init__(message)
        self.considered_successful = considered_successful


class Stopped(Exception):
    """The action ended elsewhere, or the engine was told to stop: the step was cancelled."""


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """SIGTERM raises Stopped in the waiting loop, so the step is cancelled before the engine exits."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise Stopped("the engine was stopped (SIGTERM)")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def upload(s3: Any, artifacts: dict[str, bytes]) -> None:
    for path, body in sorted(artifacts.items()):
        bucket, key = split_s3(path)
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        except ClientError as exc:
            raise ActionFailure(f"cannot upload {path}: {reason(exc)}") from exc


def action_ended(client: DartClient, action_id: str) -> str | None:
    """Why the action is no longer this engine's to run, or None while it is RUNNING."""
    try:
        action = client.get(f"/action/{action_id}")
    except DartApiError as exc:
        if exc.status in (401, 403, 404):
            return f"the action ended elsewhere ({exc.message})"
        return None  # dart unreachable for a moment: the step goes on
    state = (action or {}).get("data", {}).get("state")
    return None if state == "RUNNING" else f"the action is {state}"


class StepRunner:
    def __init__(self, emr: Any, cluster: str, context: ActionContext, client: DartClient,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.emr, self.cluster, self.context, self.client, self.sleep = emr, cluster, context, client, sleep
        self.submitted: list[dict[str, str]] = []

    def run(self, plan: Plan, s3: Any) -> None:
        upload(s3, plan.artifacts)
        total = len(plan.steps)
        with stop_on_sigterm():
            for number, (step, request) in enumerate(zip(plan.steps, plan.requests(), strict=True), 1):
                before = len(self.submitted)
                try:
                    step_id = self.submit(request)
                    state, details = self.follow(step_id)
                except Stopped as exc:
                    # Whenever the stop came, even between AddJobFlowSteps and the first poll, the step that
                    # was added is cancelled.
                    added = self.submitted[before:]
                    if not added:
                        raise ActionFailure(str(exc)) from exc
                    self.cancel(added[0]["step_id"])
                    raise ActionFailure(f"{exc}: step {added[0]['step_id']} was cancelled") from exc
                if state != "COMPLETED":
                    raise StepFailed(self.failure(number, total, step.title, step_id, state, details),
                                     step.considered_successful)
                if number < total:  # the caller reports 1.0 when the action's work is all done
                    self.client.report_progress(self.context.action_id, round(number / total, 4))

    def submit(self, request: dict[str, Any]) -> str:
        try:
            answer = self.emr.add_job_flow_steps(JobFlowId=self.cluster, Steps=[request])
            step_id = str(answer["StepIds"][0])
            self.submitted.append({"step_id": step_id, "name": request["Name"]})
        except ClientError as exc:
            raise ActionFailure(f"cannot add a step to EMR cluster {self.cluster}: {reason(exc)}") from exc
        self.client.report_progress(self.context.action_id,
                                    extra_data={"cluster_id": self.cluster, "steps": self.submitted})
        log.info("added step %s: %s", step_id, request["Name"])
        return step_id

    def follow(self, step_id: str) -> tuple[str, dict[str, Any]]:
        """Poll the step until it ends; returns its state and failure details. Raises Stopped when the action
        ended elsewhere."""
        while True:
            status = self.describe(step_id)
            state = str(status.get("State"))
            if state not in ACTIVE:
                return state, dict(status.get("FailureDetails") or {})
            ended = action_ended(self.client, self.context.action_id)
            if ended:
                raise Stopped(ended)
            self.sleep(poll_seconds())

    def describe(self, step_id: str) -> dict[str, Any]:
        try:
            return dict(self.emr.describe_step(ClusterId=self.cluster, StepId=step_id)["Step"]["Status"])
        except ClientError as exc:
            raise ActionFailure(f"cannot follow step {step_id} of EMR cluster {self.cluster}: "
                                f"{reason(exc)}") from exc

    def cancel(self, step_id: str) -> None:
        try:
            answer = self.emr.cancel_steps(ClusterId=self.cluster, StepIds=[step_id],
                                           StepCancellationOption="SEND_INTERRUPT")
            log.info("cancelled step %s: %s", step_id, answer.get("CancelStepsInfoList"))
        except ClientError as exc:
            log.error("could not cancel step %s of %s: %s", step_id, self.cluster, reason(exc))

    def failure(self, number: int, total: int, title: str, step_id: str, state: str,
                details: dict[str, Any]) -> str:
        text = f"step {number} of {total} ({title}, {step_id}) {state}"
        cause = ": ".join(str(details[k]) for k in ("Reason", "Message") if details.get(k))
        if cause:
            text += f": {cause}"
        if details.get("LogFile"):
            text += f" (log: {details['LogFile']})"
        return text
