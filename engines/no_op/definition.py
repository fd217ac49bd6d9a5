"""What the no_op engine registers with dart (reference §10, §12.1): its options schema, its action types
with their params schemas, and its ECS task definition. The engine's runtime lives elsewhere."""

from __future__ import annotations

import copy
from typing import Any

from engines.runner import awslogs

NAME = "no_op_engine"
IMAGE_PLACEHOLDER = "dart/no_op_engine:latest"

OPTIONS_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action_sleep_time_in_seconds": {
            "type": "integer",
            "minimum": 0,
            "default": 5,
            "description": "The time to sleep for each action before completing",
        },
    },
    "additionalProperties": False,
    "required": [],
}

SUPPORTED_ACTION_TYPES: list[dict[str, Any]] = [
    {
        "name": "fake_action_that_succeeds",
        "description": "helps engineers develop and test",
        "params_json_schema": None,
    },
    {
        # Checks in FAILURE, so tests can drive every on_failure path.
        "name": "fake_action_that_fails",
        "description": "helps engineers develop and test",
        "params_json_schema": None,
    },
    {
        "name": "fake_copy_hdfs_to_s3",
        "description": "Copies data at the specified hdfs path to s3",
        "params_json_schema": {
            "type": "object",
            "properties": {
                "source_hdfs_path": {
                    "type": "string",
                    "pattern": "^hdfs://.+$",
                    "description": "The source hdfs path, e.g. hdfs:///user/hive/warehouse/table",
                },
                "destination_s3_path": {
                    "type": "string",
                    "pattern": "^s3://.+$",
                    "description": "The destination s3 path, e.g. s3://bucket/prefix",
                },
            },
            "additionalProperties": False,
            "required": ["source_hdfs_path", "destination_s3_path"],
        },
    },
    {
        "name": "fake_load_dataset",
        "description": "Copies the dataset from s3 to the datastore",
        "params_json_schema": {
            "type": "object",
            "properties": {"dataset_id": {"type": "string", "description": "The id of the dataset to load"}},
            "additionalProperties": False,
            "required": ["dataset_id"],
        },
    },
    {
        "name": "consume_subscription",
        "description": "Consumes the next available dataset subscription elements",
        "params_json_schema": {
            "type": "object",
            "properties": {
                "subscription_id": {"type": "string", "description": "The id of the subscription to consume"},
            },
            "additionalProperties": False,
            "required": ["subscription_id"],
        },
    },
]


def ecs_task_definition(
    env_name: str = "local",
    image: str = IMAGE_PLACEHOLDER,
    dart_config: str | None = None,
    region: str = "us-east-1",
) -> dict[str, Any]:
    """The ECS task definition: one small container (64 CPU units, 256 MB), as every built-in engine of the
    original declared. Per-run input (DART_ACTION_ID and the API credentials) comes as container overrides at
    launch, so only the engine's role and deployment settings are fixed here."""
    environment = [{"name": "DART_ROLE", "value": "worker:engine_no_op"}]
    if dart_config is not None:
        environment.append({"name": "DART_CONFIG", "value": dart_config})
    environment.append({"name": "AWS_DEFAULT_REGION", "value": region})
    return {
        "family": f"dart-{env_name}-{NAME}",
        "containerDefinitions": [
            {
                "name": "dart-no_op_engine",
                "cpu": 64,
                "memory": 256,
                "image": image,
                "logConfiguration": awslogs(NAME, env_name, region),
                "environment": environment,
                # The ECS agent's data, read-only, so the engine can find its own task.
                "mountPoints": [
                    {
                        "containerPath": "/mnt/ecs_agent_data",
                        "sourceVolume": "ecs-agent-data",
                        "readOnly": True,
                    },
                ],
            }
        ],
        "volumes": [{"host": {"sourcePath": "/var/lib/ecs/data"}, "name": "ecs-agent-data"}],
    }


def no_op_engine(**task_definition_settings: Any) -> dict[str, Any]:
    """A fresh registration body (`POST /engine` data); settings are passed on to `ecs_task_definition`."""
    return {
        "name": NAME,
        "description": "Helps engineering test dart",
        "options_json_schema": copy.deepcopy(OPTIONS_JSON_SCHEMA),
        "supported_action_types": copy.deepcopy(SUPPORTED_ACTION_TYPES),
        "ecs_task_definition": ecs_task_definition(**task_definition_settings),
        "tags": [],
    }


NO_OP_ENGINE: dict[str, Any] = no_op_engine()


def _demo_action(n: int, workflow: int, order: int, action_type: str, **extra: Any) -> dict[str, Any]:
    return {"id": f"UNSAVED-action{n}", "data": {
        "name": action_type, "action_type_name": action_type, "engine_name": NAME,
        "workflow_id": f"UNSAVED-workflow{workflow}", "order_idx": order, "state": "TEMPLATE", **extra}}


def workflow_chaining_demo() -> dict[str, Any]:
    """The original's "workflow chaining demo" subgraph definition (reference §12.1; its
    ``engine/no_op/add_sub_graphs.py``), hung from a datastore (``PARENT-1``): workflow 1 with four succeeding
    actions, workflow 2 with two succeeding actions and a failing one, and a workflow_completion trigger that
    starts workflow 2 when workflow 1 completes. The failing action says ``on_failure: CONTINUE``, as
    ``dart demo``'s does: in the original it deactivated workflow 2 and the datastore, so the demo ran once;
    here both runs complete and the failure is still there to see."""
    succeeds, fails = "fake_action_that_succeeds", "fake_action_that_fails"
    return {
        "name": "workflow chaining demo",
        "description": "demonstrate workflow chaining",
        "engine_name": NAME,
        "related_type": "datastore",
        "related_is_a": "PARENT",
        "workflows": [
            {"id": f"UNSAVED-workflow{n}", "data": {
                "name": f"no-op-workflow-chaining-wf{n}", "datastore_id": "PARENT-1", "engine_name": NAME,
                "state": "ACTIVE"}}
            for n in (1, 2)
        ],
        "actions": [
            *(_demo_action(n, 1, n, succeeds) for n in (1, 2, 3, 4)),
            _demo_action(5, 2, 1, succeeds),
            _demo_action(6, 2, 2, succeeds),
            _demo_action(7, 2, 3, fails, on_failure="CONTINUE"),
        ],
        "triggers": [
            {"id": "UNSAVED-trigger1", "data": {
                "name": "no-op-trigger-workflow-completion", "trigger_type_name": "workflow_completion",
                "workflow_ids": ["UNSAVED-workflow2"], "state": "ACTIVE",
                "args": {"completed_workflow_id": "UNSAVED-workflow1"}}},
        ],
        "md_icon": "share",
    }


def subgraph_definitions() -> list[dict[str, Any]]:
    """What the no_op engine stores with its registration (``POST /engine/{id}/subgraph_definition``)."""
    return [workflow_chaining_demo()]
