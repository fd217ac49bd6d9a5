"""Subscriptions in-process, on SQLite and PostgreSQL, against S3 and SQS on a loopback moto server: generation
in resumable steps, the range rules, S3 notifications, batch reservation under concurrent evaluators, and
consumption. Workers are driven by hand (``World.pump`` hands every new event to them, as either delivery
adapter would), so a crash is simply a worker that stops being called."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from bench.harness.moto import AWS_ENV
from events.streams.subscription import files_stream
from events.subscription import wait_until
from services.commands import batches, elements
from services.commands.actions import complete_action
from services.commands.context import Orchestration
from services.commands.generation import SubscriptionWorker, on_created_file
from services.commands.orchestrator import Orchestrator
from services.delivery.s3_notifications import (
    S3NotificationReader,
    notification_connection,
    parse_notification,
)
from services.runtime.composition import build
from services.runtime.settings import load_settings
from tests.support.world import ADMIN
from tests.support.world import World as BaseWorld

SIZES = {"impala/impala-2.0.rpm": 152_875_004, "impala/impala-udf.rpm": 834_620,
         "impala/impala-shell.rpm": 49_524}


def client(endpoint: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"])


def put(s3: Any, bucket: str, key: str, size: int = 1) -> None:
    """An object that *says* it has ``size`` bytes would cost that much memory in moto; element sizes come
    from the listing, so the tests that need exact sizes write small bodies and check sizes separately,
    or write real bodies of the size when it is small."""
    s3.put_object(Bucket=bucket, Key=key, Body=b"x" * size)


@dataclass(kw_only=True)
class World(BaseWorld):
    """The test world with a fresh bucket, and the subscriptions worker driven by hand."""

    s3: Any = None
    bucket: str = ""
    page_size: int = 1000
    position: int = 0
    clock_now: datetime | None = None

    def worker(self, page_size: int | None = None) -> SubscriptionWorker:
        clock = (lambda: self.clock_now) if self.clock_now else (lambda: datetime.now(UTC))
        return SubscriptionWorker(self.orch, self.s3, page_size or self.page_size, clock)

    def pump(self, worker: SubscriptionWorker | None = None, steps: int | None = None, orchestrate: bool = True
             ) -> int:
        """Hand every event after the last one seen to the subscriptions worker (and the orchestrator), until
        nothing new is appended, or at most ``steps`` events to the worker. Returns the events handed."""
        worker = worker or self.worker()
        orchestrator = Orchestrator(self.orch)
        handed = 0
        while True:
            batch = self.container.store.read_all(self.position, 1)
            if not batch:
                return handed
            event = batch[0]
            if steps is not None and handed >= steps and event.type in worker.types:
                return handed
            self.position = event.global_position
            if event.type in worker.types:
                worker.handle([event])
                handed += 1
            if orchestrate and event.type in Orchestrator.types:
                orchestrator.handle([event])

    def state(self, subscription_id: str) -> str:
        return self.service.reader.data("subscription", subscription_id)["state"]

    def paths(self, subscription_id: str, state: str | None = None) -> list[str]:
        t = elements.ELEMENTS
        where = [t.c.subscription_id == subscription_id] + ([t.c.state == state] if state else [])
        return [r.s3_path for r in elements.page(self.container.store, where, 100000, 0)]

    def logged_paths(self, subscription_id: str, event_type: str) -> list[str]:
        """Every path the log's events of a type name, with repeats: the log must not hold a path twice."""
        from events.streams.subscription import ELEMENT_EVENTS

        cls = {c.type_name: c for c in ELEMENT_EVENTS}[event_type]
        stream = (files_stream(subscription_id) if event_type == "SubscriptionElementsAdded"
                  else f"subscription-{subscription_id}")
        return [p for e in self.container.store.read_stream(stream) if e.type == event_type
                for p in cls(**e.data).paths()]


