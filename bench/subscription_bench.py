"""Subscriptions at scale (issue 5): generating a large listing, and reserving, assigning and consuming a
large batch, each against a baseline run in the same process.

    .venv/bin/python -m bench.subscription_bench [--objects 100000] [--batch 10000] [--quick]

1. Generation. An S3 server (moto, in a child process) holds ``--objects`` objects, put straight into its
   in-memory backend (the fastest way to fill it). `dart up` (embedded, SQLite) is started with
   DART_AWS_ENDPOINT_URL pointing at it; the clock runs from the subscription's POST until the API says
   ACTIVE. Baseline: listing the same keys with boto3's paginator and doing nothing with them, which is what
   the S3 server alone costs. Memory: `dart up`'s peak RSS (VmHWM) growth during generation, for a listing a
   tenth the size and for the full one: flat means the two are close.
2. Batch. A subscription with ``--batch`` elements (in-process, SQLite and PostgreSQL): the time to reserve
   them all as one batch (one subscription_batch evaluation, which also starts the run of the trigger's
   workflow), assign them to that run's consume_subscription action (queueing it) and consume them
   (completing it). Baseline: one bare ``UPDATE ... WHERE s3_path IN (...)``
   per 900 paths on the same table, the least a state change of every element costs.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

BUCKET = "bench-bucket"
SIZE = 1234


# ------------------------------------------------------------------------------------------ the S3 server
def serve(objects: int, prefixes: list[str]) -> None:
    """Child process: a moto server on a free port whose bucket holds ``objects`` keys under each prefix."""
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    _index_listings()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    backend = s3_backends["123456789012"]["aws"]
    backend.create_bucket(BUCKET, "us-east-1")
    body = b"x" * SIZE
    for prefix in prefixes:
        for i in range(objects):
            backend.put_object(BUCKET, f"{prefix}/part-{i:07d}.csv", body)
    print("ENDPOINT " + json.dumps({"endpoint": f"http://{host}:{port}"}), flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.stop()


def _index_listings() -> None:
    """moto lists a bucket by sorting every key on every call (0.6 s a page at 10,000 keys, so a 100,000-key
    listing would take the S3 server alone ten minutes). For this benchmark's server, list from a sorted index
    of the (static) bucket instead: the same wire protocol and results, at a real S3's cost per page. The
    baseline listing pays the same, so the ratio isolates dart's own work."""
    import bisect

    from moto.s3.models import FakeKey, S3Backend

    original = S3Backend.list_objects_v2
    index: dict[int, tuple[int, list[str]]] = {}

    def list_objects_v2(self: Any, bucket: Any, prefix: str | None, delimiter: str | None,
                        continuation_token: str | None, start_after: str | None, max_keys: int) -> Any:
        if delimiter:
            return original(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys)
        cached = index.get(id(bucket))
        if cached is None or cached[0] != len(bucket.keys):
            cached = index[id(bucket)] = (len(bucket.keys), sorted(bucket.keys.keys()))
        names = cached[1]
        prefix = prefix or ""
        limit = (self._pagination_tokens.get(continuation_token) if continuation_token else start_after) or ""
        if limit >= prefix:
            at = bisect.bisect_right(names, max(limit, prefix))
        else:
            at = bisect.bisect_left(names, prefix)
        found: list[Any] = []
        while at < len(names) and len(found) <= max_keys and names[at].startswith(prefix):
            key = bucket.keys.get(names[at])
            if isinstance(key, FakeKey):
                found.append(key)
            at += 1
        return self._truncate_result(found, max_keys)

    S3Backend.list_objects_v2 = list_objects_v2  # type: ignore[method-assign]

    # moto 5.2's generic response serializer spends ~0.4 s on a 1,000-key page; render ListObjectsV2's XML
    # (the same document) directly.
    from xml.sax.saxutils import escape

    from moto.s3.responses import S3Response

    generic = S3Response.serialized

    def serialized(self: Any, action_result: Any) -> Any:
        result = getattr(action_result, "result", None)
        if (self.data.get("Action") != "ListObjectsV2" or not isinstance(result, dict)
                or "Delimiter" in result):
            return generic(self, action_result)
        parts = ['<?xml version="1.0" encoding="UTF-8"?>',
                 '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">']
        for name in ("Name", "Prefix", "MaxKeys", "KeyCount"):
            parts.append(f"<{name}>{escape(str(result[name]))}</{name}>")
        parts.append(f"<IsTruncated>{'true' if result['IsTruncated'] else 'false'}</IsTruncated>")
        for item in result["Contents"]:
            parts.append(f"<Contents><Key>{escape(item['Key'])}</Key><LastModified>{item['LastModified']}"
                         f"</LastModified><ETag>{escape(item['ETag'])}</ETag><Size>{item['Size']}</Size>"
                         f"<StorageClass>{item['StorageClass']}</StorageClass></Contents>")
        for name in ("EncodingType", "NextContinuationToken", "StartAfter"):
            if name in result:
                parts.append(f"<{name}>{escape(str(result[name]))}</{name}>")
        parts.append("</ListBucketResult>")
        headers = {"Content-Type": "application/xml", **self.response_headers}
        return 200, headers, "".join(parts)

    S3Response.serialized = serialized  # type: ignore[method-assign]


