"""A synthetic but realistic event log of dart entities, for loading a big store quickly with COPY.

Streams are ``<entity>-<10 char id>`` for the REST entities (design.md §3); every stream starts with
``<Entity>Created`` (payload ``{"data": {...}}``), goes on with ``<Entity>Updated``
(``{"changes": {...}}``) and sometimes ends with ``<Entity>Deleted`` (``{}``): 3-5 events per stream,
interleaved in the log the way many entities changing at once interleave, with recorded_at increasing with
position. Payloads are drawn from pools generated once per run (realistic shapes and sizes, ~170 bytes of
JSON on average); ids, versions, metadata and timestamps are unique per event.
"""

from __future__ import annotations

import json
import random
import string
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

CATEGORIES = (
    "engine", "dataset", "datastore", "action", "workflow", "workflow_instance", "trigger", "subscription",
    "event",
)
# How often each kind of entity is created: actions and instances dominate a working system.
WEIGHTS = {
    "engine": 2, "dataset": 8, "datastore": 10, "action": 30, "workflow": 8, "workflow_instance": 15,
    "trigger": 6, "subscription": 5, "event": 16,
}
DELETED_SHARE = 0.08  # share of streams that end with a Deleted event
ACTIVE_STREAMS = 2000  # entities "in flight" at once: how far a stream's events are spread over the log
POOL = 2000  # distinct payloads drawn per (category, event kind): generating each one anew is 4x slower

ID_CHARS = string.ascii_uppercase + string.digits
_dumps = json.JSONEncoder(separators=(",", ":")).encode


def type_prefix(category: str) -> str:
    return "".join(part.capitalize() for part in category.split("_"))


def new_id(rng: random.Random) -> str:
    return "".join(rng.choices(ID_CHARS, k=10))


_STATES = {
    "engine": ["ACTIVE", "INACTIVE"],
    "dataset": ["ACTIVE", "INACTIVE"],
    "datastore": ["ACTIVE", "INACTIVE", "TEMPLATE", "DONE"],
    "action": ["HAS_NEVER_RUN", "PENDING", "RUNNING", "FINISHED", "FAILED", "COMPLETING", "SKIPPED"],
    "workflow": ["ACTIVE", "INACTIVE"],
    "workflow_instance": ["RUNNING", "FINISHED", "FAILED", "CANCELLED"],
    "trigger": ["ACTIVE", "INACTIVE"],
    "subscription": ["ACTIVE", "INACTIVE"],
    "event": ["ACTIVE", "INACTIVE"],
}
_WORDS = ["daily", "load", "ingest", "orders", "customers", "reprocess", "export", "hourly", "nightly",
          "merge", "clean", "dedupe", "sales", "inventory", "events", "clicks", "sessions", "finance",
          "report", "archive", "s3", "redshift", "spark", "emr", "athena", "glue"]


def _name(rng: random.Random) -> str:
    return "_".join(rng.sample(_WORDS, rng.randint(2, 4)))