@pytest.fixture
def world(db_url: str, make_world: Callable[..., World], moto_endpoint: str) -> World:
    world = make_world(db_url, World)
    world.s3 = client(moto_endpoint, "s3")
    world.bucket = f"b{uuid.uuid4().hex[:12]}"
    world.s3.create_bucket(Bucket=world.bucket)
    return world


def impala(world: World, sizes: dict[str, int] | None = None) -> str:
    """The acceptance tests' bucket layout (reference §15.3 test 11): three matching .rpm files, plus keys
    before, after and beside the range. Bodies are small; sizes are checked through the listing."""
    b = world.bucket
    for key in ["impala/", "impala/aaa.rpm", "impala/impala-2.0.rpm", "impala/impala-shell.rpm",
                "impala/impala-udf.rpm", "impala/impala-notes.txt", "impala/install/x.rpm", "impala/zzz.rpm",
                "impala2/impala-3.rpm"]:
        put(world.s3, b, key, (sizes or {}).get(key, 10))
    return world.subscription(world.dataset(f"s3://{b}/impala/"),
                              s3_path_start_prefix_inclusive=f"s3://{b}/impala/impala",
                              s3_path_end_prefix_exclusive=f"s3://{b}/impala/install",
                              s3_path_regex_filter=r".*\.rpm")


def test_generation_lists_exactly_the_range_and_becomes_active(world: World) -> None:
    world.page_size = 2  # many steps: every page is one event of the chain
    sub = impala(world)
    assert world.state(sub) == "QUEUED"
    world.pump()
    b = world.bucket
    assert world.state(sub) == "ACTIVE"
    assert world.paths(sub) == [f"s3://{b}/impala/impala-2.0.rpm", f"s3://{b}/impala/impala-shell.rpm",
                                f"s3://{b}/impala/impala-udf.rpm"]
    data = world.service.reader.data("subscription", sub)
    assert data["generating_time"] and data["initial_active_time"]
    types = [e.type for e in world.container.store.read_stream(f"subscription-{sub}")]
    assert types[:2] == ["SubscriptionCreated", "SubscriptionGenerationStarted"]
    assert types.count("SubscriptionActivated") == 1
    assert sorted(world.logged_paths(sub, "SubscriptionElementsAdded")) == world.paths(sub)  # each once


def test_a_start_prefix_that_matches_nothing_starts_after_it_not_at_the_root(world: World) -> None:
    b = world.bucket
    for key in ["data/a.csv", "data/m.csv", "data/n/x.csv", "data/z.csv"]:
        put(world.s3, b, key)
    sub = world.subscription(world.dataset(f"s3://{b}/data"), s3_path_start_prefix_inclusive=f"s3://{b}/data/mm")
    world.pump()
    assert world.paths(sub) == [f"s3://{b}/data/n/x.csv", f"s3://{b}/data/z.csv"]


def test_date_tokens_are_resolved_once_at_generation(world: World) -> None:
    b = world.bucket
    for key in ["logs/2026/11/24/a.gz", "logs/2026/11/25/a.gz", "logs/2026/11/25/b.gz", "logs/2026/11/26/a.gz"]:
        put(world.s3, b, key)
    world.clock_now = datetime(2026, 11, 25, 8, 30, tzinfo=UTC)
    sub = world.subscription(world.dataset(f"s3://{b}/logs"),
                             s3_path_start_prefix_inclusive=f"s3://{b}/logs/{{YEAR}}/{{MONTH}}/{{DAY}}",
                             s3_path_regex_filter=r"/{YEAR}/{MONTH}/{DAY}/")
    world.pump()
    assert world.paths(sub) == [f"s3://{b}/logs/2026/11/25/a.gz", f"s3://{b}/logs/2026/11/25/b.gz"]
    # A notification is tested against the same resolved range, whatever the day it arrives.
    assert on_created_file(world.orch, f"s3://{b}/logs/2026/11/25/c.gz", 5, uuid.uuid4()) == [sub]
    assert on_created_file(world.orch, f"s3://{b}/logs/2026/11/27/c.gz", 5, uuid.uuid4()) == []


