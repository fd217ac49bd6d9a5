"""The subscription entity's `data` schema (reference §3.7, §4.5)."""

from __future__ import annotations

from services.domain.schemas.fields import (
    S3_PATH_PATTERN,
    Schema,
    data_schema,
    email_list_field,
    name_field,
    nullable,
    tags_field,
    timestamp_field,
)

SUBSCRIPTION_STATES = ("INACTIVE", "QUEUED", "GENERATING", "FAILED", "ACTIVE")


MAX_S3_PATH = 5 + 63 + 1 + 1024  # s3:// + the longest bucket name + / + the longest key


def subscription_schema() -> Schema:
    return data_schema(
        {
            "name": name_field(),
            "dataset_id": {"type": "string"},
            "tags": tags_field(),
            "s3_path_start_prefix_inclusive": nullable(
                "string",
                default=None,
                pattern=S3_PATH_PATTERN,
                maxLength=MAX_S3_PATH,
                description="The inclusive s3 path start prefix",
            ),
            "s3_path_end_prefix_exclusive": nullable(
                "string",
                default=None,
                pattern=S3_PATH_PATTERN,
                maxLength=MAX_S3_PATH,
                description="The exclusive s3 path end prefix",
            ),
            "s3_path_regex_filter": nullable(
                "string", default=None, maxLength=4096, description="A regex pattern the s3 path must match"
            ),
            "state": {"type": "string", "enum": list(SUBSCRIPTION_STATES), "default": "INACTIVE"},
            "queued_time": timestamp_field(),
            "generating_time": timestamp_field(),
            "initial_active_time": timestamp_field(),
            "failed_time": timestamp_field(),
            # The id of the GENERATE message that lists the dataset's files.
            "message_id": nullable("string", default=None, readonly=True),
            "on_failure_email": email_list_field(),
            "on_success_email": email_list_field(),
        },
        ["name", "dataset_id"],
    )
