"""``dart up --sandbox``: the seed's data chain on a laptop with no AWS account. A local AWS API server (moto's
server mode, from the ``sandbox`` extra) on loopback, dart and its engines pointed at it, a bucket of synthetic
web logs (services/runtime/sandbox_data.py), and the example chain as entities (a workflow's actions run on
its datastore's engine, so the S3 steps are workflows of their own, chained by completion triggers):

    workflow "sandbox-check-logs" (s3_engine datastore "sandbox-s3")
        check_logs    data_check: today's log files are there
    -> on its completion, workflow "sandbox-weblogs" (duckdb_engine datastore "sandbox-warehouse")
        load_logs     load_dataset: today's files into DuckDB (RELOAD_ALL: a re-run replaces the day)
        aggregate     execute_sql: hits, bytes and mean duration per status into a report table
        unload_report copy_to_s3: the report as CSV to s3://dart-sandbox/reports/YYYY-MM-DD/
    -> on its completion, workflow "sandbox-publish" (the s3_engine datastore again)
        publish       copy of the report to s3://dart-sandbox/published/YYYY-MM-DD/

``dart sandbox --wait`` runs the chain and prints the report. The sandbox is for a laptop: with a PostgreSQL
database URL (a production setting) ``--sandbox`` is refused unless ``--force-sandbox`` says it is meant.
The AWS server keeps its data in memory: each start writes the sample files again (the same bytes)."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.runtime.demo import DemoError, RestClient, api_key
from services.runtime.sandbox_data import BUCKET, COLUMNS, DEFAULT_LINES, LOGS_PREFIX, seed_bucket
from services.runtime.settings import Settings

log = logging.getLogger("dart.sandbox")
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox", "AWS_DEFAULT_REGION": "us-east-1"}
STATE_FILE = "sandbox.json"
DATASET, WAREHOUSE, STORE = "sandbox_weblogs", "sandbox-warehouse", "sandbox-s3"
CHECK, CHAIN, PUBLISH = "sandbox-check-logs", "sandbox-weblogs", "sandbox-publish"
DAY = "{YEAR}-{MONTH}-{DAY}"
REPORT_SQL = ("CREATE OR REPLACE TABLE main.status_report AS SELECT status, count(*) AS hits, sum(bytes) AS bytes, "
              "round(avg(duration_ms), 1) AS avg_ms FROM main.weblogs GROUP BY status")


class SandboxError(Exception):
    """The sandbox cannot start or run; the message says why and what to do."""


def refuse_production(settings: Settings, force: bool) -> None:
    if settings.effective_database_url.startswith("postgresql") and not force:
        raise SandboxError("--sandbox points dart's engines at a local fake AWS: refused with a PostgreSQL database "
                           "URL (a production setting); unset DART_DATABASE_URL, or pass --force-sandbox if this "
                           "really is a scratch database")


@dataclass
class LocalAws:
    """moto's server on loopback, in its own process."""

    process: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_local_aws(home: Path, timeout: float = 60.0) -> LocalAws:
    if importlib.util.find_spec("moto") is None:
        raise SandboxError("the sandbox needs moto's server: pip install 'dart[sandbox]' (./dart installs it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "logs" / "sandbox-aws.log" if (home / "logs").is_dir() else home / "sandbox-aws.log",
              "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                   env={**os.environ, **CREDENTIALS}, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).read()
            return LocalAws(process, url)
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SandboxError("the sandbox's local AWS server did not start (see sandbox-aws.log)") from None
            time.sleep(0.1)


def point_at(settings: Settings, aws: LocalAws) -> Settings:
    """dart's settings and this process's environment (which local engines inherit the AWS_ part of) aimed at
    the local server, with throwaway credentials."""
    os.environ.update({**CREDENTIALS, "AWS_ENDPOINT_URL": aws.url})
    return settings.model_copy(update={"aws_endpoint_url": aws.url, "aws_region": CREDENTIALS["AWS_DEFAULT_REGION"],
                                       "action_logs_s3": "on"})  # each action's log also under s3_logs_path


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
                        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])


def seed(endpoint: str, lines: int = DEFAULT_LINES, datastores_root: str = "s3://dart/datastores") -> int:
    """Today's (UTC) sample logs in the bucket, and the bucket of datastores' artifacts and logs; the number of
    lines the day holds."""
    s3 = s3_client(endpoint)
    try:
        s3.create_bucket(Bucket=datastores_root.removeprefix("s3://").split("/", 1)[0])
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    return seed_bucket(s3, datetime.now(UTC).date(), lines)