def _entity_data(rng: random.Random, category: str) -> dict[str, Any]:
    """What a create request carries for this kind of entity: roughly the original REST resources."""
    data: dict[str, Any] = {
        "name": _name(rng),
        "description": " ".join(rng.sample(_WORDS, rng.randint(4, 10))),
        "state": _STATES[category][0],
        "tags": rng.sample(_WORDS, rng.randint(0, 3)),
    }
    if category == "engine":
        data.update(
            engine_type=rng.choice(["emr_engine", "dynamodb_engine", "s3_engine", "redshift_engine"]),
            ecs_task_definition={"family": f"dart-{_name(rng)}", "cpu": 256, "memory_mb": 512},
            options_json_schema={"type": "object", "properties": {"release_label": {"type": "string"}}},
            supported_action_types=[{"name": n} for n in rng.sample(_WORDS, 3)],
        )
    elif category == "dataset":
        data.update(
            table_name=_name(rng), location=f"s3://dart-data/{_name(rng)}/", data_format={
                "file_format": rng.choice(["PARQUET", "TEXTFILE", "RCFILE"]),
                "row_format": "DELIMITED", "num_header_rows": 0,
                "columns": [{"name": w, "data_type": rng.choice(["STRING", "INT", "BIGINT", "TIMESTAMP"])}
                            for w in rng.sample(_WORDS, rng.randint(3, 8))],
            }, compression=rng.choice(["NONE", "GZIP", "SNAPPY"]), partitions=[],
        )
    elif category == "datastore":
        data.update(
            engine_name=rng.choice(["emr_engine", "redshift_engine", "s3_engine"]),
            workflow_datastore_id=None, host=None, port=None, connection_url=None, s3_artifacts_path=
            f"s3://dart-artifacts/{new_id(rng)}/", cluster_name=None,
            args={"instance_count": rng.randint(1, 30), "instance_type": "m5.xlarge",
                  "release_label": "emr-6.9"},
        )
    elif category == "action":
        data.update(
            engine_name=rng.choice(["emr_engine", "redshift_engine", "s3_engine"]),
            action_type_name=rng.choice(["load_dataset", "run_hive_script", "copy", "execute_sql"]),
            datastore_id=new_id(rng), workflow_id=new_id(rng) if rng.random() < 0.7 else None,
            workflow_instance_id=new_id(rng) if rng.random() < 0.5 else None, order_idx=rng.randint(0, 40),
            args={"dataset_id": new_id(rng),
                  "s3_path_start_prefix_inclusive": f"s3://dart-data/{_name(rng)}/"},
            on_failure="DEACTIVATE", on_success_email=[], on_failure_email=["ops@example.com"],
            avg_runtime=None, ecs_task_arn=None, batch_job_id=None, user_id="anonymous",
        )
    elif category == "workflow":
        data.update(
            datastore_id=new_id(rng), engine_name="emr_engine", concurrency=rng.randint(1, 3),
            retries_on_failure=rng.randint(0, 3), on_failure="DEACTIVATE", on_started_email=[],
            on_success_email=[], on_failure_email=["ops@example.com"], avg_runtime=None, user_id="anonymous",
        )
    elif category == "workflow_instance":
        data.update(
            workflow_id=new_id(rng), datastore_id=new_id(rng), engine_name="emr_engine",
            trigger_type=rng.choice(["manual", "scheduled", "event", "super"]), trigger_id=new_id(rng),
            queued_time=None, start_time=None, end_time=None, retry_num=0, error_message=None,
        )
    elif category == "trigger":
        data.update(
            trigger_type_name=rng.choice(["scheduled", "event", "workflow_completion", "super"]),
            workflow_ids=[new_id(rng) for _ in range(rng.randint(1, 3))],
            args={"cron_pattern": f"{rng.randint(0, 59)} {rng.randint(0, 23)} * * ? *", "timezone": "UTC"},
        )
    elif category == "subscription":
        data.update(
            dataset_id=new_id(rng), s3_path_start_prefix_inclusive=f"s3://dart-data/{_name(rng)}/",
            s3_path_end_prefix_exclusive=None, s3_path_regex_filter=None, queued=0, unconsumed=0,
            message_id=None, on_success_email=[], on_failure_email=[],
        )
    else:  # event
        data.update(user_id="anonymous")
    return data


def _changes(rng: random.Random, category: str, step: int) -> dict[str, Any]:
    """A few changed fields: a state transition, a rename, progress counters."""
    states = _STATES[category]
    changes: dict[str, Any] = {"state": states[min(step, len(states) - 1)]}
    roll = rng.random()
    if roll < 0.25:
        changes["name"] = _name(rng)
    elif roll < 0.5:
        changes["description"] = " ".join(rng.sample(_WORDS, rng.randint(4, 10)))
    elif category in ("action", "workflow_instance"):
        changes["start_time"] = f"2025-03-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00+00:00"
        changes["ecs_task_arn" if category == "action" else "retry_num"] = (
            f"arn:aws:ecs:us-east-1:123456789012:task/{uuid.UUID(int=rng.getrandbits(128))}"
            if category == "action" else rng.randint(0, 3)
        )
    elif category == "subscription":
        changes["unconsumed"] = rng.randint(0, 10000)
    return changes