def test_a_bad_bucket_fails_the_subscription(world: World) -> None:
    sub = world.subscription(world.dataset("s3://no-such-bucket-here/x"))
    world.pump()
    assert world.state(sub) == "FAILED"
    [failed] = [e for e in world.container.store.read_stream(f"subscription-{sub}")
                if e.type == "SubscriptionGenerationFailed"]
    assert "NoSuchBucket" in failed.data["reason"]


def test_a_worker_killed_midway_resumes_where_the_log_stopped(world: World) -> None:
    """Test 15, the resuming way: a worker dies after some pages; a new worker, handed the events again from
    an older checkpoint (at-least-once), finishes the listing with every key recorded exactly once."""
    b = world.bucket
    keys = [f"big/{i:04d}.csv" for i in range(60)]
    for key in keys:
        put(world.s3, b, key)
    sub = world.subscription(world.dataset(f"s3://{b}/big"))
    start = world.position
    world.pump(world.worker(page_size=7), steps=4, orchestrate=False)  # then it "dies"
    assert world.state(sub) == "GENERATING"
    halfway = len(world.paths(sub))
    assert 0 < halfway < 60
    world.position = start  # the new worker's checkpoint is older than the dead one's progress
    world.pump(world.worker(page_size=7))
    assert world.state(sub) == "ACTIVE"
    assert world.paths(sub) == [f"s3://{b}/{k}" for k in keys]
    logged = world.logged_paths(sub, "SubscriptionElementsAdded")
    assert len(logged) == len(set(logged)) == 60
    # Delivering everything once more changes nothing.
    head = world.container.store.head_position()
    world.position = start
    world.pump(world.worker(page_size=7))
    assert world.container.store.head_position() == head


def test_notifications_add_new_matching_files_once(world: World, moto_endpoint: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    sub = impala(world)
    world.pump()
    b = world.bucket
    sqs = client(moto_endpoint, "sqs")
    queue = f"s3-events-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]

    def s3_event(key: str, size: int, name: str = "ObjectCreated:Put") -> dict[str, Any]:
        return {"Records": [{"eventName": name, "s3": {"bucket": {"name": b}, "object": {"key": key, "size": size}}}]}

    sns = {"Type": "Notification", "Subject": "Amazon S3 Notification",
           "Message": json.dumps(s3_event("impala/impala-new+one.rpm", 77))}
    for body in (sns, sns, s3_event("impala/impala-x.txt", 5), s3_event("impala/impala-del.rpm", 5, "ObjectRemoved:Delete"),
                 {"Event": "s3:TestEvent"}):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    sqs.send_message(QueueUrl=url, MessageBody="not json")
    for name, value in AWS_ENV.items():  # the reader finds its credentials as in production: boto3's chain
        monkeypatch.setenv(name, value)
    # Given by URL (a name is what the end-to-end tests use).
    reader = S3NotificationReader(world.orch, *notification_connection(moto_endpoint, "us-east-1", url,
                                                                       wait_time_seconds=1), url)
    reader.start()
    try:
        assert wait_until(lambda: reader.counts["handled"] + reader.counts["dropped"] == 6, 60), reader.counts
    finally:
        assert reader.stop(timeout=15)
    assert reader.counts == {"handled": 5, "dropped": 1, "released": 0}
    new_path = f"s3://{b}/impala/impala-new one.rpm"
    assert new_path in world.paths(sub)
    assert len(world.paths(sub)) == 4
    assert world.logged_paths(sub, "SubscriptionElementsAdded").count(new_path) == 1
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"]["ApproximateNumberOfMessages"] == "0"
    assert parse_notification(json.dumps(s3_event("a%2Fb.rpm", 3))) == [(f"s3://{b}/a/b.rpm", 3)]


def test_a_notification_whose_files_cannot_be_recorded_stays_queued_until_they_are(
        world: World, moto_endpoint: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader acks only after the files are recorded: while recording fails (here a database that lost
    dart's tables) the message stays in the queue and SQS hands it out again after a backoff."""
    sub = impala(world)
    world.pump()
    sqs = client(moto_endpoint, "sqs")
    queue = f"s3-events-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    record = {"eventName": "ObjectCreated:Put",
              "s3": {"bucket": {"name": world.bucket}, "object": {"key": "impala/impala-late.rpm", "size": 9}}}
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"Records": [record]}))
    broken = build(load_settings(env={"DART_HOME": str(tmp_path / "broken"),
                                      "DART_DATABASE_URL": f"sqlite:///{tmp_path / 'broken.db'}"}))
    broken.store.close()
    (tmp_path / "broken.db").unlink()  # its next connection opens an empty file: every read fails
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    reader = S3NotificationReader(Orchestration(broken.store), *notification_connection(
        moto_endpoint, "us-east-1", queue, wait_time_seconds=1), queue, retry_delay=1)
    reader.start()
    try:
        assert wait_until(lambda: reader.counts["released"] >= 2, 60), reader.counts  # handed out again
        assert world.paths(sub) == world.paths(sub, "UNCONSUMED") and len(world.paths(sub)) == 3
        reader.orch = world.orch  # the database is back
        assert wait_until(lambda: reader.counts["handled"] == 1, 60), reader.counts
    finally:
        assert reader.stop(timeout=15)
        broken.store.close()
    assert f"s3://{world.bucket}/impala/impala-late.rpm" in world.paths(sub)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    assert attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}