def record(home: Path, endpoint: str, lines: int, ready: bool) -> None:
    """Where the sandbox's AWS is, for ``dart sandbox``; ``ready`` once the chain's entities exist."""
    (home / STATE_FILE).write_text(json.dumps({"aws_endpoint_url": endpoint, "bucket": BUCKET, "lines": lines,
                                               "ready": ready}))


def _find(client: RestClient, entity: str, name: str) -> dict[str, Any] | None:
    found = client.call("GET", f"/{entity}", params={"filters": [f"name = {name}"]})
    return found[0] if found else None


def _ensure(client: RestClient, entity: str, name: str, data: dict[str, Any], path: str | None = None) -> str:
    existing = _find(client, entity, name)
    if existing:
        return str(existing["id"])
    return str(client.call("POST", path or f"/{entity}", {"data": {"name": name, **data}})["id"])


def _action(name: str, engine: str, action_type: str, order: int, args: dict[str, Any]) -> dict[str, Any]:
    return {"data": {"name": name, "engine_name": engine, "action_type_name": action_type, "order_idx": order,
                     "args": args}}


def _workflow(client: RestClient, datastore: str, name: str, actions: list[dict[str, Any]]) -> str:
    found = _find(client, "workflow", name)
    if found is not None:
        return str(found["id"])
    flow = client.call("POST", f"/datastore/{datastore}/workflow", {"data": {"name": name, "state": "ACTIVE"}})
    client.call("POST", f"/workflow/{flow['id']}/action", actions)
    return str(flow["id"])


def _on_completion(client: RestClient, name: str, completed: str, starts: str) -> None:
    _ensure(client, "trigger", name, {"trigger_type_name": "workflow_completion", "state": "ACTIVE",
                                      "workflow_ids": [starts], "args": {"completed_workflow_id": completed}})


def create_chain(client: RestClient) -> dict[str, str]:
    """The example chain's entities, each created only if no entity of its name exists (a restart adds none).
    A workflow's actions run on its datastore's engine (reference §3.4), so the S3 check and the S3 publish are
    workflows of an s3_engine datastore, chained to the warehouse's workflow by completion triggers."""
    dataset = _ensure(client, "dataset", DATASET, {
        "table_name": "weblogs", "location": f"s3://{BUCKET}/{LOGS_PREFIX}", "load_type": "RELOAD_ALL",
        "compression": "GZIP", "columns": COLUMNS, "description": "synthetic web server logs, one file an hour",
        "data_format": {"file_format": "TEXTFILE", "row_format": "DELIMITED", "delimited_by": "\t",
                        "num_header_rows": 0}})
    warehouse = _ensure(client, "datastore", WAREHOUSE, {"engine_name": "duckdb_engine", "state": "ACTIVE",
                                                         "args": {}})
    store = _ensure(client, "datastore", STORE, {"engine_name": "s3_engine", "state": "ACTIVE", "args": {}})
    today = f"s3://{BUCKET}/{LOGS_PREFIX}{{YEAR}}/{{MONTH}}/{{DAY}}/"
    check = _workflow(client, store, CHECK, [_action("check_logs", "s3_engine", "data_check", 1, {
        "s3_path_prefix": today, "min_file_size_in_bytes": 1})])
    chain = _workflow(client, warehouse, CHAIN, [
        _action("load_logs", "duckdb_engine", "load_dataset", 1, {
            "dataset_id": dataset, "s3_path_start_prefix_inclusive": today, "s3_path_end_prefix_exclusive": today,
            "s3_path_end_prefix_exclusive_date_offset_in_seconds": 86400}),
        _action("aggregate", "duckdb_engine", "execute_sql", 2, {"sql_script": REPORT_SQL}),
        _action("unload_report", "duckdb_engine", "copy_to_s3", 3, {
            "source_sql_statement": "SELECT * FROM main.status_report ORDER BY hits DESC",
            "destination_s3_path": f"s3://{BUCKET}/reports/{DAY}/status_", "delimiter": ",", "header": True,
            "gzip": True})])
    publish = _workflow(client, store, PUBLISH, [_action("publish", "s3_engine", "copy", 1, {
        "from_path": f"s3://{BUCKET}/reports/{DAY}/", "to_path": f"s3://{BUCKET}/published/{DAY}/",
        "recursive": True})])
    _on_completion(client, "sandbox-on-check-completed", check, chain)
    _on_completion(client, "sandbox-on-weblogs-completed", chain, publish)
    return {"dataset": dataset, "warehouse": warehouse, "check": check, "chain": chain, "publish": publish}


def _instances(client: RestClient, workflow_id: str) -> dict[str, str]:
    return {i["id"]: i["data"]["state"] for i in client.call("GET", f"/workflow/{workflow_id}/instance",
                                                              params={"limit": 1000})}