class S3Server:
    def __init__(self, objects: int, prefixes: list[str]) -> None:
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.subscription_bench", "--serve", str(objects), *prefixes],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        assert self.proc.stdout is not None
        while True:  # the server may print its own lines first
            line = self.proc.stdout.readline().decode()
            if not line:
                raise RuntimeError("the S3 server did not start")
            if line.startswith("ENDPOINT "):
                self.endpoint = json.loads(line[len("ENDPOINT "):])["endpoint"]
                return

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


def bare_listing(endpoint: str, prefix: str) -> tuple[float, int]:
    from services.adapters.aws import listing_client

    client = listing_client("us-east-1", endpoint, aws_access_key_id="testing",
                            aws_secret_access_key="testing")
    started = time.perf_counter()
    count = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/"):
        count += len(page.get("Contents") or [])
    return time.perf_counter() - started, count


def peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def generation(endpoint: str, prefix: str, expected: int) -> dict[str, Any]:
    """`dart up` on SQLite: POST a subscription on the prefix, time it to ACTIVE; peak RSS before, after."""
    from bench.harness.stacks import RunningDart

    home = Path(tempfile.mkdtemp(prefix="dart-sub-bench-"))
    dart = RunningDart(home, None, DART_AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing",
                       AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                       DART_POLL_INTERVAL="0.5")
    try:
        api = dart.api()
        dataset = api.post("/dataset", {"data": {
            "name": f"bench_{uuid.uuid4().hex[:6]}", "table_name": "t", "location": f"s3://{BUCKET}/{prefix}",
            "load_type": "INSERT", "data_format": {"file_format": "TEXTFILE", "row_format": "DELIMITED"},
            "columns": [{"name": "c", "data_type": "STRING"}], "compression": "NONE"}})
        time.sleep(0.5)
        rss_before = peak_rss_kb(dart.proc.pid)
        started = time.perf_counter()
        sub = api.post(f"/dataset/{dataset['id']}/subscription", {"data": {"name": "bench"}})
        while True:
            state = api.get(f"/subscription/{sub['id']}")["data"]["state"]
            if state not in ("QUEUED", "GENERATING"):
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        rss_after = peak_rss_kb(dart.proc.pid)
        stats = api.ok("GET", f"/subscription/{sub['id']}/element_stats")
        events = len(api.request("GET", "/log", params={"stream": f"subscription_files-{sub['id']}",
                                                        "limit": 10000})[1]["results"])
    finally:
        dart.stop()
    count = sum(s["count"] for s in stats)
    if state != "ACTIVE" or count != expected:
        raise RuntimeError(f"generation ended {state} with {count} elements, expected ACTIVE and {expected}")
    return {"seconds": seconds, "elements": count, "events": events,
            "rss_growth_mb": (rss_after - rss_before) / 1024}


