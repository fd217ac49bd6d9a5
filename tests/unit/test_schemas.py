"""The schema layer (reference §15.2 and beyond): defaults are filled, bad data is refused with the failing
field named, trigger type params, declared-schema checks, secrets, and draft selection."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from engines.no_op import NO_OP_ENGINE
from services.domain import schemas
from services.domain.errors import BadRequest
from services.domain.schemas import SchemaValidationError, default_and_validate

DRAFT_07 = "http://json-schema.org/draft-07/schema#"

# The options schema of the original's datastore schema test: an EMR-like engine with one secret.
EMR_LIKE_OPTIONS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "release_label": {"type": "string", "pattern": "^emr-[0-9].[0-9].[0-9]+$", "default": "emr-4.2.0"},
        "instance_type": {"readonly": True, "type": ["string", "null"], "default": "m3.2xlarge"},
        "instance_count": {"type": ["integer", "null"], "default": None, "minimum": 1, "maximum": 30},
        "data_to_freespace_ratio": {
            "type": ["number", "null"],
            "default": 0.5,
            "minimum": 0.0,
            "maximum": 1.0,
        },
        "dry_run": {"type": ["boolean", "null"], "default": False},
        "secret": {"type": ["string", "null"], "x-dart-secret": True},
    },
    "additionalProperties": False,
    "required": ["release_label"],
}


def no_op_action_type(name: str) -> dict[str, Any]:
    return next(t for t in NO_OP_ENGINE["supported_action_types"] if t["name"] == name)


def copy_hdfs_to_s3_action(**args: Any) -> dict[str, Any]:
    return {
        "name": "copy_hdfs_to_s3",
        "action_type_name": "fake_copy_hdfs_to_s3",
        "engine_name": "no_op_engine",
        "args": {
            "source_hdfs_path": "hdfs:///user/hive/warehouse/dtest4",
            "destination_s3_path": "s3://fake-bucket/dart_testing",
            **args,
        },
    }


def dataset_data() -> dict[str, Any]:
    return {
        "name": "weblogs_v01",
        "table_name": "weblogs",
        "location": "s3://bucket/prefix",
        "load_type": "INSERT",
        "data_format": {"file_format": "PARQUET", "row_format": "NONE"},
        "columns": [{"name": "ip", "data_type": "STRING"}, {"name": "ts", "data_type": "TIMESTAMP"}],
    }


def assert_refused(data: dict[str, Any], schema: dict[str, Any], field: str) -> SchemaValidationError:
    with pytest.raises(SchemaValidationError) as caught:
        default_and_validate(data, schema)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    return caught.value


# ------------------------------------------------------------------------ the original's tests (§15.2)


def test_action_validation_fills_defaults_without_touching_the_input() -> None:
    action = copy_hdfs_to_s3_action()
    before = copy.deepcopy(action)
    params = no_op_action_type("fake_copy_hdfs_to_s3")["params_json_schema"]

    after = default_and_validate(action, schemas.action_schema(params))

    assert after != before
    assert action == before
    assert after["state"] == "HAS_NEVER_RUN"
    assert after["on_failure"] == "DEACTIVATE"
    assert after["on_failure_email"] == [] and after["tags"] == []
    assert after["completed_runs"] == 0


def test_action_missing_required_arg_is_refused() -> None:
    action = copy_hdfs_to_s3_action()
    del action["args"]["destination_s3_path"]
    params = no_op_action_type("fake_copy_hdfs_to_s3")["params_json_schema"]

    error = assert_refused(action, schemas.action_schema(params), "data.args.destination_s3_path")

    assert "'destination_s3_path' is a required property" in str(error)


def test_dataset_validation_fills_defaults() -> None:
    dataset = dataset_data()

    after = default_and_validate(dataset, schemas.DATASET_SCHEMA)

    assert after != dataset
    assert after["compression"] == "NONE"
    assert after["primary_keys"] == [] and after["batch_merge_sort_keys"] == []
    assert after["hive_compatible_partition_folders"] is False


def test_dataset_missing_location_is_refused() -> None:
    dataset = dataset_data()
    del dataset["location"]

    assert_refused(dataset, schemas.DATASET_SCHEMA, "data.location")


def test_datastore_validation_fills_defaults_and_keeps_secret_args_for_splitting() -> None:
    datastore = {
        "name": "test-datastore",
        "engine_name": "fake_engine",
        "args": {"data_to_freespace_ratio": 0, "secret": "hi"},
    }

    after = default_and_validate(datastore, schemas.datastore_schema(EMR_LIKE_OPTIONS))

    assert after != datastore
    assert after["state"] == "INACTIVE" and after["concurrency"] == 1
    assert after["args"]["release_label"] == "emr-4.2.0"
    assert after["args"]["secret"] == "hi"
    args, secrets = schemas.split_secrets(after["args"], EMR_LIKE_OPTIONS)
    assert "secret" not in args
    assert secrets == {"secret": "hi"}
    assert after["args"]["secret"] == "hi"  # split_secrets returns new dicts


def test_datastore_unknown_arg_is_refused_by_name() -> None:
    datastore = {
        "name": "test-datastore",
        "engine_name": "fake_engine",
        "args": {"data_to_freespace_ratio_yo": 0},
    }

    error = assert_refused(datastore, schemas.datastore_schema(EMR_LIKE_OPTIONS), "data.args")

    assert str(error) == "data.args: unknown field(s): data_to_freespace_ratio_yo"


@pytest.mark.parametrize(
    ("data", "schema"),
    [
        ({"name": "an_event"}, schemas.EVENT_SCHEMA),
        ({"name": "a_subscription", "dataset_id": "DATASET001"}, schemas.SUBSCRIPTION_SCHEMA),
        (
            {
                "name": "a_trigger",
                "trigger_type_name": "workflow_completion",
                "args": {"completed_workflow_id": "WORKFLOW01"},
            },
            schemas.trigger_schema(schemas.trigger_type("workflow_completion").params_json_schema),  # type: ignore[union-attr]
        ),
        ({"name": "a_workflow", "datastore_id": "DATASTORE1"}, schemas.WORKFLOW_SCHEMA),
    ],
    ids=["event", "subscription", "trigger", "workflow"],
)
def test_validation_fills_defaults_and_a_missing_name_is_refused(
    data: dict[str, Any], schema: dict[str, Any]
) -> None:
    after = default_and_validate(data, schema)
    assert after != data
    assert after["tags"] == [] and after["state"] == "INACTIVE"

    nameless = {k: v for k, v in data.items() if k != "name"}
    assert_refused(nameless, schema, "data.name")


# --------------------------------------------------------------------------------------- defaulting


def test_workflow_defaults_follow_the_design() -> None:
    after = default_and_validate({"name": "wf", "datastore_id": "DS"}, schemas.WORKFLOW_SCHEMA)

    assert after["on_failure"] == "DEACTIVATE"
    assert after["concurrency"] == 1 and after["retries_on_failure"] == 0
    assert after["on_started_email"] == []


def test_null_values_are_defaulted_like_missing_ones() -> None:
    after = default_and_validate(
        {"name": "wf", "datastore_id": "DS", "tags": None, "state": None}, schemas.WORKFLOW_SCHEMA
    )

    assert after["tags"] == [] and after["state"] == "INACTIVE"


def test_nested_defaults_are_filled_in_objects_and_array_items() -> None:
    dataset = dataset_data()
    dataset["partitions"] = [{"name": "dt", "data_type": "DATE", "is_nullable": None}]

    after = default_and_validate(dataset, schemas.DATASET_SCHEMA)

    assert after["data_format"]["num_header_rows"] == 0
    assert after["data_format"]["delimited_by"] is None
    assert [c["is_nullable"] for c in after["columns"]] == [True, True]
    assert after["partitions"][0]["is_nullable"] is True


def test_defaults_are_fresh_copies() -> None:
    first = default_and_validate({"name": "wf", "datastore_id": "DS"}, schemas.WORKFLOW_SCHEMA)
    first["tags"].append("changed")

    second = default_and_validate({"name": "wf", "datastore_id": "DS"}, schemas.WORKFLOW_SCHEMA)

    assert second["tags"] == []
    assert schemas.WORKFLOW_SCHEMA["properties"]["tags"]["default"] == []


def test_action_without_params_schema_gets_empty_args_and_refuses_any() -> None:
    action = {"name": "ok", "action_type_name": "fake_action_that_succeeds", "engine_name": "no_op_engine"}
    schema = schemas.action_schema(None)

    assert default_and_validate(action, schema)["args"] == {}
    error = assert_refused({**action, "args": {"x": 1}}, schema, "data.args")
    assert str(error) == "data.args: unknown field(s): x"


def test_datastore_args_must_be_null_when_the_engine_declares_no_options() -> None:
    schema = schemas.datastore_schema(None)
    datastore = {"name": "ds", "engine_name": "plain_engine"}

    assert default_and_validate(datastore, schema).get("args") is None
    assert_refused({**datastore, "args": {"a": 1}}, schema, "data.args")


def test_datastore_args_get_the_engines_option_defaults() -> None:
    schema = schemas.datastore_schema(NO_OP_ENGINE["options_json_schema"])

    after = default_and_validate({"name": "ds", "engine_name": "no_op_engine", "args": {}}, schema)

    assert after["args"] == {"action_sleep_time_in_seconds": 5}


# ------------------------------------------------------------------------------- naming the failure


def test_every_unknown_field_is_named() -> None:
    data = {"name": "wf", "datastore_id": "DS", "foo": 1, "bar": 2}

    error = assert_refused(data, schemas.WORKFLOW_SCHEMA, "data")

    assert str(error) == "data: unknown field(s): foo, bar"


def test_range_violation_names_the_field() -> None:
    schema = schemas.datastore_schema(None)

    error = assert_refused({"name": "ds", "engine_name": "e", "concurrency": 11}, schema, "data.concurrency")

    assert str(error) == "data.concurrency: 11 is greater than the maximum of 10"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "bad name!", "datastore_id": "DS"}, "data.name"),
        ({"name": "n" * 51, "datastore_id": "DS"}, "data.name"),
        ({"name": "wf", "datastore_id": "DS", "tags": ["fine", "not-fine"]}, "data.tags[1]"),
        ({"name": "wf", "datastore_id": "DS", "on_success_email": ["nobody"]}, "data.on_success_email[0]"),
        ({"name": "wf", "datastore_id": "DS", "retries_on_failure": -1}, "data.retries_on_failure"),
    ],
)
def test_pattern_and_range_violations_name_the_field(data: dict[str, Any], field: str) -> None:
    assert_refused(data, schemas.WORKFLOW_SCHEMA, field)


def test_user_id_pattern_is_enforced() -> None:
    assert_refused({"name": "e", "user_id": "someone+tag@example.com"}, schemas.EVENT_SCHEMA, "data.user_id")
    assert default_and_validate({"name": "e", "user_id": "a.b@example.com"}, schemas.EVENT_SCHEMA)


def test_dataset_location_and_column_patterns_name_the_field() -> None:
    dataset = dataset_data()
    dataset["location"] = "hdfs://somewhere"
    assert_refused(dataset, schemas.DATASET_SCHEMA, "data.location")

    dataset = dataset_data()
    dataset["columns"][1]["name"] = "bad name"
    assert_refused(dataset, schemas.DATASET_SCHEMA, "data.columns[1].name")


@pytest.mark.parametrize(
    ("data", "schema", "field"),
    [
        (
            {"name": "wf", "datastore_id": "DS", "on_failure": "HALT"},
            schemas.WORKFLOW_SCHEMA,
            "data.on_failure",
        ),
        ({"name": "wf", "datastore_id": "DS", "state": "PAUSED"}, schemas.WORKFLOW_SCHEMA, "data.state"),
        (
            {"name": "ds", "engine_name": "e", "state": "RUNNING"},
            schemas.datastore_schema(None),
            "data.state",
        ),
        ({"name": "e", "state": "ON"}, schemas.EVENT_SCHEMA, "data.state"),
        ({"name": "s", "dataset_id": "D", "state": "PAUSED"}, schemas.SUBSCRIPTION_SCHEMA, "data.state"),
    ],
)
def test_enum_violations_name_the_field(data: dict[str, Any], schema: dict[str, Any], field: str) -> None:
    error = assert_refused(data, schema, field)
    assert "is not one of" in str(error)


def test_action_on_failure_offers_halt_and_every_state() -> None:
    schema = schemas.action_schema(None)
    base = {"name": "a", "action_type_name": "t", "engine_name": "e"}

    assert default_and_validate({**base, "on_failure": "HALT"}, schema)["on_failure"] == "HALT"
    for state in (
        "TEMPLATE",
        "HAS_NEVER_RUN",
        "QUEUED",
        "PENDING",
        "RUNNING",
        "FINISHING",
        "COMPLETED",
        "FAILED",
        "SKIPPED",
    ):
        assert default_and_validate({**base, "state": state}, schema)["state"] == state
    assert_refused({**base, "on_failure": "IGNORE"}, schema, "data.on_failure")


def test_a_failing_secret_is_not_quoted_in_the_error() -> None:
    options = {
        "type": "object",
        "properties": {"password": {"type": "string", "minLength": 8, "x-dart-secret": True}},
        "additionalProperties": False,
    }
    datastore = {"name": "ds", "engine_name": "e", "args": {"password": "hunter2"}}

    error = assert_refused(datastore, schemas.datastore_schema(options), "data.args.password")

    assert "hunter2" not in str(error)


def test_the_error_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        default_and_validate({}, schemas.EVENT_SCHEMA)
    with pytest.raises(ValueError):
        default_and_validate({}, schemas.EVENT_SCHEMA)


# ---------------------------------------------------------------------------------------- trigger types


def trigger(type_name: str, args: Any) -> dict[str, Any]:
    return {"name": "t", "trigger_type_name": type_name, "args": args}


def trigger_schema_for(type_name: str) -> dict[str, Any]:
    found = schemas.trigger_type(type_name)
    assert found is not None
    return schemas.trigger_schema(found.params_json_schema)


def test_scheduled_trigger_requires_a_cron_pattern() -> None:
    schema = trigger_schema_for("scheduled")

    assert default_and_validate(trigger("scheduled", {"cron_pattern": "0 12 ? * 2 *"}), schema)
    assert_refused(trigger("scheduled", {}), schema, "data.args.cron_pattern")
    assert_refused({"name": "t", "trigger_type_name": "scheduled"}, schema, "data.args")


def test_workflow_completion_and_event_triggers_require_their_ids() -> None:
    assert_refused(
        trigger("workflow_completion", {}),
        trigger_schema_for("workflow_completion"),
        "data.args.completed_workflow_id",
    )
    assert_refused(trigger("event", {}), trigger_schema_for("event"), "data.args.event_id")
    assert default_and_validate(trigger("event", {"event_id": "EVENT00001"}), trigger_schema_for("event"))


def test_subscription_batch_trigger_needs_a_positive_threshold_and_a_subscription() -> None:
    schema = trigger_schema_for("subscription_batch")
    good = {"subscription_id": "SUB0000001", "unconsumed_data_size_in_bytes": 1}

    assert default_and_validate(trigger("subscription_batch", good), schema)
    assert_refused(
        trigger("subscription_batch", {**good, "unconsumed_data_size_in_bytes": 0}),
        schema,
        "data.args.unconsumed_data_size_in_bytes",
    )
    assert_refused(
        trigger("subscription_batch", {**good, "unconsumed_data_size_in_bytes": 1.5}),
        schema,
        "data.args.unconsumed_data_size_in_bytes",
    )
    assert_refused(
        trigger("subscription_batch", {"unconsumed_data_size_in_bytes": 10}),
        schema,
        "data.args.subscription_id",
    )


def test_super_trigger_defaults_to_all_and_needs_at_least_one_input() -> None:
    schema = trigger_schema_for("super")

    after = default_and_validate(trigger("super", {"completed_trigger_ids": ["TRIGGER001"]}), schema)

    assert after["args"]["fire_after"] == "ALL"
    assert_refused(trigger("super", {"completed_trigger_ids": []}), schema, "data.args.completed_trigger_ids")
    assert_refused(
        trigger("super", {"fire_after": "SOME", "completed_trigger_ids": ["T"]}),
        schema,
        "data.args.fire_after",
    )


def test_trigger_types_without_params_take_null_args() -> None:
    schema = trigger_schema_for("manual")

    assert default_and_validate(trigger("manual", None), schema)["args"] is None
    assert_refused(trigger("manual", {"x": 1}), schema, "data.args")


def test_listed_and_storable_trigger_types() -> None:
    listed = [t.name for t in schemas.listed_trigger_types()]

    assert listed == ["retry", "scheduled", "workflow_completion", "event", "subscription_batch", "super"]
    assert [t.name for t in schemas.all_trigger_types()] == ["manual", *listed]
    assert not schemas.storable("manual") and not schemas.storable("retry")
    assert schemas.storable("scheduled") and schemas.storable("super")
    assert not schemas.storable("nonexistent") and schemas.trigger_type("nonexistent") is None


def test_every_trigger_params_schema_is_a_valid_schema() -> None:
    for trigger_type in schemas.all_trigger_types():
        if trigger_type.params_json_schema is not None:
            schemas.check_schema(trigger_type.params_json_schema, trigger_type.name)


# ------------------------------------------------------------------------- declared schemas and drafts


def test_a_draft_07_schema_gets_draft_07_semantics() -> None:
    draft_4 = {"type": "object", "properties": {"mode": {"const": "fast"}}}
    draft_7 = {"$schema": DRAFT_07, **draft_4}

    assert default_and_validate({"mode": "slow"}, draft_4) == {"mode": "slow"}  # const is not Draft 4
    with pytest.raises(SchemaValidationError) as caught:
        default_and_validate({"mode": "slow"}, draft_7)
    assert caught.value.field == "data.mode"


def test_an_engine_options_schema_declaring_draft_07_keeps_its_semantics_inside_a_datastore() -> None:
    options = {"$schema": DRAFT_07, "type": "object", "properties": {"mode": {"const": "fast"}}}
    schema = schemas.datastore_schema(options)

    assert default_and_validate({"name": "ds", "engine_name": "e", "args": {"mode": "fast"}}, schema)
    assert_refused({"name": "ds", "engine_name": "e", "args": {"mode": "slow"}}, schema, "data.args.mode")
    assert_refused(
        {"name": "ds", "engine_name": "e", "args": {}, "concurrency": 0}, schema, "data.concurrency"
    )


def test_a_declared_schema_may_refer_to_its_own_definitions() -> None:
    params = {
        "type": "object",
        "definitions": {"path": {"type": "string", "pattern": "^s3://"}},
        "properties": {"source": {"$ref": "#/definitions/path"}},
    }
    schema = schemas.action_schema(params)
    action = {"name": "a", "action_type_name": "t", "engine_name": "e"}

    assert default_and_validate({**action, "args": {"source": "s3://b/k"}}, schema)
    assert_refused({**action, "args": {"source": "/local"}}, schema, "data.args.source")


@pytest.mark.parametrize(
    "declared",
    [
        {"type": "bogus"},
        {"properties": {"a": {"enum": []}}},
        {"properties": {"a": {"type": "string", "pattern": "("}}},
        {"$schema": "http://example.com/not-a-draft"},
        ["not", "an", "object"],
    ],
    ids=["type", "empty-enum", "bad-regex", "unknown-draft", "not-an-object"],
)
def test_check_schema_refuses_a_bad_declared_schema_by_name(declared: Any) -> None:
    with pytest.raises(SchemaValidationError) as caught:
        schemas.check_schema(declared, "data.options_json_schema")

    assert caught.value.field == "data.options_json_schema"
    assert str(caught.value).startswith("data.options_json_schema: not a valid JSON schema: ")


def test_check_schema_accepts_the_originals_empty_required_lists() -> None:
    schemas.check_schema({"type": "object", "properties": {}, "required": []})


def test_check_engine_schemas_names_the_bad_action_type() -> None:
    engine = copy.deepcopy(NO_OP_ENGINE)
    engine["supported_action_types"][2]["params_json_schema"] = {"type": "nope"}

    with pytest.raises(SchemaValidationError) as caught:
        schemas.check_engine_schemas(engine)

    assert caught.value.field == "data.supported_action_types[2].params_json_schema"


# --------------------------------------------------------------------------------- no_op, instances, secrets


def test_no_op_engine_registration_is_valid() -> None:
    after = default_and_validate(NO_OP_ENGINE, schemas.ENGINE_SCHEMA)
    schemas.check_engine_schemas(after)

    assert after["name"] == "no_op_engine" and after["description"] == "Helps engineering test dart"
    assert [t["name"] for t in after["supported_action_types"]] == [
        "fake_action_that_succeeds",
        "fake_action_that_fails",
        "fake_copy_hdfs_to_s3",
        "fake_load_dataset",
        "consume_subscription",
    ]
    (container,) = after["ecs_task_definition"]["containerDefinitions"]
    assert (container["cpu"], container["memory"]) == (64, 256)
    assert container["image"] == "dart/no_op_engine:latest"


def test_an_engine_needs_at_least_one_action_type() -> None:
    engine = {**copy.deepcopy(NO_OP_ENGINE), "supported_action_types": []}
    assert_refused(engine, schemas.ENGINE_SCHEMA, "data.supported_action_types")


def test_workflow_instance_schema_accepts_what_dart_writes() -> None:
    instance = {
        "workflow_id": "WORKFLOW01",
        "datastore_id": "DATASTORE2",
        "engine_name": "no_op_engine",
        "trigger_type": "manual",
        "trigger_id": None,
        "queued_time": "2024-01-01T00:00:00+00:00",
    }

    after = default_and_validate(instance, schemas.WORKFLOW_INSTANCE_SCHEMA)

    assert after["state"] == "QUEUED" and after["retry_num"] == 0
    assert_refused({**instance, "state": "SKIPPED"}, schemas.WORKFLOW_INSTANCE_SCHEMA, "data.state")


def test_secret_properties_are_top_level_markers_only() -> None:
    assert schemas.secret_properties(EMR_LIKE_OPTIONS) == {"secret"}
    assert schemas.secret_properties(None) == set()
    assert schemas.split_secrets(None, EMR_LIKE_OPTIONS) == (None, {})
    # A null secret has nothing to keep, but it still leaves the args.
    assert schemas.split_secrets({"secret": None, "dry_run": True}, EMR_LIKE_OPTIONS) == (
        {"dry_run": True},
        {},
    )


def test_schema_for_gives_every_category_a_closed_schema() -> None:
    for category in (
        "engine",
        "dataset",
        "datastore",
        "action",
        "workflow",
        "workflow_instance",
        "trigger",
        "subscription",
        "event",
    ):
        schema = schemas.schema_for(category)
        assert schema["additionalProperties"] is False
        schemas.check_schema(schema, category)
    with pytest.raises(KeyError):
        schemas.schema_for("nonexistent")
