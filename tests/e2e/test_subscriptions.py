"""Subscriptions end to end with real processes, on the embedded wiring (`dart up`) and production (separate
processes, PostgreSQL, SQS and ECS on moto): reference §15.3 tests 11, 12 and 15 with the original's exact
numbers, the S3 notification path, and an element's life in the log. S3 is a moto server on loopback, reached
through DART_AWS_ENDPOINT_URL exactly as AWS would be."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from bench.harness.api_client import Api
from tests.e2e.flows import SUCCEEDS, action_spec, datastore, name, register_no_op, wait_for, workflow
from tests.e2e.stacks import EMBEDDED, TWO_WIRINGS, Running, running
from bench.harness.moto import AWS_ENV, moto_server

# The acceptance tests' bucket (reference §9.4): three matching files of these sizes, threshold 49,524.
RPMS = {"impala/impala-2.0.0.rpm": 152_875_004, "impala/impala-udf-2.0.0.rpm": 834_620,
        "impala/impala-shell-2.0.0.rpm": 49_524}
OTHERS = ["impala/", "impala/README.md", "impala/aaa.rpm", "impala/impala-notes.txt", "impala/install/x.rpm",
          "impala2/impala-3.rpm"]
THRESHOLD = 49_524
NOTIFICATIONS = "s3-events"
PAGE = "5"  # keys per S3 list call: generation of a few hundred keys takes many steps (test 15)


@dataclass
class World:
    dart: Running
    api: Api
    s3: Any
    sqs: Any
    bucket: str
    endpoint: str

    def dataset(self, location: str) -> dict[str, Any]:
        return self.api.post("/dataset", {"data": {
            "name": name("ds"), "table_name": "t", "location": location, "load_type": "INSERT",
            "data_format": {"file_format": "TEXTFILE", "row_format": "DELIMITED"},
            "columns": [{"name": "c", "data_type": "STRING"}], "compression": "NONE"}})

    def subscribe(self, dataset: dict[str, Any], **data: Any) -> dict[str, Any]:
        return self.api.post(f"/dataset/{dataset['id']}/subscription", {"data": {"name": name("sub"), **data}})

    def settled(self, subscription: dict[str, Any], timeout: float = 120.0) -> str:
        """The state once generation is over (it must leave QUEUED and GENERATING)."""
        return wait_for(lambda: (s := self.api.get(f"/subscription/{subscription['id']}")["data"]["state"])
                        not in ("QUEUED", "GENERATING") and s, timeout, "generation to end")

    def stats(self, subscription: dict[str, Any]) -> list[dict[str, Any]]:
        return self.api.ok("GET", f"/subscription/{subscription['id']}/element_stats")

    def elements(self, subscription: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
        return self.api.ok("GET", f"/subscription/{subscription['id']}/elements", params=params)


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"])


@pytest.fixture(scope="module", params=TWO_WIRINGS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home: Path = tmp_path_factory.mktemp(f"subs-{request.param}")
    env = {"DART_S3_NOTIFICATION_QUEUE": NOTIFICATIONS, "DART_SUBSCRIPTION_PAGE_SIZE": PAGE}
    with ExitStack() as stack:
        if request.param in EMBEDDED:  # production brings its own moto (ECS, SQS, S3) and points dart at it
            s3_endpoint = stack.enter_context(moto_server())
            env.update(AWS_ENV, DART_AWS_ENDPOINT_URL=s3_endpoint)
            _client("sqs", s3_endpoint).create_queue(QueueName=NOTIFICATIONS)
        dart = stack.enter_context(running(request.param, home, env=env))
        endpoint = getattr(dart, "aws_endpoint", None) or env["DART_AWS_ENDPOINT_URL"]
        sqs = _client("sqs", endpoint)
        sqs.create_queue(QueueName=NOTIFICATIONS)
        s3 = _client("s3", endpoint)
        bucket = f"dart-test-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        for key, size in RPMS.items():
            s3.put_object(Bucket=bucket, Key=key, Body=bytes(size))
        for key in OTHERS:
            s3.put_object(Bucket=bucket, Key=key, Body=b"x" * 10)
        api = dart.api()
        register_no_op(api)
        yield World(dart, api, s3, sqs, bucket, endpoint)


def _impala(world: World) -> dict[str, Any]:
    b = world.bucket
    return world.subscribe(world.dataset(f"s3://{b}/impala"), s3_path_start_prefix_inclusive=f"s3://{b}/impala/impala",
                           s3_path_end_prefix_exclusive=f"s3://{b}/impala/install", s3_path_regex_filter=r".*\.rpm")


def _consuming_workflow(world: World, subscription: dict[str, Any]) -> dict[str, Any]:
    return workflow(world.api, datastore(world.api), [
        SUCCEEDS, action_spec("consume_subscription", "consume", args={"subscription_id": subscription["id"]})])


def _instances(world: World, flow: dict[str, Any]) -> list[dict[str, Any]]:
    return world.api.get(f"/workflow/{flow['id']}/instance")


def _three_completed(world: World, flow: dict[str, Any]) -> list[dict[str, Any]]:
    return wait_for(lambda: (i := _instances(world, flow)) and len(i) >= 3
                    and all(x["data"]["state"] in ("COMPLETED", "FAILED") for x in i) and i, 300,
                    "three finished instances")


def _check_consumed_exactly(world: World, subscription: dict[str, Any], flow: dict[str, Any]) -> None:
    instances = _three_completed(world, flow)
    assert len(instances) == 3
    assert [i["data"]["state"] for i in instances] == ["COMPLETED"] * 3
    assert world.stats(subscription) == [{"state": "CONSUMED", "count": 3, "file_size_sum": 153_759_148}]
    # Each run consumed exactly one batch of one file, and read exactly that file through the API.
    seen = []
    for instance in instances:
        [consume] = [a for a in world.api.get("/action", params={
            "filters": [f"workflow_instance_id = {instance['id']}", "action_type_name = consume_subscription"]})]
        given = world.api.ok("GET", f"/action/{consume['id']}/subscription/elements")
        assert len(given) == 1 and given[0]["state"] == "CONSUMED"
        assert consume["data"]["extra_data"]["subscription_elements_read"] == 1
        seen.append(given[0]["s3_path"])
    assert sorted(seen) == sorted(f"s3://{world.bucket}/{k}" for k in RPMS)


def test_consume_subscription(world: World) -> None:
    """Test 11."""
    subscription = _impala(world)
    assert subscription["data"]["state"] == "QUEUED"
    assert world.settled(subscription) == "ACTIVE"
    assert [e["s3_path"] for e in world.elements(subscription)] == sorted(f"s3://{world.bucket}/{k}" for k in RPMS)
    flow = _consuming_workflow(world, subscription)
    world.api.post("/trigger", {"data": {
        "name": name("batch"), "trigger_type_name": "subscription_batch", "state": "ACTIVE",
        "args": {"subscription_id": subscription["id"], "unconsumed_data_size_in_bytes": THRESHOLD},
        "workflow_ids": [flow["id"]]}})
    _check_consumed_exactly(world, subscription, flow)


def test_super_trigger_consume_subscription(world: World) -> None:
    """Test 12: the batch trigger has no workflows; a super ALL trigger on it runs the workflow."""
    subscription = _impala(world)
    assert world.settled(subscription) == "ACTIVE"
    flow = _consuming_workflow(world, subscription)
    batch = world.api.post("/trigger", {"data": {
        "name": name("batch"), "trigger_type_name": "subscription_batch", "state": "ACTIVE",
        "args": {"subscription_id": subscription["id"], "unconsumed_data_size_in_bytes": THRESHOLD},
        "workflow_ids": []}})
    world.api.post("/trigger", {"data": {
        "name": name("super"), "trigger_type_name": "super", "state": "ACTIVE",
        "args": {"fire_after": "ALL", "completed_trigger_ids": [batch["id"]]}, "workflow_ids": [flow["id"]]}})
    _check_consumed_exactly(world, subscription, flow)


def test_an_elements_whole_life_is_in_the_log(world: World) -> None:
    subscription = _impala(world)
    assert world.settled(subscription) == "ACTIVE"
    flow = _consuming_workflow(world, subscription)
    world.api.post(f"/workflow/{flow['id']}/do-manual-trigger", None)  # no batch trigger: it takes them all
    wait_for(lambda: [i for i in _instances(world, flow) if i["data"]["state"] == "COMPLETED"], 120, "the run")
    path = f"s3://{world.bucket}/impala/impala-udf-2.0.0.rpm"
    life = world.api.ok("GET", f"/subscription/{subscription['id']}/element_history", params={"s3_path": path})
    assert [e["state"] for e in life] == ["UNCONSUMED", "ASSIGNED", "CONSUMED"]
    assert life[0]["source"] == "listing" and life[1]["action_id"] == life[2]["action_id"]
    [element] = [e for e in world.elements(subscription) if e["s3_path"] == path]
    assert element["processed"] and element["action_id"] == life[1]["action_id"]
    # processed_after_s3_path: only elements processed no earlier and sorting after it.
    first = world.elements(subscription)[0]["s3_path"]
    after = world.elements(subscription, processed_after_s3_path=first)
    assert [e["s3_path"] for e in after] == [e["s3_path"] for e in world.elements(subscription)][1:]
    status, body = world.api.request("GET", f"/subscription/{subscription['id']}/elements",
                                     params={"processed_after_s3_path": "s3://nope/x"})
    assert status == 400 and "processed_after_s3_path" in json.dumps(body)


def test_a_start_prefix_that_matches_nothing_lists_from_after_it(world: World) -> None:
    b = world.bucket
    subscription = world.subscribe(world.dataset(f"s3://{b}/impala"),
                                   s3_path_start_prefix_inclusive=f"s3://{b}/impala/impala-3")
    assert world.settled(subscription) == "ACTIVE"
    assert [e["s3_path"] for e in world.elements(subscription)] == [
        f"s3://{b}/impala/impala-notes.txt", f"s3://{b}/impala/impala-shell-2.0.0.rpm",
        f"s3://{b}/impala/impala-udf-2.0.0.rpm", f"s3://{b}/impala/install/x.rpm"]


def test_s3_notifications_add_new_files_and_start_a_batch(world: World) -> None:
    b = world.bucket
    prefix = f"arrivals-{uuid.uuid4().hex[:6]}"
    subscription = world.subscribe(world.dataset(f"s3://{b}/{prefix}"), s3_path_regex_filter=r"\.csv$")
    assert world.settled(subscription) == "ACTIVE"
    assert world.stats(subscription) == []
    flow = _consuming_workflow(world, subscription)
    world.api.post("/trigger", {"data": {
        "name": name("batch"), "trigger_type_name": "subscription_batch", "state": "ACTIVE",
        "args": {"subscription_id": subscription["id"], "unconsumed_data_size_in_bytes": 100},
        "workflow_ids": [flow["id"]]}})
    url = world.sqs.get_queue_url(QueueName=NOTIFICATIONS)["QueueUrl"]

    def notify(key: str, size: int) -> None:  # no object is put: only the notification can add the file
        record = {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": b}, "object": {"key": key, "size": size}}}
        envelope = {"Type": "Notification", "Subject": "Amazon S3 Notification",
                    "Message": json.dumps({"Records": [record]})}
        world.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(envelope))

    notify(f"{prefix}/a.csv", 60)
    notify(f"{prefix}/a.csv", 60)  # a repeat changes nothing
    notify(f"{prefix}/skip.json", 500)  # outside the regex
    wait_for(lambda: world.stats(subscription), 60, "the first notified file")
    assert world.stats(subscription) == [{"state": "UNCONSUMED", "count": 1, "file_size_sum": 60}]
    notify(f"{prefix}/b.csv", 50)  # 110 bytes now: one batch of both, one run
    [instance] = wait_for(lambda: [i for i in _instances(world, flow) if i["data"]["state"] == "COMPLETED"], 120,
                          "the batch's run")
    assert world.stats(subscription) == [{"state": "CONSUMED", "count": 2, "file_size_sum": 110}]
    assert len(_instances(world, flow)) == 1


def test_a_generation_killed_midway_resumes_and_records_every_key_once(world: World) -> None:
    """Test 15, the resuming way: the process generating the listing is SIGKILLed after some pages and
    restarted; the subscription ends ACTIVE with every key recorded exactly once."""
    b = world.bucket
    prefix = f"big-{uuid.uuid4().hex[:6]}"
    keys = [f"{prefix}/part-{i:04d}.csv" for i in range(400)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: world.s3.put_object(Bucket=b, Key=k, Body=b"z"), keys))
    subscription = world.subscribe(world.dataset(f"s3://{b}/{prefix}"))
    wait_for(lambda: len(world.elements(subscription)) >= 40, 120, "some pages recorded")
    dart = world.dart
    if dart.wiring in EMBEDDED:
        dart.kill()
        assert world_state_after_kill(dart, subscription) == "GENERATING"
        dart.start()
    else:
        dart.kill("subscriptions")
        assert world_state_after_kill(dart, subscription) == "GENERATING"
        dart.start("subscriptions")
    assert world.settled(subscription, timeout=300) == "ACTIVE"
    listed = [e["s3_path"] for e in world.elements(subscription)]
    assert listed == [f"s3://{b}/{k}" for k in keys]
    status, log = world.api.request("GET", "/log", params={
        "stream": f"subscription_files-{subscription['id']}", "type": "SubscriptionElementsAdded", "limit": 10000})
    assert status == 200, log
    added = log["results"]
    logged = [e["data"]["prefix"] + s for e in added for s, _ in e["data"]["elements"]]
    assert len(logged) == len(set(logged)) == 400
    # Resumed, not restarted: the listing's position only ever moved forward, so no page was listed twice.
    positions = [e["data"]["listed_through"] for e in added if e["data"]["source"] == "listing"]
    assert positions == sorted(positions) and len(positions) == len(set(positions)) == 400 // int(PAGE)


def world_state_after_kill(dart: Running, subscription: dict[str, Any]) -> str:
    """The subscription's state in the database (the API may be down with the killed process)."""
    import sqlalchemy as sa

    with dart.engine().connect() as conn:
        return str(conn.execute(sa.text("SELECT state FROM rm_subscription WHERE id = :i"),
                                {"i": subscription["id"]}).scalar())