def _batch_trigger(world: World, sub: str, threshold: int, workflow_ids: list[str]) -> str:
    args = {"subscription_id": sub, "unconsumed_data_size_in_bytes": threshold}
    return world.trigger("subscription_batch", args, workflow_ids)


TEST_11_SIZES = {"impala/impala-2.0.rpm": 152_875, "impala/impala-udf.rpm": 834, "impala/impala-shell.rpm": 49}


def _test_11(world: World) -> tuple[str, str]:
    """Test 11's three files (sizes scaled down 1,000 times), listed, and a workflow consuming them."""
    sub = impala(world, TEST_11_SIZES)
    world.pump()
    return sub, _consuming_workflow(world, sub)


def _reserving_only(world: World, sub: str, threshold: int) -> str:
    """A batch trigger whose fires only reserve: one input of an ALL super trigger (with a workflow) whose
    other input never fires. (A batch trigger leading nowhere would reserve nothing at all.)"""
    trigger = _batch_trigger(world, sub, threshold, [])
    never = _batch_trigger(world, sub, 10**12, [])
    world.trigger("super", {"fire_after": "ALL", "completed_trigger_ids": [trigger, never]},
                  [_consuming_workflow(world, sub)])
    return trigger


def _consuming_workflow(world: World, sub: str, on_failure: str = "DEACTIVATE") -> str:
    return world.workflow(world.datastore(state="TEMPLATE"), [{
        "name": "consume", "action_type_name": "consume_subscription", "args": {"subscription_id": sub},
        "on_failure": on_failure}])


def _queued_consumer(world: World, workflow_id: str) -> dict[str, Any]:
    [action] = [a for a in world.service.reader.find_by("action", workflow_id=workflow_id)
                if a["data"]["state"] == "QUEUED"]
    return action


def test_batches_run_one_at_a_time_until_the_backlog_is_drained(world: World) -> None:
    """Test 11's numbers: three files, threshold 49,524: three batches, three runs, all CONSUMED."""
    sub, flow = _test_11(world)
    trigger = _batch_trigger(world, sub, 49, [flow])
    world.pump()
    for run in range(3):
        action = _queued_consumer(world, flow)
        assigned = [e["s3_path"] for e in _assigned(world, action["id"])]
        assert len(assigned) == 1
        complete_action(world.orch, action["id"], "COMPLETED", None, uuid.uuid4())
        world.pump()
    assert [s["state"] for s in elements.stats(world.container.store, sub)] == ["CONSUMED"]
    [stat] = elements.stats(world.container.store, sub)
    assert stat == {"state": "CONSUMED", "count": 3, "file_size_sum": sum(TEST_11_SIZES.values())}
    instances = world.service.reader.find_by("workflow_instance", workflow_id=flow)
    assert sorted(i["data"]["state"] for i in instances) == ["COMPLETED"] * 3
    assert all(i["data"]["trigger_id"] == trigger for i in instances)
    reserved = world.logged_paths(sub, "SubscriptionBatchReserved")
    assert len(reserved) == len(set(reserved)) == 3


