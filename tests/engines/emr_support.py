"""What the emr_engine's tests share: the EMR moto server (tests/engines/emr_moto.py) with a fresh bucket per
test, a stand-in for the few dart calls a handler makes, and an action context on a datastore of that bucket."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from bench.harness.moto import AWS_ENV
from engines.emr.engine import HANDLER
from engines.sdk import ActionContext, DartApiError
from tests.engines.emr_moto import emr_moto_server

COLUMNS: list[dict[str, Any]] = [{"name": "id", "data_type": "BIGINT"}, {"name": "name", "data_type": "STRING"},
                                 {"name": "amount", "data_type": "NUMERIC", "precision": 10, "scale": 2},
                                 {"name": "at", "data_type": "TIMESTAMP", "date_pattern": "yyyy-MM-dd HH:mm:ss"}]


@pytest.fixture(scope="session")
def emr_url() -> Iterator[str]:
    with emr_moto_server() as url:
        yield url


@pytest.fixture
def aws(emr_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for name, value in {**AWS_ENV, "AWS_ENDPOINT_URL": emr_url, "DART_EMR_POLL_SECONDS": "0.02"}.items():
        monkeypatch.setenv(name, value)
    kwargs = {"endpoint_url": emr_url, "region_name": "us-east-1"}
    bucket = f"emr-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", **kwargs)
    s3.create_bucket(Bucket=bucket)
    return {"url": emr_url, "emr": boto3.client("emr", **kwargs), "s3": s3, "bucket": bucket}


class Dart:
    """The dart calls the handlers make: reads (entities by path, actions by state), reports and patches."""

    def __init__(self, entities: dict[str, Any] | None = None, pending: list[dict[str, Any]] | None = None,
                 elements: list[dict[str, Any]] | None = None) -> None:
        self.entities = entities or {}
        self.pending = pending or []
        self.elements = elements or []
        self.progress: list[tuple[float | None, Any]] = []
        self.patches: list[dict[str, Any]] = []
        self.ended = False  # the action was ended elsewhere: the engine's token no longer works

    def get(self, path: str, params: Any = None) -> Any:
        if path == "/action":
            state = next(f.split(" = ")[1] for f in params["filters"] if f.startswith("state"))
            return [a for a in self.pending if a["data"]["state"] == state]
        if path.startswith("/action/"):
            if self.ended:
                raise DartApiError(401, "this launch token's action is FAILED")
            return {"data": {"state": "RUNNING"}}
        return self.entities[path]

    def subscription_elements(self, action_id: str) -> list[dict[str, Any]]:
        return self.elements

    def report_progress(self, action_id: str, progress: float | None = None, extra_data: Any = None) -> None:
        self.progress.append((progress, extra_data))

    def patch_datastore(self, datastore_id: str, **fields: Any) -> dict[str, Any]:
        self.patches.append(fields)
        return {}


def action_context(aws: dict[str, Any], action_type: str, args: dict[str, Any], cluster: str | None = None,
             **options: Any) -> ActionContext:
    action = {"id": uuid.uuid4().hex[:10].upper(), "data": {"action_type_name": action_type, "args": args}}
    store = {"id": "DS1", "data": {
        "name": "mart", "engine_name": "emr_engine", "args": {"release_label": "emr-7.5.0", **options},
        "s3_artifacts_path": f"s3://{aws['bucket']}/datastores/mart/emr_engine/artifacts/DS1",
        "s3_logs_path": f"s3://{aws['bucket']}/datastores/mart/emr_engine/logs/DS1",
        "extra_data": {"cluster_id": cluster} if cluster else None}}
    return ActionContext({"id": "E1", "data": {}}, action, store)


def run_handler(context: ActionContext, dart: Dart) -> None:
    HANDLER(context, dart)  # type: ignore[arg-type]


def started_cluster(aws: dict[str, Any], dart: Dart | None = None, **options: Any) -> str:
    dart = dart or Dart()
    run_handler(action_context(aws, "start_datastore", {}, **{"instance_count": 2, **options}), dart)
    return str(dart.patches[0]["extra_data"]["cluster_id"])


def s3_text(aws: dict[str, Any], path: str) -> str:
    bucket, key = path[5:].split("/", 1)
    return str(aws["s3"].get_object(Bucket=bucket, Key=key)["Body"].read().decode())