def test_a_lost_consumer_returns_its_elements_to_unconsumed(world: World) -> None:
    """A consume_subscription action whose engine dies mid-run is failed by dart (the launcher's lost-engine
    check), and its elements go back to UNCONSUMED for a later run."""
    subscription = _impala(world)
    assert world.settled(subscription) == "ACTIVE"
    store = datastore(world.api, state="ACTIVE", sleep=60)
    [action] = world.api.post(f"/datastore/{store['id']}/action", [
        action_spec("consume_subscription", name("consume"), args={"subscription_id": subscription["id"]})])
    wait_for(lambda: world.api.get(f"/action/{action['id']}")["data"]["state"] == "RUNNING", 120, "RUNNING")
    assert world.stats(subscription) == [{"state": "ASSIGNED", "count": 3, "file_size_sum": 153_759_148}]
    assert world.dart.kill_engine(action["id"]) >= 1
    wait_for(lambda: world.api.get(f"/action/{action['id']}")["data"]["state"] == "FAILED", 120, "FAILED")
    assert world.stats(subscription) == [{"state": "UNCONSUMED", "count": 3, "file_size_sum": 153_759_148}]
    given = world.api.ok("GET", f"/action/{action['id']}/subscription/elements")
    assert {e["state"] for e in given} == {"UNCONSUMED"} and len(given) == 3
