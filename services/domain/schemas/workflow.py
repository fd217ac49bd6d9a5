"""The workflow entity's `data` schema (reference §3.5; design §6: on_failure defaults to DEACTIVATE) and
the read-only workflow instance schema (reference §3.6)."""

from __future__ import annotations

from services.domain.schemas.fields import (
    Schema,
    data_schema,
    email_list_field,
    name_field,
    nullable,
    tags_field,
    timedelta_field,
    timestamp_field,
)

WORKFLOW_STATES = ("ACTIVE", "INACTIVE")
# Whether the *datastore* is deactivated when the workflow finally fails.
WORKFLOW_ON_FAILURE = ("DEACTIVATE", "CONTINUE")
WORKFLOW_INSTANCE_STATES = ("QUEUED", "RUNNING", "COMPLETED", "FAILED")


def workflow_schema() -> Schema:
    return data_schema(
        {
            "name": name_field(),
            "datastore_id": {"type": "string"},
            "engine_name": nullable("string", readonly=True),
            "state": {"type": "string", "enum": list(WORKFLOW_STATES), "default": "INACTIVE"},
            # How many instances may be QUEUED or RUNNING at once.
            "concurrency": {"type": "integer", "default": 1, "minimum": 1, "maximum": 10},
            "on_failure": {
                "type": "string",
                "enum": list(WORKFLOW_ON_FAILURE),
                "default": "DEACTIVATE",
                "description": "applies to the datastore",
            },
            "on_failure_email": email_list_field(),
            "on_success_email": email_list_field(),
            "on_started_email": email_list_field(),
            "retries_on_failure": {"type": "integer", "default": 0, "minimum": 0},
            "tags": tags_field(),
            # The sum of the template actions' avg_runtime, refreshed when an instance completes.
            "avg_runtime": timedelta_field(),
            # The git commit of the definition files that last changed this workflow or its actions (`dart apply`
            # sets it); each run records it with the workflow's version.
            "definition_commit": nullable("string", default=None, maxLength=100),
            # An instance running longer is stopped as a cancel by dart (issue 15).
            "max_runtime_seconds": nullable("integer", minimum=1),
            # An instance not finished this long after it was queued sends one "running late" mail (issue 15).
            "sla_seconds": nullable("integer", minimum=1),
        },
        ["name", "datastore_id"],
    )


def workflow_instance_schema() -> Schema:
    """Instances are made and moved only by dart itself; there is no create or update API (reference §3.6)."""
    return data_schema(
        {
            "workflow_id": {"type": "string"},
            "datastore_id": {
                "type": "string",
                "description": "the datastore used: a clone, for TEMPLATE datastores",
            },
            "engine_name": {"type": "string"},
            "state": {"type": "string", "enum": list(WORKFLOW_INSTANCE_STATES), "default": "QUEUED"},
            "trigger_type": {"type": "string"},
            # Null for manual and retry runs, which no stored trigger caused.
            "trigger_id": nullable("string", default=None),
            "queued_time": timestamp_field(),
            "start_time": timestamp_field(),
            "end_time": timestamp_field(),
            "retry_num": {"type": "integer", "default": 0, "minimum": 0},
            # The time a scheduled trigger's fire was for (its engines get it as DART_SCHEDULED_TIME).
            "scheduled_time": timestamp_field(),
            # Which definition ran: the workflow's stream version at the start, and the commit `dart apply`
            # recorded on the workflow (null when not applied from git).
            "workflow_version": nullable("integer", default=None),
            "definition_commit": nullable("string", default=None),
            "error_message": nullable("string"),
            "tags": tags_field(),
            # Who stopped it, when it was cancelled (issue 15).
            "cancelled_by": nullable("string"),
            # When it ran past its workflow's sla_seconds, the "running late" mail was sent (issue 15).
            "sla_missed_time": timestamp_field(),
        },
        ["workflow_id", "datastore_id", "engine_name", "state", "trigger_type"],
        readonly=True,
    )
