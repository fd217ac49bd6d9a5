"""The data set of the REST API benchmark (bench/api_bench.py): engines and datastores created through dart's
own entity service, then workflows and actions appended as real ``WorkflowCreated`` / ``ActionCreated``
events, ~500 events per ``store.append`` (one stream per entity, many streams per append), with the inline
projections registered by ``services.runtime.composition.build`` -- so ``rm_workflow`` and ``rm_action`` are
written by the real projection code, exactly as when the API creates them.

Shapes follow the original dart (reference §3.4, §3.5) with every schema default filled in, as the API would
store them; a sample of every shape is run through dart's own validator so the data cannot drift from the
schemas. Each workflow has ``actions / workflows`` actions with ``order_idx`` 0, 1, 2 ...: the first two
are TEMPLATE actions, the rest actions of past or current runs in a realistic spread of states.
"""

from __future__ import annotations

import random
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engines.no_op.definition import no_op_engine
from projections.entities import with_nulls  # every nullable field present, as dart answers it
from events.streams.action import ActionCreated
from events.streams.workflow import WorkflowCreated
from events.types import ExpectedVersion, Metadata, NewEvent, StreamAppend

BATCH_EVENTS = 500
TEMPLATES_PER_WORKFLOW = 2
DATASTORES = 40
USERS = [f"{n}@example.com" for n in ("ana", "bo", "chen", "dee", "eli", "fay", "gus", "hal")]
# States of non-template actions, weighted like a busy installation: mostly finished runs.
RUN_STATES = [("COMPLETED", 62), ("FAILED", 6), ("QUEUED", 12), ("HAS_NEVER_RUN", 12), ("RUNNING", 3),
              ("PENDING", 2), ("SKIPPED", 3)]
_ALPHABET = string.ascii_uppercase + string.digits
WORDS = ["daily", "load", "ingest", "orders", "customers", "reprocess", "export", "hourly", "nightly",
         "merge", "clean", "sales", "events", "clicks", "sessions", "revenue", "inventory"]

# A Redshift-like engine next to no_op: its action types and params shaped like the original's (§12.3).
REDSHIFT_LIKE_ENGINE: dict[str, Any] = {
    "name": "redshift_engine",
    "description": "For Redshift clusters",
    "options_json_schema": {
        "type": "object",
        "properties": {
            "node_type": {"type": "string", "enum": ["ds2.xlarge", "ds2.8xlarge", "dc1.large", "dc1.8xlarge"],
                          "default": "ds2.xlarge"},
            "nodes": {"type": "integer", "minimum": 2, "maximum": 50, "default": 2},
            "master_user_name": {"type": "string", "default": "admin"},
            "master_db_name": {"type": "string", "default": "dart"},
            "snapshot_retention": {"type": "integer", "minimum": 1, "maximum": 10, "default": 2},
        },
        "additionalProperties": False,
    },
    "supported_action_types": [
        {"name": "start_datastore", "description": "restore or create the cluster",
         "params_json_schema": {"type": "object",
                                "properties": {"snapshot_name": {"type": ["string", "null"]}},
                                "additionalProperties": False}},
        {"name": "stop_datastore", "description": "delete the cluster with a final snapshot",
         "params_json_schema": None},
        {"name": "execute_sql", "description": "run a SQL script",
         "params_json_schema": {"type": "object", "properties": {"sql_script": {"type": "string"}},
                                "additionalProperties": False, "required": ["sql_script"]}},
        {"name": "load_dataset", "description": "COPY a dataset from S3",
         "params_json_schema": {
             "type": "object",
             "properties": {
                 "dataset_id": {"type": "string"},
                 "s3_path_start_prefix_inclusive": {"type": ["string", "null"]},
                 "s3_path_end_prefix_exclusive": {"type": ["string", "null"]},
                 "target_schema_name": {"type": "string", "default": "public"},
                 "target_table_name": {"type": ["string", "null"]},
                 "target_sort_keys": {"type": "array", "items": {"type": "string"}, "default": []},
                 "distribution_style": {"type": "string", "enum": ["EVEN", "ALL"], "default": "EVEN"},
                 "truncate_columns": {"type": "boolean", "default": True},
                 "max_errors": {"type": "integer", "minimum": 0, "default": 0},
                 "batch_size": {"type": "integer", "minimum": 0, "default": 0},
             },
             "additionalProperties": False,
             "required": ["dataset_id"],
         }},
        {"name": "copy_to_s3", "description": "UNLOAD a query to S3",
         "params_json_schema": {
             "type": "object",
             "properties": {"source_sql_statement": {"type": "string"},
                            "destination_s3_path": {"type": "string", "pattern": "^s3://.+$"},
                            "delimiter": {"type": "string", "default": "\t"},
                            "parallel": {"type": "boolean", "default": True}},
             "additionalProperties": False,
             "required": ["source_sql_statement", "destination_s3_path"],
         }},
        {"name": "data_check", "description": "fail unless a query returns a truthy value",
         "params_json_schema": {"type": "object", "properties": {"sql_script": {"type": "string"}},
                                "additionalProperties": False, "required": ["sql_script"]}},
        {"name": "consume_subscription", "description": "load the next subscription elements",
         "params_json_schema": {"type": "object", "properties": {"subscription_id": {"type": "string"}},
                                "additionalProperties": False, "required": ["subscription_id"]}},
    ],
    "ecs_task_definition": None,
    "tags": ["warehouse"],
}


