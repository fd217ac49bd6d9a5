"""moto's server with what its EMR lacks for the emr_engine's tests (moto 5.2 has no CancelSteps, never moves a
step out of PENDING/RUNNING and reports no FailureDetails): ``python -m tests.engines.emr_moto -p PORT`` runs
the real moto server with

- ``CancelSteps``: a PENDING or RUNNING step becomes CANCELLED (EMR's answer: SUBMITTED; FAILED for a step
  that already ended);
- ``FailureDetails`` (Reason, Message, LogFile) in a step's status, as EMR reports a failed step;
- a step added while no other step is active starts RUNNING (moto leaves every step after the first PENDING),
  and a step that ends starts the next PENDING one;
- ``POST /moto-api/emr/step-state`` ``{"cluster_id", "step_id", "state", "reason", "message", "log_file"}``:
  what a cluster would do to a step (what the tests' step agent, standing in for Hadoop, reports);
- ``POST /moto-api/emr/cluster-state`` ``{"cluster_id", "state", "message"}`` moves a cluster, and without a
  cluster_id sets the state new clusters stay in (BOOTSTRAPPING, say) instead of moto's WAITING at once.

Everything else is moto's own EMR, S3 ... over the real wire protocol: the engine's boto3 is untouched."""

from __future__ import annotations

import json
import urllib.request
from contextlib import AbstractContextManager
from typing import Any

from bench.harness.moto import moto_server, serve

ENDED = ("COMPLETED", "CANCELLED", "FAILED", "INTERRUPTED")
NEW_CLUSTERS: dict[str, str | None] = {"state": None}  # the state new clusters stay in (None: WAITING at once)


def _backend(region: str = "us-east-1") -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.emr.models import emr_backends

    return emr_backends[DEFAULT_ACCOUNT_ID][region]


def _end(cluster: Any, step: Any, state: str) -> None:
    from moto.core.utils import utcnow

    step.state = state
    step.end_date_time = utcnow()
    waiting = [s for s in cluster.steps if s.state == "PENDING"]
    if waiting and not any(s.state == "RUNNING" for s in cluster.steps):
        waiting[0].state = "RUNNING"
        waiting[0].start()


def patch() -> None:
    from moto.core.responses import ActionResult
    from moto.emr import models, responses
    from moto.moto_api._internal import urls

    def status(self: Any) -> dict[str, Any]:
        found: dict[str, Any] = {
            "State": self.state,
            "StateChangeReason": {"Message": getattr(self, "last_state_change_reason", None)},
            "Timeline": {"CreationDateTime": self.creation_date_time, "EndDateTime": self.end_date_time,
                         "StartDateTime": self.start_date_time},
        }
        details = getattr(self, "failure_details", None)
        if details:
            found["FailureDetails"] = details
        return found

    models.Step.status = property(status)  # type: ignore[method-assign,assignment]

    original_add_steps = models.Cluster.add_steps

    def add_steps(self: Any, steps: list[dict[str, Any]]) -> list[Any]:
        idle = all(s.state in ENDED for s in self.steps)
        added: list[Any] = original_add_steps(self, steps)
        if idle and added:
            added[0].state = "RUNNING"
            added[0].start()
        return added

    models.Cluster.add_steps = add_steps  # type: ignore[method-assign]

    def cancel_steps(self: Any) -> Any:
        cluster = self.backend.describe_cluster(self._get_param("ClusterId"))
        wanted = self._get_param("StepIds", [])
        infos = []
        for step in cluster.steps:
            if step.id not in wanted:
                continue
            if step.state in ("PENDING", "RUNNING"):
                _end(cluster, step, "CANCELLED")
                step.last_state_change_reason = "Cancelled by the user"
                infos.append({"StepId": step.id, "Status": "SUBMITTED"})
            else:
                infos.append({"StepId": step.id, "Status": "FAILED", "Reason": f"the step is {step.state}"})
        return ActionResult({"CancelStepsInfoList": infos})

    responses.ElasticMapReduceResponse.cancel_steps = cancel_steps  # type: ignore[attr-defined]

    def set_step_state(request: Any, full_url: str, headers: Any) -> Any:
        body = json.loads(request.data or b"{}")
        backend = _backend(body.get("region") or "us-east-1")
        cluster = backend.describe_cluster(body["cluster_id"])
        [step] = [s for s in cluster.steps if s.id == body["step_id"]]
        state = body["state"]
        if state in ENDED:
            _end(cluster, step, state)
        else:
            step.state = state
        if body.get("reason") or body.get("message") or body.get("log_file"):
            step.failure_details = {k: v for k, v in (("Reason", body.get("reason")),
                                                      ("Message", body.get("message")),
                                                      ("LogFile", body.get("log_file"))) if v}
        return 200, {"Content-Type": "application/json"}, json.dumps({"state": step.state})

    urls.url_paths["{0}/moto-api/emr/step-state"] = set_step_state

    original_bootstrap = models.Cluster.run_bootstrap_actions

    def run_bootstrap_actions(self: Any) -> None:
        original_bootstrap(self)
        if NEW_CLUSTERS["state"] and self.state == "WAITING":
            self.state = NEW_CLUSTERS["state"]

    models.Cluster.run_bootstrap_actions = run_bootstrap_actions  # type: ignore[method-assign]

    def set_cluster_state(request: Any, full_url: str, headers: Any) -> Any:
        body = json.loads(request.data or b"{}")
        if "cluster_id" not in body:
            NEW_CLUSTERS["state"] = body.get("state")
            return 200, {"Content-Type": "application/json"}, json.dumps(NEW_CLUSTERS)
        cluster = _backend(body.get("region") or "us-east-1").describe_cluster(body["cluster_id"])
        cluster.state = body["state"]
        cluster.last_state_change_reason = body.get("message")
        return 200, {"Content-Type": "application/json"}, json.dumps({"state": cluster.state})

    urls.url_paths["{0}/moto-api/emr/cluster-state"] = set_cluster_state


def set_step_state(endpoint: str, cluster_id: str, step_id: str, state: str, **details: str) -> None:
    """Move a step as its cluster would (``reason``, ``message``, ``log_file`` for a failure)."""
    body = json.dumps({"cluster_id": cluster_id, "step_id": step_id, "state": state, **details}).encode()
    request = urllib.request.Request(f"{endpoint}/moto-api/emr/step-state", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.loads(answer.read())["state"] == state


def set_cluster_state(endpoint: str, state: str | None, cluster_id: str | None = None, message: str = "") -> None:
    body = {"state": state, "message": message, **({"cluster_id": cluster_id} if cluster_id else {})}
    request = urllib.request.Request(f"{endpoint}/moto-api/emr/cluster-state", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def emr_moto_server() -> AbstractContextManager[str]:
    """This module's server on a free port; yields its endpoint URL."""
    return moto_server("tests.engines.emr_moto")


if __name__ == "__main__":
    serve(patch)
