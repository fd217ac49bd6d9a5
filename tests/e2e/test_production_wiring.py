"""The production wiring end to end with both brokers: PostgreSQL, RabbitMQ over AMQP or the SQS wire protocol
on a moto server, engines as ECS tasks (moto, started by the test ECS agent), and every process on its own
(`dart api`, `dart relay`, `dart worker ...`). Every workflow case also runs on production (SQS) in
test_workflow_runs.py; this module keeps the AMQP broker covered and SIGKILLs workers mid-run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.harness.api_client import Api
from tests.e2e.flows import (
    FAILS,
    SUCCEEDS,
    datastore,
    finished,
    history_types,
    instance_actions,
    register_no_op,
    trigger,
    wait_for,
    workflow,
)
from tests.e2e.stacks import CLUSTER, PRODUCTION, PRODUCTION_AMQP, Production, running

pytestmark = pytest.mark.postgres
# Each is SIGKILLed and restarted in turn while a chain of workflows runs.
KILLED = ("relay", "orchestrator", "launcher", "notifier")
STALE_PENDING_SECONDS = "10"


@pytest.fixture(scope="module", params=[PRODUCTION_AMQP, PRODUCTION])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Production]:
    # A launcher killed between taking a slot (PENDING) and run_task leaves an action PENDING with no task,
    # which its redelivered message does not launch again (it only takes free slots): the stale-PENDING
    # check re-queues it after this long (design.md §6). 10 s: far longer than an engine needs to check out.
    env = {"DART_STALE_PENDING_SECONDS": STALE_PENDING_SECONDS}
    with running(request.param, tmp_path_factory.mktemp(f"prod-{request.param}"), env=env) as production:
        assert isinstance(production, Production)
        yield production


@pytest.fixture(scope="module")
def api(stack: Production) -> Api:
    client = stack.api()
    register_no_op(client)
    return client


def test_chained_workflows_complete_through_the_broker(api: Api) -> None:
    wf0 = workflow(api, datastore(api), [SUCCEEDS, SUCCEEDS])
    wf1 = workflow(api, datastore(api), [SUCCEEDS])
    trigger(api, "workflow_completion", {"completed_workflow_id": wf0["id"]}, [wf1["id"]])
    api.post(f"/workflow/{wf0['id']}/do-manual-trigger", None)
    assert [i["data"]["state"] for i in finished(api, wf1)] == ["COMPLETED"]
    [first] = finished(api, wf0)
    assert [a["data"]["state"] for a in instance_actions(api, first)] == ["COMPLETED", "COMPLETED"]


def test_failure_skips_the_rest_and_deactivates(api: Api) -> None:
    flow = workflow(api, datastore(api, state="ACTIVE"), [FAILS, SUCCEEDS])
    api.post(f"/workflow/{flow['id']}/do-manual-trigger", None)
    [instance] = finished(api, flow)
    assert [a["data"]["state"] for a in instance_actions(api, instance)] == ["FAILED", "SKIPPED"]


def test_killed_workers_lose_nothing_and_launch_nothing_twice(stack: Production, api: Api) -> None:
    """SIGKILL each worker in turn while a chain of workflows runs, then restart it; each kill waits for the
    chain to have moved on since the previous restart. Every run completes, every action ran on exactly one
    ECS task, and no action was launched twice."""
    flows = [workflow(api, datastore(api), [SUCCEEDS, SUCCEEDS]) for _ in range(5)]
    for upstream, downstream in zip(flows, flows[1:]):
        trigger(api, "workflow_completion", {"completed_workflow_id": upstream["id"]}, [downstream["id"]])
    api.post(f"/workflow/{flows[0]['id']}/do-manual-trigger", None)
    kills = 0
    for name in KILLED * 3:
        seen = stack.head_position()
        wait_for(lambda: stack.head_position() >= seen + 3, timeout=120, what=f"progress before killing {name}")
        stack.kill(name)
        stack.start(name)
        kills += 1
    assert kills >= 10
    ecs = stack.agent.client
    for flow in flows:
        [instance] = finished(api, flow, timeout=240)
        assert instance["data"]["state"] == "COMPLETED"
        for action in instance_actions(api, instance):
            assert action["data"]["state"] == "COMPLETED"
            types = history_types(api, "action", action["id"])
            # A second PENDING only ever follows a re-queue (a launch intent whose launch never happened).
            assert types.count("ActionPending") == types.count("ActionRequeued") + 1, types
            assert types.count("ActionLaunched") <= 1, types
            tasks = {arn for status in ("RUNNING", "STOPPED") for arn in ecs.list_tasks(
                cluster=CLUSTER, startedBy=action["id"], desiredStatus=status)["taskArns"]}
            assert len(tasks) == 1, tasks  # the ground truth: one ECS task, so one engine run