@dataclass
class Filled:
    """What the benchmark needs to know about the data it loaded."""

    url: str
    workflow_ids: list[str]
    action_ids: list[str]
    datastore_ids: list[str]
    events: int
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def new_id(rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(10))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _name(rng: random.Random, n: int = 3) -> str:
    return "_".join(rng.sample(WORDS, n))


def _args(rng: random.Random, action_type: str) -> dict[str, Any]:
    if action_type in ("load_dataset", "fake_load_dataset"):
        base: dict[str, Any] = {"dataset_id": new_id(rng)}
        if action_type == "load_dataset":
            day = f"{rng.randint(2015, 2017)}/{rng.randint(1, 12):02d}"
            base.update(s3_path_start_prefix_inclusive=f"s3://data-lake/{rng.choice(WORDS)}/{day}",
                        s3_path_end_prefix_exclusive=None, target_schema_name="public",
                        target_table_name=rng.choice(WORDS), target_sort_keys=rng.sample(WORDS, 2),
                        distribution_style="EVEN", truncate_columns=True, max_errors=0, batch_size=0)
        return base
    if action_type in ("execute_sql", "data_check"):
        table = rng.choice(WORDS)
        days = rng.randint(1, 7)
        return {"sql_script": f"SELECT count(*) > 0 FROM {table} WHERE day = CURRENT_DATE - {days}"}
    if action_type == "copy_to_s3":
        return {"source_sql_statement": f"SELECT * FROM {rng.choice(WORDS)}",
                "destination_s3_path": f"s3://exports/{rng.choice(WORDS)}/{{YEAR}}/{{MONTH}}/",
                "delimiter": "\t", "parallel": True}
    if action_type == "fake_copy_hdfs_to_s3":
        return {"source_hdfs_path": f"hdfs:///user/hive/warehouse/{rng.choice(WORDS)}",
                "destination_s3_path": f"s3://bucket/{rng.choice(WORDS)}"}
    if action_type == "consume_subscription":
        return {"subscription_id": new_id(rng)}
    if action_type == "start_datastore":
        return {"snapshot_name": None}
    return {}


NO_OP_TYPES = ["fake_action_that_succeeds", "fake_load_dataset", "fake_copy_hdfs_to_s3",
               "consume_subscription"]
REDSHIFT_TYPES = ["load_dataset", "execute_sql", "copy_to_s3", "data_check", "consume_subscription"]


