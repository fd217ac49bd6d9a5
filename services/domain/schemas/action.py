"""The action entity's `data` schema (reference §3.4, §4.1; design §6 adds on_failure HALT): its `args`
follow the params schema of its engine's action type."""

from __future__ import annotations

from services.domain.schemas.fields import (
    Schema,
    data_schema,
    email_list_field,
    embed,
    name_field,
    nullable,
    tags_field,
    timedelta_field,
    timestamp_field,
)

ACTION_STATES = (
    "TEMPLATE",
    "HAS_NEVER_RUN",
    "QUEUED",
    "PENDING",
    "RUNNING",
    "FINISHING",
    "COMPLETED",
    "FAILED",
    "SKIPPED",
)
# DEACTIVATE: a failure deactivates the workflow (template actions) or the datastore; CONTINUE: the run goes
# on; HALT: the instance fails but the workflow stays ACTIVE.
ACTION_ON_FAILURE = ("DEACTIVATE", "CONTINUE", "HALT")


def no_args_schema() -> Schema:
    """`args` of an action type without a params schema: nothing, stored as `{}` (reference §15.1)."""
    return {"type": ["object", "null"], "properties": {}, "additionalProperties": False, "default": {}}


def action_schema(params_json_schema: Schema | None) -> Schema:
    """The action schema for one action type. With a params schema `args` is required and must satisfy it."""
    schema = data_schema(
        {
            "name": name_field(),
            "action_type_name": {"type": "string", "readonly": True},
            "state": {"type": "string", "enum": list(ACTION_STATES), "default": "HAS_NEVER_RUN"},
            "tags": tags_field(),
            "queued_time": timestamp_field(),
            "start_time": timestamp_field(),
            "end_time": timestamp_field(),
            # Engines report 0..1, but the original never bounded it and engines written for it must keep
            # working, so no bounds here either.
            "progress": nullable("number", readonly=True),
            "order_idx": nullable("number", minimum=0.0),
            "error_message": nullable("string", readonly=True),
            "on_failure": {
                "type": "string",
                "enum": list(ACTION_ON_FAILURE),
                "default": "DEACTIVATE",
                "description": "applies to the workflow if this is a workflow action template, otherwise the datastore",
            },
            "on_failure_email": email_list_field(),
            "on_success_email": email_list_field(),
            "engine_name": {"type": "string", "readonly": True},
            "datastore_id": nullable("string", default=None),
            "workflow_id": nullable("string", default=None),
            "workflow_instance_id": nullable("string", default=None, readonly=True),
            "workflow_action_id": nullable("string", default=None, readonly=True),
            "first_in_workflow": nullable("boolean", default=False, readonly=True),
            "last_in_workflow": nullable("boolean", default=False, readonly=True),
            # null: not launched; "": launched as a local process; otherwise the ECS task ARN.
            "ecs_task_arn": nullable("string", default=None, readonly=True),
            "extra_data": nullable("object", default=None, readonly=True),
            # Kept on TEMPLATE actions: the running mean of their instances' runtimes, and how many completed.
            "avg_runtime": timedelta_field(),
            "completed_runs": {"type": "integer", "default": 0, "minimum": 0, "readonly": True},
            # Run control (issue 15): a bound on the running time, and retries of this action with Step
            # Functions' semantics: attempt n+1 waits min(delay * rate^(n-1), max delay), "full" jitter
            # drawing uniformly from [0, that]. Absent: no timeout (or the datastore's), no retry.
            "timeout_seconds": nullable("integer", minimum=1,
                                        description="stop the engine and fail the action after this many seconds "
                                                    "of running (default: the datastore's action_timeout_seconds)"),
            "retries": nullable("integer", minimum=0, maximum=100,
                                description="further attempts after a failure, before on_failure applies"),
            "retry_delay_seconds": nullable("number", minimum=0, description="the first retry's delay (default 1)"),
            "retry_backoff_rate": nullable("number", minimum=1, description="each delay's factor (default 2)"),
            "retry_max_delay_seconds": nullable("number", minimum=0, description="no delay is longer"),
            "retry_jitter": {"type": ["string", "null"], "enum": ["none", "full", None],
                             "description": "full: each delay drawn uniformly from 0 to the computed delay"},
            # Set by dart on a retry: which attempt this is, the first attempt's id, and when it may start.
            "attempt": nullable("integer", minimum=1, readonly=True),
            "retry_of": nullable("string", readonly=True),
            "not_before": timestamp_field(),
        },
        ["name", "action_type_name", "engine_name"],
    )
    return embed(schema, "args", params_json_schema, when_absent=no_args_schema())