def test_a_batch_whose_run_was_refused_is_fired_again_and_the_last_batch_is_not_left_behind(world: World) -> None:
    """Files arriving while a run is under way reserve a batch whose fire the busy workflow refuses
    (concurrency 1). The next evaluation fires again for that waiting batch instead of reserving another,
    so every batch is consumed once the arrivals stop."""
    sub, flow = _test_11(world)
    trigger = _batch_trigger(world, sub, 49, [flow])
    world.pump()
    first = _queued_consumer(world, flow)
    assert batches.evaluate(world.orch, trigger, uuid.uuid4())  # as if new files arrived: reserved, refused
    world.pump()
    assert len(world.service.reader.find_by("workflow_instance", workflow_id=flow)) == 1
    assert elements.reserved_batches(world.container.store, sub) == 1
    consumed = [first]
    for _ in range(3):
        complete_action(world.orch, consumed[-1]["id"], "COMPLETED", None, uuid.uuid4())
        world.pump()
        queued = [a for a in world.service.reader.find_by("action", workflow_id=flow)
                  if a["data"]["state"] == "QUEUED"]
        if not queued:
            break
        consumed += queued
    assert len(consumed) == 3
    assert [len(_assigned(world, a["id"])) for a in consumed] == [1, 1, 1]
    [stat] = elements.stats(world.container.store, sub)
    assert stat == {"state": "CONSUMED", "count": 3, "file_size_sum": sum(TEST_11_SIZES.values())}
    assert len(world.logged_paths(sub, "SubscriptionBatchReserved")) == 3


def test_a_batch_trigger_that_leads_nowhere_reserves_nothing_until_a_super_trigger_is_set(world: World) -> None:
    """Test 12's order: the batch trigger (no workflows) is created a moment before the super trigger on it.
    Its first evaluation leads nowhere and reserves nothing; the super trigger's creation evaluates it. Batches
    reserved by later evaluations whose runs were refused are fired for again as runs complete."""
    sub, flow = _test_11(world)
    trigger = _batch_trigger(world, sub, 49, [])
    world.pump()
    assert world.logged_paths(sub, "SubscriptionBatchReserved") == []
    world.trigger("super", {"fire_after": "ALL", "completed_trigger_ids": [trigger]}, [flow])
    world.pump()
    # Deliveries out of order (a broker does not keep it): the trigger's creation and the subscription's
    # activation evaluated again after the super trigger's. Every batch is reserved; one run starts.
    assert batches.evaluate(world.orch, trigger, uuid.uuid4()) and batches.evaluate(world.orch, trigger, uuid.uuid4())
    world.pump()
    assert elements.reserved_batches(world.container.store, sub) == 2
    assert len(world.service.reader.find_by("workflow_instance", workflow_id=flow)) == 1
    for _ in range(3):  # each completion fires again for a waiting batch
        action = _queued_consumer(world, flow)
        assert len(_assigned(world, action["id"])) == 1
        complete_action(world.orch, action["id"], "COMPLETED", None, uuid.uuid4())
        world.pump()
    [stat] = elements.stats(world.container.store, sub)
    assert stat == {"state": "CONSUMED", "count": 3, "file_size_sum": sum(TEST_11_SIZES.values())}


def _assigned(world: World, action_id: str) -> list[dict[str, Any]]:
    rows = elements.page(world.container.store, [elements.ELEMENTS.c.action_id == action_id], 10000, 0)
    return [elements.element_envelope(r) for r in rows]