def workflow_data(rng: random.Random, datastore_id: str, engine_name: str, user: str) -> dict[str, Any]:
    """A workflow as ``POST /datastore/{id}/workflow`` stores it (reference §3.5), defaults filled in."""
    return {
        "name": _name(rng),
        "datastore_id": datastore_id,
        "engine_name": engine_name,
        "state": "ACTIVE" if rng.random() < 0.7 else "INACTIVE",
        "concurrency": 1,
        "on_failure": rng.choice(["DEACTIVATE", "CONTINUE"]),
        "on_failure_email": [user],
        "on_success_email": [],
        "on_started_email": [],
        "retries_on_failure": rng.choice([0, 0, 1, 2]),
        "tags": rng.sample(["finance", "marketing", "etl", "daily", "hourly"], rng.randint(0, 2)),
        "avg_runtime": f"0:{rng.randint(1, 59):02d}:{rng.randint(0, 59):02d}",
        "definition_commit": None,
        "user_id": user,
    }


def action_data(
    rng: random.Random, index: int, workflow_id: str, datastore_id: str, engine_name: str,
    templates: list[str], instance_id: str | None, user: str, now: datetime,
) -> dict[str, Any]:
    """Action ``index`` of a workflow: a TEMPLATE (no datastore) or an action of a run (reference §3.4)."""
    types = REDSHIFT_TYPES if engine_name == "redshift_engine" else NO_OP_TYPES
    action_type = types[index % len(types)]
    template = index < TEMPLATES_PER_WORKFLOW
    state = "TEMPLATE" if template else rng.choices([s for s, _ in RUN_STATES], [w for _, w in RUN_STATES])[0]
    queued = start = end = None
    progress: float | None = None
    error = None
    if state in ("QUEUED", "PENDING", "RUNNING", "COMPLETED", "FAILED"):
        queued_at = now - timedelta(minutes=rng.randint(5, 60 * 24 * 90))
        queued = _iso(queued_at)
        if state in ("RUNNING", "COMPLETED", "FAILED"):
            start = _iso(queued_at + timedelta(seconds=rng.randint(1, 300)))
            progress = 1.0 if state == "COMPLETED" else round(rng.random(), 2)
        if state in ("COMPLETED", "FAILED"):
            end = _iso(queued_at + timedelta(seconds=rng.randint(301, 7200)))
        if state == "FAILED":
            error = f'relation "stage_{rng.choice(WORDS)}" does not exist'
    return {
        "name": f"{_name(rng, 2)}_{index}",
        "action_type_name": action_type,
        "args": _args(rng, action_type),
        "state": state,
        "tags": rng.sample(["finance", "marketing", "etl", "critical"], rng.randint(0, 2)),
        "queued_time": queued,
        "start_time": start,
        "end_time": end,
        "progress": progress,
        "order_idx": float(index),
        "error_message": error,
        "on_failure": rng.choice(["DEACTIVATE", "CONTINUE", "HALT"]),
        "on_failure_email": [user] if rng.random() < 0.5 else [],
        "on_success_email": [],
        "engine_name": engine_name,
        "datastore_id": None if template else datastore_id,
        "workflow_id": workflow_id,
        "workflow_instance_id": None if template else instance_id,
        "workflow_action_id": None if template else templates[index % len(templates)],
        "first_in_workflow": index == 0 if template else index == TEMPLATES_PER_WORKFLOW,
        "last_in_workflow": False,
        "ecs_task_arn": None if template or state in ("HAS_NEVER_RUN", "QUEUED", "SKIPPED") else "",
        "extra_data": None,
        "avg_runtime": f"0:{rng.randint(0, 30):02d}:{rng.randint(0, 59):02d}" if template else None,
        "completed_runs": rng.randint(0, 400) if template else 0,
        "user_id": user,
    }


