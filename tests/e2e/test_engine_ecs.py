"""Engines register, replace and deregister their ECS task definitions through boto3, against a moto server
on loopback speaking the ECS wire protocol."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from engines.no_op.definition import NO_OP_ENGINE
from tests.e2e.conftest import RunningDart
from bench.harness.moto import AWS_ENV, moto_server


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningDart, object]]:
    with moto_server() as endpoint:
        home: Path = tmp_path_factory.mktemp("dart-ecs")
        dart = RunningDart(home, None, DART_ECS_CLUSTER="dart-engines", DART_AWS_ENDPOINT_URL=endpoint,
                           DART_MAX_TASK_MEMORY_MB="1024", **AWS_ENV)
        ecs = boto3.client("ecs", region_name="us-east-1", endpoint_url=endpoint,
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        try:
            yield dart, ecs
        finally:
            dart.stop()


def _status(ecs: object, arn: str) -> str:
    return ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]["status"]  # type: ignore[attr-defined]


def test_engine_lifecycle_registers_replaces_and_deregisters_its_task_definition(aws: tuple) -> None:
    dart, ecs = aws
    api = dart.api()
    body = copy.deepcopy(NO_OP_ENGINE)
    body["name"] = "lifecycle_engine"  # not a built-in: `dart up` registered the no_op engine at start
    body["ecs_task_definition"]["family"] = "lifecycle"
    created = api.post("/engine", {"data": body})
    arn = created["data"]["ecs_task_definition_arn"]
    assert arn and _status(ecs, arn) == "ACTIVE"
    described = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    assert described["family"] == body["ecs_task_definition"]["family"]
    assert described["containerDefinitions"][0]["memory"] == 256

    unchanged = api.put(f"/engine/{created['id']}", {"data": {**created["data"], "description": "same task"}})
    assert unchanged["data"]["ecs_task_definition_arn"] == arn and _status(ecs, arn) == "ACTIVE"

    changed = copy.deepcopy(unchanged["data"])
    changed["ecs_task_definition"]["containerDefinitions"][0]["memory"] = 512
    replaced = api.put(f"/engine/{created['id']}", {"data": changed})
    new_arn = replaced["data"]["ecs_task_definition_arn"]
    assert new_arn != arn and _status(ecs, new_arn) == "ACTIVE" and _status(ecs, arn) == "INACTIVE"

    api.delete(f"/engine/{created['id']}")
    assert _status(ecs, new_arn) == "INACTIVE"


def test_a_task_definition_over_the_memory_cap_is_refused_and_nothing_is_registered(aws: tuple) -> None:
    dart, ecs = aws
    api = dart.api()
    before = ecs.list_task_definitions()["taskDefinitionArns"]
    body = copy.deepcopy(NO_OP_ENGINE)
    body["name"] = "too_big_engine"
    body["ecs_task_definition"]["family"] = "too_big"
    body["ecs_task_definition"]["containerDefinitions"][0]["memory"] = 2048
    status, result = api.request("POST", "/engine", {"data": body})
    assert status == 400 and "1024" in result["error_message"]
    assert ecs.list_task_definitions()["taskDefinitionArns"] == before


def test_a_duplicate_engine_name_leaves_no_task_definition_behind(aws: tuple) -> None:
    dart, ecs = aws
    api = dart.api()
    body = copy.deepcopy(NO_OP_ENGINE)
    body["name"] = "dup_engine"
    api.post("/engine", {"data": body})
    before = ecs.list_task_definitions()["taskDefinitionArns"]
    status, result = api.request("POST", "/engine", {"data": body})
    assert status == 400 and "already exists" in result["error_message"]
    assert ecs.list_task_definitions()["taskDefinitionArns"] == before