def run_chain(client: RestClient, ids: dict[str, str], timeout: float = 600.0) -> list[tuple[str, str]]:
    """Start the check workflow by hand and follow the chain: (workflow name, the new run's state) for each
    workflow, in order, until one does not complete or all three have."""
    order = [(CHECK, ids["check"]), (CHAIN, ids["chain"]), (PUBLISH, ids["publish"])]
    before = {wid: set(_instances(client, wid)) for _, wid in order}
    client.call("POST", f"/workflow/{ids['check']}/do-manual-trigger", None, whole=True)
    deadline = time.monotonic() + timeout
    outcome: list[tuple[str, str]] = []
    for name, wid in order:
        while True:
            new = {i: s for i, s in _instances(client, wid).items() if i not in before[wid]}
            finished = [s for s in new.values() if s in ("COMPLETED", "FAILED")]
            if finished:
                outcome.append((name, finished[0]))
                break
            if time.monotonic() > deadline:
                outcome.append((name, next(iter(new.values()), "NOT STARTED")))
                return outcome
            time.sleep(0.2)
        if outcome[-1][1] != "COMPLETED":
            break
    return outcome


def published_report(endpoint: str, day: datetime | None = None) -> list[list[str]]:
    """The published report's rows (header first), read back from the sandbox's S3."""
    s3 = s3_client(endpoint)
    prefix = f"published/{(day or datetime.now(UTC)):%Y-%m-%d}/"
    rows: list[list[str]] = []
    for obj in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []):
        body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
        text = gzip.decompress(body).decode() if obj["Key"].endswith(".gz") else body.decode()
        found = list(csv.reader(io.StringIO(text)))
        rows.extend(found if not rows else found[1:])
    return rows


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))] if rows else []
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows)


def state(home: Path, timeout: float = 120.0) -> dict[str, Any]:
    """The running sandbox's record, once it is ready (a command started with ``dart up`` waits for it)."""
    path = home / STATE_FILE
    if not path.is_file():
        raise SandboxError(f"no sandbox here ({path} is missing): start `dart up --sandbox` first")
    deadline = time.monotonic() + timeout
    while True:
        found = dict(json.loads(path.read_text()))
        if found.get("ready"):
            return found
        if time.monotonic() > deadline:
            raise SandboxError("the sandbox is not ready: see `dart up --sandbox`'s output")
        time.sleep(0.2)


def sandbox_command(settings: Settings, client: RestClient, wait: bool) -> int:
    """``dart sandbox``: today's sample data in place (written again if the day changed), the chain started,
    and with ``wait`` followed to its end and the published report printed."""
    where = state(settings.home)
    try:
        lines = seed(where["aws_endpoint_url"], int(where.get("lines") or DEFAULT_LINES), settings.s3_datastores_root)
        ids = create_chain(client)
    except (DemoError, OSError) as exc:
        raise SandboxError(f"{exc} (is `dart up --sandbox` running?)") from None
    if not wait:
        client.call("POST", f"/workflow/{ids['check']}/do-manual-trigger", None, whole=True)
        print(f"started {CHECK}; follow it with `dart events tail -f` or the API")
        return 0
    print(f"running the chain over {lines:,} log lines: {CHECK} -> {CHAIN} -> {PUBLISH}", flush=True)
    outcome = run_chain(client, ids)
    for name, result in outcome:
        print(f"{name}: {result}")
    if [s for _, s in outcome] != ["COMPLETED"] * 3:
        print("the chain did not complete: the failed action's error_message says why "
              "(GET /api/1/action?filters=[\"state = FAILED\"])", file=sys.stderr)
        return 1
    rows = published_report(where["aws_endpoint_url"])
    print(f"\ns3://{BUCKET}/published/{datetime.now(UTC):%Y-%m-%d}/ (hits per HTTP status):")
    print(format_table(rows))
    return 0


def prepare_sandbox(settings: Settings, aws: LocalAws, api_url: str, lines: int) -> None:
    """At ``dart up --sandbox``'s start (its API serving): the sample data and the chain's entities."""
    try:
        total = seed(aws.url, lines, settings.s3_datastores_root)
        client = RestClient(api_url, api_key(None, settings.bootstrap_api_key, settings.home))
        create_chain(client)
        record(settings.home, aws.url, lines, ready=True)
    except Exception as exc:  # the server goes on; the user is told what is missing
        log.exception("the sandbox could not be prepared")
        print(f"sandbox: not ready: {exc}", file=sys.stderr, flush=True)
        return
    print(f"sandbox ready: local AWS at {aws.url}, {total:,} log lines in s3://{BUCKET}/{LOGS_PREFIX}; "
          f"run the chain with `dart sandbox --wait`", flush=True)