def fill(
    url: str,
    home: Path,
    workflows: int,
    actions: int,
    api_key: tuple[str, str],
    seed: int = 20240601,
    progress: Callable[[str], None] = print,
) -> Filled:
    """Load the data set into the (empty) database at ``url``; returns ids and the load rate."""
    from services.commands.auth import Principal, ensure_api_key
    from services.commands.entities import EntityService
    from services.domain import schemas
    from services.runtime.composition import build
    from services.runtime.settings import Settings

    rng = random.Random(seed)
    container = build(Settings(home=home, database_url=url), migrate=True)  # migrates; inline projections
    store = container.store
    try:
        # The key `dart api` is started with (DART_BOOTSTRAP_API_KEY); created here as `dart up` would.
        ensure_api_key(store, api_key[0], api_key[1], user_id="admin", scope="admin")
        service = EntityService(store, container)
        admin = Principal(key=api_key[0], user_id="admin@example.com", scope="admin")
        service.create("engine", {"data": no_op_engine()}, admin)
        service.create("engine", {"data": REDSHIFT_LIKE_ENGINE}, admin)
        datastores: list[tuple[str, str]] = []
        for i in range(DATASTORES):
            engine = "redshift_engine" if i % 4 else "no_op_engine"
            args = ({"node_type": "dc1.large", "nodes": rng.randint(2, 8)} if engine == "redshift_engine"
                    else {"action_sleep_time_in_seconds": 1})
            created = service.create("datastore", {"data": {
                "name": f"{rng.choice(WORDS)}_{i}", "engine_name": engine, "state": "ACTIVE", "args": args,
                "tags": ["prod"] if i % 3 else [],
            }}, admin)
            datastores.append((created["id"], engine))

        per_workflow = max(1, actions // workflows)
        now = datetime.now(UTC)
        meta_of = {u: Metadata(actor=u) for u in USERS}
        workflow_ids: list[str] = []
        action_ids: list[str] = []
        pending: list[StreamAppend] = []
        events = 0
        checked: dict[tuple[str, str], bool] = {}
        action_schemas: dict[tuple[str, str], dict[str, Any]] = {}
        for engine_data in (no_op_engine(), REDSHIFT_LIKE_ENGINE):
            for t in engine_data["supported_action_types"]:
                schema = schemas.action_schema(t["params_json_schema"])
                action_schemas[(engine_data["name"], t["name"])] = schema
        started = time.perf_counter()

        def flush() -> None:
            nonlocal events
            if pending:
                store.append(*pending)
                events += len(pending)
                pending.clear()

        for w in range(workflows):
            user = rng.choice(USERS)
            datastore_id, engine = datastores[w % len(datastores)]
            workflow_id = new_id(rng)
            wdata = with_nulls("workflow", workflow_data(rng, datastore_id, engine, user))
            if w == 0:
                assert schemas.default_and_validate(dict(wdata), schemas.WORKFLOW_SCHEMA) == wdata
            pending.append(StreamAppend(f"workflow-{workflow_id}", ExpectedVersion.NO_STREAM,
                                        [NewEvent(WorkflowCreated({**wdata}), meta_of[user])]))
            workflow_ids.append(workflow_id)
            count = per_workflow + (1 if w < actions - per_workflow * workflows else 0)
            ids = [new_id(rng) for _ in range(count)]
            instance_id = new_id(rng)
            for index, action_id in enumerate(ids):
                adata = with_nulls("action", action_data(rng, index, workflow_id, datastore_id, engine,
                                                         ids[:TEMPLATES_PER_WORKFLOW], instance_id, user, now))
                shape = (engine, adata["action_type_name"], adata["state"] == "TEMPLATE")
                if shape not in checked:  # every shape once through dart's own validator
                    schema = action_schemas[(engine, adata["action_type_name"])]
                    assert schemas.default_and_validate(dict(adata), schema) == adata, shape
                    checked[shape] = True
                pending.append(StreamAppend(f"action-{action_id}", ExpectedVersion.NO_STREAM,
                                            [NewEvent(ActionCreated(adata), meta_of[user])]))
                action_ids.append(action_id)
            if len(pending) >= BATCH_EVENTS:
                flush()
            if (w + 1) % max(1, workflows // 10) == 0:
                progress(f"  loaded {w + 1}/{workflows} workflows, {len(action_ids)} actions "
                         f"({events / (time.perf_counter() - started):,.0f} events/s)")
        flush()
        seconds = time.perf_counter() - started
        with store.engine.connect() as conn:
            counts = {t: conn.exec_driver_sql(f"SELECT count(*) FROM rm_{t}").scalar() or 0
                      for t in ("workflow", "action", "datastore", "engine", "api_key")}
            counts["events"] = conn.exec_driver_sql("SELECT count(*) FROM events").scalar() or 0
        return Filled(url, workflow_ids, action_ids, [d for d, _ in datastores], events, seconds, counts)
    finally:
        store.close()