@dataclass
class LogSummary:
    events: int = 0
    streams: dict[str, int] = field(default_factory=lambda: {c: 0 for c in CATEGORIES})
    live: dict[str, int] = field(default_factory=lambda: {c: 0 for c in CATEGORIES})
    types: dict[str, int] = field(default_factory=dict)


@dataclass
class _Stream:
    category: str
    stream_id: str
    length: int
    deleted_at_end: bool
    version: int = 0


def generate(n_events: int, seed: int = 7, summary: LogSummary | None = None) -> Iterator[tuple]:
    """Rows for ``COPY events (event_id, stream_id, stream_version, type, schema_version, data, metadata,
    recorded_at)``, in log order. Fills ``summary`` (streams and live entities per category) as it goes."""
    rng = random.Random(seed)
    summary = summary if summary is not None else LogSummary()
    categories = list(WEIGHTS)
    weights = [WEIGHTS[c] for c in categories]
    prefixes = {c: type_prefix(c) for c in categories}
    created = {c: [_dumps({"data": _entity_data(rng, c)}) for _ in range(POOL)] for c in categories}
    updated = {
        (c, step): [_dumps({"changes": _changes(rng, c, step)}) for _ in range(POOL // 4)]
        for c in categories for step in range(1, 5)
    }
    deleted = _dumps({})
    actors = ["system"] + [f"user:{new_id(rng)}" for _ in range(20)]
    at = datetime(2025, 1, 1, tzinfo=UTC)
    active: list[_Stream] = []
    ids: set[str] = set()
    getrandbits = rng.getrandbits
    for _ in range(n_events):
        if len(active) < ACTIVE_STREAMS:
            category = rng.choices(categories, weights)[0]
            entity_id = new_id(rng)
            while entity_id in ids:
                entity_id = new_id(rng)
            ids.add(entity_id)
            stream = _Stream(
                category, f"{category}-{entity_id}", rng.randint(3, 5), rng.random() < DELETED_SHARE
            )
            active.append(stream)
            summary.streams[category] += 1
            summary.live[category] += 1
            index = len(active) - 1
        else:
            index = rng.randrange(len(active))
            stream = active[index]
        stream.version += 1
        prefix = prefixes[stream.category]
        if stream.version == 1:
            type_name, payload = f"{prefix}Created", rng.choice(created[stream.category])
        elif stream.version == stream.length and stream.deleted_at_end:
            type_name, payload = f"{prefix}Deleted", deleted
            summary.live[stream.category] -= 1
        else:
            type_name = f"{prefix}Updated"
            payload = rng.choice(updated[stream.category, stream.version - 1])
        if stream.version == stream.length:
            active[index] = active[-1]
            active.pop()
        causation = "null" if stream.version == 1 else f'"{_uuid4(getrandbits)}"'
        metadata = (
            f'{{"actor":"{rng.choice(actors)}","correlation_id":"{_uuid4(getrandbits)}",'
            f'"causation_id":{causation}}}'
        )
        at += timedelta(microseconds=rng.randint(1000, 60000))
        summary.events += 1
        summary.types[type_name] = summary.types.get(type_name, 0) + 1
        yield (_uuid4(getrandbits), stream.stream_id, stream.version, type_name, 1, payload, metadata, at)


_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (0x4000 << 64) | (0x8000 << 48)


def _uuid4(getrandbits) -> str:  # type: ignore[no-untyped-def]
    """A random (version 4) uuid as text, without building a uuid.UUID (a third of the generator's time)."""
    h = f"{getrandbits(128) & _V4_CLEAR | _V4_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