def test_a_failed_consume_returns_its_elements_to_unconsumed(world: World) -> None:
    sub = impala(world)
    world.pump()
    flow = _consuming_workflow(world, sub, "HALT")  # no batch trigger: the action takes every unbatched element
    from services.commands.triggers import fire_manual

    fire_manual(world.orch, flow, ADMIN.user_id, uuid.uuid4())
    world.pump()
    action = _queued_consumer(world, flow)
    assert len(_assigned(world, action["id"])) == 3
    assert [s["state"] for s in elements.stats(world.container.store, sub)] == ["ASSIGNED"]
    complete_action(world.orch, action["id"], "FAILED", "boom", uuid.uuid4())
    world.pump()
    assert [(s["state"], s["count"]) for s in elements.stats(world.container.store, sub)] == [("UNCONSUMED", 3)]
    assert {e["action_id"] for e in _assigned(world, action["id"])} == {action["id"]}  # kept, as the original

    # The next run takes them again, and consumes them.
    fire_manual(world.orch, flow, ADMIN.user_id, uuid.uuid4())
    world.pump()
    second = _queued_consumer(world, flow)
    assert len(_assigned(world, second["id"])) == 3
    complete_action(world.orch, second["id"], "COMPLETED", None, uuid.uuid4())
    world.pump()
    assert [(s["state"], s["count"]) for s in elements.stats(world.container.store, sub)] == [("CONSUMED", 3)]
    assert world.logged_paths(sub, "SubscriptionElementsReleased") == world.paths(sub)


def test_consume_state_overrides_the_action_result(world: World) -> None:
    sub = impala(world)
    world.pump()
    flow = _consuming_workflow(world, sub, "HALT")
    from services.commands.triggers import fire_manual

    fire_manual(world.orch, flow, ADMIN.user_id, uuid.uuid4())
    world.pump()
    action = _queued_consumer(world, flow)
    complete_action(world.orch, action["id"], "FAILED", "late step failed", uuid.uuid4(), consume_state="SUCCESS")
    world.pump()
    assert [(s["state"], s["count"]) for s in elements.stats(world.container.store, sub)] == [("CONSUMED", 3)]
    history = [e.type for e in world.container.store.read_stream(f"subscription-{sub}")]
    assert history.count("SubscriptionElementsAssigned") == 1 and history.count("SubscriptionElementsConsumed") == 1


def test_four_concurrent_evaluators_never_put_an_element_in_two_batches(world: World, tmp_path: Any) -> None:
    b = world.bucket
    for i in range(120):
        put(world.s3, b, f"many/{i:03d}.csv", 1)
    sub = world.subscription(world.dataset(f"s3://{b}/many"))
    world.pump()
    trigger = _reserving_only(world, sub, 7)
    orchs = [world.replica(tmp_path / f"r{n}") for n in range(4)]
    barrier = threading.Barrier(4)
    fired = [0] * 4
    errors: list[BaseException] = []

    def evaluator(n: int) -> None:
        try:
            barrier.wait()
            for _ in range(6):
                fired[n] += batches.evaluate(orchs[n], trigger, uuid.uuid4())
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=evaluator, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    reserved = world.logged_paths(sub, "SubscriptionBatchReserved")
    assert len(reserved) == len(set(reserved))  # no element in two batches
    assert sum(fired) == 17 == len(reserved) // 7  # 120 // 7 batches of 7; the rest stays below the threshold
    rows = elements.page(world.container.store, [elements.ELEMENTS.c.subscription_id == sub], 1000, 0)
    by_batch: dict[str, int] = {}
    for row in rows:
        if row.state == "RESERVED":
            by_batch[row.batch_id] = by_batch.get(row.batch_id, 0) + 1
    assert sorted(by_batch.values()) == [7] * 17