# ----------------------------------------------------------------------------------------------- batches
def batch_run(url: str, size: int) -> dict[str, float]:
    import sqlalchemy as sa

    from engines.no_op.definition import NO_OP_ENGINE
    from events.streams.subscription import (
        SubscriptionElementsAdded,
        SubscriptionGenerationStarted,
        files_stream,
    )
    from events.types import Metadata, NewEvent, StreamAppend
    from projections.reads import TABLES
    from services.commands import batches, elements
    from services.commands.actions import complete_action, try_next_actions
    from services.commands.auth import Principal
    from services.commands.context import Orchestration
    from services.commands.entities import EntityService
    from services.domain.s3_range import Range
    from services.runtime.composition import build
    from services.runtime.settings import load_settings

    admin = Principal(key="bench", user_id="bench@example.com", scope="admin")
    home = tempfile.mkdtemp(prefix="dart-batch-bench-")
    container = build(load_settings(env={"DART_HOME": home, "DART_DATABASE_URL": url}))
    store = container.store
    service = EntityService(store, container)
    orch = Orchestration(store)
    try:
        service.create("engine", {"data": copy.deepcopy(NO_OP_ENGINE)}, admin)
        dataset = service.create("dataset", {"data": {
            "name": "bench", "table_name": "t", "location": "s3://bench/data", "load_type": "INSERT",
            "data_format": {"file_format": "TEXTFILE", "row_format": "DELIMITED"},
            "columns": [{"name": "c", "data_type": "STRING"}], "compression": "NONE"}}, admin)
        sub = service.create("subscription", {"data": {"name": "bench"}}, admin, dataset["id"])["id"]
        scope = Range("s3://bench/data")
        meta = Metadata(actor="bench")
        appends = [NewEvent(SubscriptionGenerationStarted({"state": "GENERATING"}, scope.as_dict()), meta)]
        for start in range(0, size, 1000):
            appends.append(NewEvent(SubscriptionElementsAdded(
                scope.prefix, [[f"part-{i:07d}.csv", SIZE] for i in range(start, min(size, start + 1000))],
                "listing", None, start + 1000 < size), meta))
        store.append(StreamAppend(f"subscription-{sub}", 1, appends[:1]),
                     StreamAppend(files_stream(sub), 0, appends[1:]))
        from events.streams.subscription import SubscriptionActivated

        version = orch.reader.row("subscription", sub).version
        activated = NewEvent(SubscriptionActivated({"state": "ACTIVE"}), meta)
        store.append(StreamAppend(f"subscription-{sub}", version, [activated]))
        ds = service.create("datastore", {"data": {"name": "bench_ds", "engine_name": "no_op_engine",
                                                   "state": "ACTIVE", "args": {}}}, admin)
        # What a user sets up: a workflow whose one action consumes the subscription, started by the batch
        # trigger (a batch trigger that leads to no workflow reserves nothing). No orchestrator runs here, so
        # the run's action waits, HAS_NEVER_RUN, until this benchmark queues it.
        flow = service.create("workflow", {"data": {"name": "bench_wf", "state": "ACTIVE"}}, admin, ds["id"])
        service.create_many("action", [{"name": "consume", "action_type_name": "consume_subscription",
                                        "args": {"subscription_id": sub}}], admin, ("workflow", flow["id"]))
        trigger = service.create("trigger", {"data": {
            "name": "bench_batch", "trigger_type_name": "subscription_batch", "state": "INACTIVE",
            "args": {"subscription_id": sub, "unconsumed_data_size_in_bytes": size * SIZE},
            "workflow_ids": [flow["id"]]}}, admin)["id"]
        service.update("trigger", trigger, lambda d: {**d, "state": "ACTIVE"}, admin)

        # reserve: one evaluation reserves the batch and fires, which starts the run (one small append more
        # than the reservation itself).
        started = time.perf_counter()
        assert batches.evaluate(orch, trigger, uuid.uuid4()), "the batch trigger reserved nothing"
        reserve = time.perf_counter() - started
        table = TABLES["action"]
        [action] = orch.actions_where(table.c.workflow_id == flow["id"],
                                      table.c.workflow_instance_id.is_not(None))
        started = time.perf_counter()
        assert try_next_actions(orch, ds["id"], uuid.uuid4()) == [action["id"]]
        assign = time.perf_counter() - started
        t = elements.ELEMENTS
        started = time.perf_counter()
        assert complete_action(orch, action["id"], "COMPLETED", None, uuid.uuid4())
        consume = time.perf_counter() - started
        stats = elements.stats(store, sub)
        assert stats == [{"state": "CONSUMED", "count": size, "file_size_sum": size * SIZE}], stats
        paths = elements.paths_where(store, t.c.subscription_id == sub)
        started = time.perf_counter()
        with store.transaction() as conn:
            for start in range(0, len(paths), 900):
                chunk = paths[start:start + 900]
                conn.execute(sa.update(t).where(t.c.subscription_id == sub, t.c.s3_path.in_(chunk))
                             .values(state="RESERVED", batch_id="bare"))
        bare = time.perf_counter() - started
    finally:
        store.close()
    return {"reserve_s": reserve, "assign_s": assign, "consume_s": consume, "bare_update_s": bare}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="10,000 objects and a 2,000-element batch")
    parser.add_argument("--database-url", default=os.environ.get("DART_BENCH_DATABASE_URL",
                                                                 "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("prefixes", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve, args.prefixes)
        return 0
    if args.quick:
        args.objects, args.batch = 10_000, 2_000
    small = max(1, args.objects // 10)
    print(f"filling the S3 server with {args.objects:,} + {small:,} objects ...", flush=True)
    server = S3Server(args.objects, ["full"])
    small_server = S3Server(small, ["small"])
    try:
        bare_s, listed = bare_listing(server.endpoint, "full")
        assert listed == args.objects, listed
        full = generation(server.endpoint, "full", args.objects)
        tenth = generation(small_server.endpoint, "small", small)
    finally:
        server.stop()
        small_server.stop()
    from bench.harness import pg

    results: dict[str, Any] = {"objects": args.objects, "bare_listing_s": bare_s, "generation": full,
                               "generation_tenth": tenth, "batches": {}}
    results["batches"]["sqlite"] = batch_run(f"sqlite:///{tempfile.mkdtemp()}/bench.db", args.batch)
    with pg.temporary_database(args.database_url) as url:
        results["batches"]["postgres"] = batch_run(url, args.batch)

    print(f"\ngeneration of {args.objects:,} objects (dart up, SQLite, moto S3 on loopback)")
    rate = full['elements'] / full['seconds']
    print(f"  POST -> ACTIVE            {full['seconds']:8.1f} s   ({rate:,.0f} elements/s,"
          f" {full['events']} element events)")
    print(f"  baseline: bare listing    {bare_s:8.1f} s   ratio {full['seconds'] / bare_s:.2f}")
    print(f"  peak RSS growth           {full['rss_growth_mb']:8.1f} MB  (a listing a tenth the size: "
          f"{tenth['rss_growth_mb']:.1f} MB in {tenth['seconds']:.1f} s)")
    print(f"\na {args.batch:,}-element batch")
    print(f"{'store':<10} {'reserve s':>10} {'assign s':>10} {'consume s':>10} {'bare UPDATE s':>14}")
    for name, row in results["batches"].items():
        print(f"{name:<10} {row['reserve_s']:>10.3f} {row['assign_s']:>10.3f} {row['consume_s']:>10.3f} "
              f"{row['bare_update_s']:>14.3f}")
    print("BENCH_JSON " + json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