class CountingS3:
    """The real boto3 client, counting the keys S3 returns (how much of the bucket a listing walked)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.keys = 0

    def list_objects_v2(self, **request: Any) -> Any:
        response = self.client.list_objects_v2(**request)
        self.keys += len(response.get("Contents") or [])
        return response


def test_a_start_prefix_is_reached_without_walking_the_folder_before_it(world: World) -> None:
    b = world.bucket
    for i in range(120):
        put(world.s3, b, f"logs/2016/11/24/{i:03d}.gz")
    for i in range(5):
        put(world.s3, b, f"logs/2016/11/25/{i:03d}.gz")
    sub = world.subscription(world.dataset(f"s3://{b}/logs"), s3_path_start_prefix_inclusive=f"s3://{b}/logs/2016/11/25")
    counting = CountingS3(world.s3)
    world.pump(SubscriptionWorker(world.orch, counting, 1000))
    assert len(world.paths(sub)) == 5
    assert counting.keys <= 5 + 5  # the first listing and the gap listing: never the 120 keys of the 24th


def test_two_consumers_of_one_subscription_queued_together_each_get_their_own_elements(world: World) -> None:
    """Two workflows on one ACTIVE datastore, each consuming the same subscription, fired together: one
    decision queues only one of them (both in one append would name the subscription's stream twice, and would
    hand both the same elements); the next decision queues the other, with what is left."""
    sub = impala(world)
    world.pump()
    datastore = world.datastore()
    flows = [world.workflow(datastore, [{"name": "consume", "action_type_name": "consume_subscription",
                                         "args": {"subscription_id": sub}}]) for _ in range(2)]
    from services.commands.triggers import fire_manual

    for flow in flows:  # both instances exist before the orchestrator sees either
        fire_manual(world.orch, flow, ADMIN.user_id, uuid.uuid4())
    world.pump()  # the first decision sees both actions and queues one; the next queues the other
    queued = [a for f in flows for a in world.service.reader.find_by("action", workflow_id=f)
              if a["data"]["state"] == "QUEUED"]
    assert sorted(len(_assigned(world, a["id"])) for a in queued) == [0, 3]
    for action in queued:
        complete_action(world.orch, action["id"], "COMPLETED", None, uuid.uuid4())
    world.pump()
    assert [(s["state"], s["count"]) for s in elements.stats(world.container.store, sub)] == [("CONSUMED", 3)]
    consumed = world.logged_paths(sub, "SubscriptionElementsConsumed")
    assert len(consumed) == len(set(consumed)) == 3


def test_decisions_on_elements_do_not_lose_to_arriving_files(world: World, tmp_path: Any) -> None:
    """Files keep arriving (notifications, other processes) while batches are reserved: the reservations
    are guarded by the subscription's version, which new files do not move, so none of them starves."""
    b = world.bucket
    for i in range(40):
        put(world.s3, b, f"busy/{i:03d}.csv")
    sub = world.subscription(world.dataset(f"s3://{b}/busy"))
    world.pump()
    trigger = _reserving_only(world, sub, 5)
    adder = world.replica(tmp_path / "adder")
    stop = threading.Event()
    added: list[int] = []

    def arrive() -> None:
        n = 0
        while not stop.is_set():
            added.append(len(on_created_file(adder, f"s3://{b}/busy/new-{n:05d}.csv", 1, uuid.uuid4())))
            n += 1

    thread = threading.Thread(target=arrive)
    thread.start()
    try:
        fired = sum(batches.evaluate(world.orch, trigger, uuid.uuid4()) for _ in range(8))
    finally:
        stop.set()
        thread.join(60)
    assert fired == 8 and sum(added) > 0
    reserved = world.logged_paths(sub, "SubscriptionBatchReserved")
    assert len(reserved) == len(set(reserved)) == 40  # the listed files, in path order, 8 batches of 5
    logged = world.logged_paths(sub, "SubscriptionElementsAdded")
    assert len(logged) == len(set(logged)) == 40 + sum(added)


def test_a_fire_whose_run_was_not_started_before_a_crash_starts_it_when_redelivered(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = impala(world)
    world.pump()
    flow = _consuming_workflow(world, sub)
    trigger = _batch_trigger(world, sub, 1, [])
    world.service.update("trigger", trigger, lambda d: {**d, "state": "INACTIVE"}, ADMIN)  # evaluated by hand
    world.pump()
    world.service.update("trigger", trigger, lambda d: {**d, "state": "ACTIVE", "workflow_ids": [flow]}, ADMIN)
    from services.commands import triggers

    real = triggers.start_instance

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise SystemExit("the worker died after recording the fire")

    cause = uuid.uuid4()
    monkeypatch.setattr(triggers, "start_instance", crash)
    with pytest.raises(SystemExit):
        batches.evaluate(world.orch, trigger, cause)
    assert world.service.reader.find_by("workflow_instance", workflow_id=flow) == []
    monkeypatch.setattr(triggers, "start_instance", real)
    assert batches.evaluate(world.orch, trigger, cause) is False  # the same delivery again: no second batch
    [instance] = world.service.reader.find_by("workflow_instance", workflow_id=flow)
    assert instance["data"]["trigger_id"] == trigger
    assert len(world.logged_paths(sub, "SubscriptionBatchReserved")) == 1


def test_the_gap_listing_ids_follow_the_files_so_a_redelivery_still_adds_new_ones(world: World) -> None:
    from services.commands.generation import add_files
    from services.domain.s3_range import Range

    sub = impala(world)
    world.pump()
    scope = Range.from_dict(world.container.store.read_stream(f"subscription-{sub}")[1].data["range"])
    cause = uuid.uuid4()
    b = world.bucket
    assert add_files(world.orch, sub, scope, [(f"s3://{b}/impala/impala-5.rpm", 1)], "gap", cause) == 1
    assert add_files(world.orch, sub, scope, [(f"s3://{b}/impala/impala-5.rpm", 1)], "gap", cause) == 0
    assert add_files(world.orch, sub, scope, [(f"s3://{b}/impala/impala-6.rpm", 1)], "gap", cause) == 1
    assert len(world.paths(sub)) == 5


def test_a_subscription_with_a_bad_regex_is_refused_at_creation(world: World) -> None:
    from services.domain.errors import BadRequest

    with pytest.raises(BadRequest, match="s3_path_regex_filter"):
        world.subscription(world.dataset(f"s3://{world.bucket}/x"), s3_path_regex_filter="(unclosed")


def test_very_long_keys_are_recorded(world: World) -> None:
    b = world.bucket
    long_key = "long/" + "k" * 1010 + ".csv"  # with s3://bucket/ over 1,024 characters
    put(world.s3, b, long_key)
    put(world.s3, b, "long/short.csv")
    sub = world.subscription(world.dataset(f"s3://{b}/long"), s3_path_regex_filter=r"short")
    world.pump()
    assert world.state(sub) == "ACTIVE" and world.paths(sub) == [f"s3://{b}/long/short.csv"]
    sub2 = world.subscription(world.dataset(f"s3://{b}/long"))
    world.pump()
    assert f"s3://{b}/{long_key}" in world.paths(sub2)


def test_a_stalled_generation_is_kicked_from_the_head_of_its_chain(world: World) -> None:
    from datetime import timedelta

    b = world.bucket
    for i in range(30):
        put(world.s3, b, f"kick/{i:03d}.csv")
    sub = world.subscription(world.dataset(f"s3://{b}/kick"))
    world.pump(world.worker(page_size=7), steps=3, orchestrate=False)  # then every delivery is given up on
    assert world.state(sub) == "GENERATING"
    worker = world.worker(page_size=7)
    assert worker.kick(timedelta(hours=1)) == 0  # not stale yet
    while world.state(sub) == "GENERATING":
        assert worker.kick(timedelta(0)) == 1  # one page a kick, without any delivery
    assert world.state(sub) == "ACTIVE" and len(world.paths(sub)) == 30
