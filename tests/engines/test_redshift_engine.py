"""The redshift_engine. There is no Redshift here, so: the cluster's lifecycle runs against moto's Redshift
API over loopback (create, snapshot, stop with a final snapshot, restore from the latest or a named one,
retention), COPY and UNLOAD are checked as generated SQL for each dataset shape and authorization, the
manifests are read back from moto's S3, and the shared SQL path (execute_sql, data_check,
cluster_maintenance's retention, the stl_load_errors message) runs on the machine's PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
from psycopg.conninfo import conninfo_to_dict

from engines.data.datasets import Dataset
from engines.postgresql.hook import connect
from engines.redshift import sql
from engines.redshift.cluster import Cluster
from engines.redshift.definition import redshift_engine
from engines.redshift.engine import HANDLER
from engines.redshift.load import load_error, upload_manifests
from engines.sdk import ActionContext, ActionFailure
from tests.engines.conftest import dataset_for
from tests.engines.pgsupport import Dart, query

ROLE = sql.Authorization(iam_role="arn:aws:iam::123456789012:role/dart-copy")
KEYS = sql.Authorization(None, "AKIAX", "secretX", "tokenX")
COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "data_type": "BIGINT", "is_nullable": False},
    {"name": "name", "data_type": "VARCHAR", "length": 10},
    {"name": "note", "data_type": "STRING", "path": "meta.note"},
    {"name": "amount", "data_type": "NUMERIC", "precision": 10, "scale": 2},
    {"name": "day", "data_type": "DATE", "date_pattern": "dd/MM/yyyy"},
    {"name": "at", "data_type": "TIMESTAMP", "date_pattern": "yyyy-MM-dd HH:mm:ss"},
]


class Store(Dart):
    """The dart calls the handlers make, with the datastore patches they send."""

    def __init__(self, entities: dict[str, Any] | None = None) -> None:
        super().__init__(entities)
        self.patches: list[dict[str, Any]] = []

    def patch_datastore(self, datastore_id: str, **fields: Any) -> dict[str, Any]:
        self.patches.append(fields)
        return {}


def _context(
    action_type: str, args: dict[str, Any], data: dict[str, Any] | None = None, **options: Any
) -> ActionContext:
    action = {"id": uuid.uuid4().hex[:12], "data": {"action_type_name": action_type, "args": args}}
    store = {
        "id": "rs1",
        "data": {
            "engine_name": "redshift_engine",
            **(data or {}),
            "args": {"master_user_password": "Passw0rd1", **options},
        },
    }
    return ActionContext({"id": "e1", "data": {}}, action, store)


def _run(context: ActionContext, dart: Dart) -> None:
    HANDLER(context, dart)  # type: ignore[arg-type]


# -- the cluster's lifecycle on moto's Redshift API ---------------------------------------------------------


@pytest.fixture
def redshift(aws_env: dict[str, str]) -> Any:
    return boto3.client("redshift", endpoint_url=aws_env["AWS_ENDPOINT_URL"], region_name="us-east-1")


def test_start_creates_then_stop_snapshots_then_start_restores_from_the_latest(
    redshift: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"dart-{uuid.uuid4().hex[:10]}"
    clock = iter(datetime(2026, 3, 1) + timedelta(seconds=i) for i in range(10))
    monkeypatch.setattr("engines.data.s3.utcnow", lambda: next(clock))  # one snapshot name a second
    dart = Store()
    _run(_context("start_datastore", {}, cluster_identifier=name, nodes=3, master_db_name="mart"), dart)
    [created] = redshift.describe_clusters(ClusterIdentifier=name)["Clusters"]
    assert (created["NumberOfNodes"], created["NodeType"], created["DBName"], created["MasterUsername"]) == (
        3,
        "ds2.xlarge",
        "mart",
        "admin",
    )
    host = created["Endpoint"]["Address"]
    assert dart.patches == [
        {"host": host, "port": 5439, "connection_url": f"jdbc:redshift://{host}:5439/mart"}
    ]
    _run(_context("start_datastore", {}, cluster_identifier=name), dart)  # a re-run leaves the cluster be
    _run(_context("create_snapshot", {}, cluster_identifier=name), dart)
    assert dart.progress[-1][1] == {
        "snapshot": f"{name}-20260301000000"
    }  # dart-datastore-<id>-<YYYYmmddHHMMSS>
    _run(_context("stop_datastore", {}, cluster_identifier=name), dart)
    final = dart.progress[-1][1]["final_snapshot"]
    assert final == f"{name}-20260301000001"
    assert name not in {c["ClusterIdentifier"] for c in redshift.describe_clusters()["Clusters"]}
    manual = redshift.describe_cluster_snapshots(ClusterIdentifier=name, SnapshotType="manual")["Snapshots"]
    assert sorted(s["SnapshotIdentifier"] for s in manual) == [f"{name}-20260301000000", final]
    cluster = Cluster(redshift, {"id": "x", "data": {"args": {"cluster_identifier": name}}})
    assert cluster.start() == f"restored cluster {name} from snapshot {final}"  # the latest
    assert redshift.describe_clusters(ClusterIdentifier=name)["Clusters"][0]["ClusterStatus"] == "available"
    with pytest.raises(ActionFailure, match=f"^stop_datastore: Redshift cluster {name}-none was not found$"):
        _run(_context("stop_datastore", {}, cluster_identifier=f"{name}-none"), dart)


def test_start_restores_a_named_snapshot_and_refuses_an_unknown_one(redshift: Any) -> None:
    name = f"dart-{uuid.uuid4().hex[:10]}"
    clock = iter(datetime(2026, 1, 1) + timedelta(minutes=i) for i in range(10))
    cluster = Cluster(
        redshift,
        {
            "id": "x",
            "data": {
                "args": {
                    "cluster_identifier": name,
                    "master_user_password": "Passw0rd1",
                    "snapshot_retention": 2,
                }
            },
        },
        now=lambda: next(clock),
    )
    assert cluster.start() == f"created cluster {name}"
    names = [cluster.create_snapshot() for _ in range(3)]
    assert names == [f"{name}-20260101000{i}00" for i in range(3)]
    kept = [s["SnapshotIdentifier"] for s in cluster.snapshots()]
    assert kept == names[:0:-1]  # the newest two; the oldest was past snapshot_retention
    cluster.stop()  # its final snapshot is the newest: the older of the two goes
    assert [s["SnapshotIdentifier"] for s in cluster.snapshots()] == [f"{name}-20260101000300", names[2]]
    with pytest.raises(ActionFailure, match=rf"^cluster {name} has no snapshot 'nope' \(it has: {name}-2026"):
        cluster.start("nope")
    assert cluster.start(names[2]) == f"restored cluster {name} from snapshot {names[2]}"
    cluster.now = lambda: datetime(2026, 1, 1, 0, 3)  # the final snapshot's second: the name moves on one
    assert cluster.snapshot_name() == f"{name}-20260101000301"


def test_create_without_a_password_fails_in_one_line(redshift: Any) -> None:
    context = _context("start_datastore", {}, cluster_identifier=f"dart-{uuid.uuid4().hex[:10]}")
    del context.datastore["data"]["args"]["master_user_password"]
    with pytest.raises(
        ActionFailure,
        match=r"^start_datastore: cannot create Redshift cluster dart-\w+: the "
        r"datastore has no master_user_password$",
    ):
        _run(context, Store())


# -- generated SQL -----------------------------------------------------------------------------------------


def _dataset(
    fmt: str, compression: str, columns: list[dict[str, Any]] | None = None, **fields: Any
) -> Dataset:
    return Dataset.from_api(dataset_for("s3://data/events", fmt, compression, columns or COLUMNS, **fields))


M = "COPY t FROM 's3://art/m.json' "
DATES = "DATEFORMAT 'DD/MM/YYYY' TIMEFORMAT 'YYYY-MM-DD HH24:MI:SS'"
IAM = "IAM_ROLE 'arn:aws:iam::123456789012:role/dart-copy'"
CREDENTIALS = "CREDENTIALS 'aws_access_key_id=AKIAX;aws_secret_access_key=secretX;token=tokenX'"


@pytest.mark.parametrize(
    ("shape", "auth", "expected"),
    [
        (
            ("CSV", "NONE", {}),
            ROLE,
            (
                f"{M}{IAM} MANIFEST CSV QUOTE AS '\"' DELIMITER ',' EMPTYASNULL IGNOREHEADER 1 "
                f"IGNOREBLANKLINES TRUNCATECOLUMNS MAXERROR 0 {DATES}"
            ),
        ),
        (
            ("CSV", "GZIP", {}),
            KEYS,
            (
                f"{M}{CREDENTIALS} MANIFEST CSV QUOTE AS '\"' DELIMITER ',' EMPTYASNULL "
                f"IGNOREHEADER 1 IGNOREBLANKLINES GZIP TRUNCATECOLUMNS MAXERROR 0 {DATES}"
            ),
        ),
        (
            (
                "CSV",
                "BZ2",
                {
                    "data_format": {
                        "file_format": "TEXTFILE",
                        "row_format": "DELIMITED",
                        "delimited_by": "\t",
                        "escaped_by": "\\",
                        "null_string": "\\N",
                    }
                },
            ),
            ROLE,
            (
                f"{M}{IAM} MANIFEST DELIMITER '\t' ESCAPE NULL AS '\\N' IGNOREBLANKLINES BZIP2 "
                f"TRUNCATECOLUMNS MAXERROR 0 {DATES}"
            ),
        ),
        (
            (
                "CSV",
                "NONE",
                {
                    "data_format": {
                        "file_format": "TEXTFILE",
                        "row_format": "DELIMITED",
                        "delimited_by": "|",
                        "quoted_by": "'",
                        "escaped_by": "\\",
                    }
                },
            ),
            ROLE,
            (
                f"{M}{IAM} MANIFEST DELIMITER '|' REMOVEQUOTES ESCAPE EMPTYASNULL IGNOREBLANKLINES "
                "TRUNCATECOLUMNS "
                f"MAXERROR 0 {DATES}"
            ),
        ),
        (
            ("JSON", "GZIP", {}),
            KEYS,
            (
                f"{M}{CREDENTIALS} MANIFEST FORMAT AS JSON 's3://art/j.json' GZIP TRUNCATECOLUMNS "
                f"MAXERROR 0 {DATES}"
            ),
        ),
        (("PARQUET", "NONE", {}), ROLE, f"{M}{IAM} MANIFEST FORMAT AS PARQUET"),
    ],
)
def test_copy_sql_per_dataset_shape(
    shape: tuple[str, str, dict[str, Any]], auth: sql.Authorization, expected: str
) -> None:
    fmt, compression, fields = shape
    dataset = _dataset(fmt, compression, **fields)
    assert sql.copy_sql("t", dataset, "s3://art/m.json", auth, jsonpaths_path="s3://art/j.json") == expected


def test_copy_sql_options_and_refusals() -> None:
    plain = _dataset("CSV", "GZIP", COLUMNS[:4])
    assert sql.copy_sql("t", plain, "s3://art/m.json", ROLE, max_errors=7, truncate_columns=False) == (
        f"{M}{IAM} MANIFEST CSV QUOTE AS '\"' DELIMITER ',' EMPTYASNULL IGNOREHEADER 1 IGNOREBLANKLINES GZIP "
        "MAXERROR 7 DATEFORMAT 'auto' TIMEFORMAT 'auto'"
    )
    refusals: list[tuple[Dataset, dict[str, Any], str]] = [
        (_dataset("PARQUET", "NONE"), {"max_errors": 1}, "^max_errors: Redshift's COPY cannot skip bad rows"),
        (_dataset("CSV", "SNAPPY"), {}, "^Redshift's COPY cannot decompress SNAPPY text files$"),
        (
            _dataset(
                "CSV", "NONE", COLUMNS + [{"name": "d2", "data_type": "DATE", "date_pattern": "yyyyMMdd"}]
            ),
            {},
            (
                "^Redshift's COPY takes one DATEFORMAT, but the columns' date_pattern differ: "
                "day 'dd/MM/yyyy', d2 "
                "'yyyyMMdd'$"
            ),
        ),
        (
            _dataset(
                "CSV",
                "NONE",
                data_format={"file_format": "TEXTFILE", "row_format": "DELIMITED", "escaped_by": "^"},
            ),
            {},
            "escapes only with a backslash",
        ),
        (
            _dataset("CSV", "NONE", data_format={"file_format": "TEXTFILE", "row_format": "REGEX"}),
            {},
            "cannot read TEXTFILE REGEX files",
        ),
    ]
    for dataset, options, message in refusals:
        with pytest.raises(ValueError, match=message):
            sql.copy_sql("t", dataset, "s3://art/m.json", ROLE, jsonpaths_path="s3://j", **options)


def test_table_layout_merge_and_unload_sql() -> None:
    dataset = _dataset(
        "CSV",
        "NONE",
        COLUMNS[:4],
        primary_keys=["id"],
        distribution_keys=["name"],
        sort_keys=["id"],
        merge_keys=["id"],
        batch_merge_sort_keys=["amount DESC"],
    )
    columns = '"id" BIGINT NOT NULL, "name" VARCHAR(10), "note" VARCHAR(MAX), "amount" DECIMAL(10,2)'
    assert sql.create_table_sql('"s"."t"', dataset, {}) == (
        f'CREATE TABLE IF NOT EXISTS "s"."t" ({columns}, PRIMARY KEY ("id")) DISTSTYLE KEY DISTKEY ("name") '
        'SORTKEY ("id")'
    )
    assert sql.create_table_sql(
        '"s"."t"',
        _dataset("CSV", "NONE", COLUMNS[:4]),
        {"distribution_style": "ALL", "target_sort_keys": ["name", "id"], "sort_keys_interleaved": True},
    ) == (f'CREATE TABLE IF NOT EXISTS "s"."t" ({columns}) DISTSTYLE ALL INTERLEAVED SORTKEY ("name", "id")')
    with pytest.raises(ValueError, match="has partition columns: Redshift's COPY cannot take their values"):
        sql.create_table_sql(
            "t", _dataset("CSV", "NONE", partitions=[{"name": "dt", "data_type": "DATE"}]), {}
        )
    assert sql.merge_sql('"s"."t"', "_st", dataset) == [
        'DELETE FROM "s"."t" USING _st WHERE "s"."t"."id" = _st."id"',
        (
            'INSERT INTO "s"."t" ("id", "name", "note", "amount") SELECT "id", "name", "note", "amount" '
            'FROM (SELECT "id", "name", "note", "amount", ROW_NUMBER() OVER (PARTITION BY "id" ORDER BY '
            '"amount" DESC) AS _dart_rank '
            "FROM _st) AS ranked WHERE _dart_rank = 1"
        ),
        "DELETE FROM _st",
    ]
    assert sql.unload_sql("SELECT * FROM t WHERE name = 'x';", "s3://out/2026/agg_", KEYS) == (
        "UNLOAD ('SELECT * FROM t WHERE name = ''x''') TO 's3://out/2026/agg_' "
        f"{CREDENTIALS} ALLOWOVERWRITE NULL AS 'NULL' ESCAPE DELIMITER '\t' PARALLEL ON GZIP"
    )
    assert sql.unload_sql("SELECT 1", "s3://out/x_", ROLE, ",", parallel=False, gzip=False, header=True) == (
        f"UNLOAD ('SELECT 1') TO 's3://out/x_' {IAM} ALLOWOVERWRITE NULL AS 'NULL' ESCAPE DELIMITER ',' "
        "HEADER "
        "PARALLEL OFF"
    )


def test_manifests_and_jsonpaths_are_written_under_the_artifacts_path(s3: Any, bucket: str) -> None:
    dataset = _dataset("JSON", "GZIP")
    rounds = [
        [("s3://data/events/a.json.gz", 10), ("s3://data/events/b.json.gz", 20)],
        [("s3://data/events/c.json.gz", 5)],
    ]
    manifests, json_paths = upload_manifests(s3, f"s3://{bucket}/artifacts/rs1", "a1", dataset, rounds)
    assert manifests == [
        f"s3://{bucket}/artifacts/rs1/load-manifests/load-manifest-for-action-a1-part-{n}.json"
        for n in (1, 2)
    ]
    first = json.loads(s3.get_object(Bucket=bucket, Key=manifests[0].split("/", 3)[3])["Body"].read())
    assert first == {
        "entries": [
            {"url": "s3://data/events/a.json.gz", "mandatory": True, "meta": {"content_length": 10}},
            {"url": "s3://data/events/b.json.gz", "mandatory": True, "meta": {"content_length": 20}},
        ]
    }
    assert json_paths == f"s3://{bucket}/artifacts/rs1/json-manifests/json-manifest-for-action-a1.json"
    paths = json.loads(s3.get_object(Bucket=bucket, Key=json_paths.split("/", 3)[3])["Body"].read())
    assert paths == {
        "jsonpaths": ["$['id']", "$['name']", "$['meta']['note']", "$['amount']", "$['day']", "$['at']"]
    }
    with pytest.raises(ValueError, match="^the datastore has no s3_artifacts_path"):
        upload_manifests(s3, None, "a1", dataset, rounds)


def test_the_definition_has_every_option_and_action_type_of_the_original() -> None:
    body = redshift_engine()
    assert [a["name"] for a in body["supported_action_types"]] == [
        "start_datastore",
        "stop_datastore",
        "execute_sql",
        "load_dataset",
        "consume_subscription",
        "copy_to_s3",
        "create_snapshot",
        "data_check",
        "cluster_maintenance",
    ]
    options = body["options_json_schema"]["properties"]
    assert {
        "node_type",
        "nodes",
        "master_user_name",
        "master_user_password",
        "master_db_name",
        "cluster_identifier",
        "preferred_maintenance_window",
        "snapshot_retention",
    } <= set(options)
    assert options["master_user_password"]["x-dart-secret"] is True
    load = {a["name"]: a for a in body["supported_action_types"]}["load_dataset"]["params_json_schema"]
    assert {
        "target_sort_keys",
        "target_distribution_key",
        "distribution_style",
        "sort_keys_interleaved",
        "s3_path_regex_filter_date_offset_in_seconds",
        "max_errors",
        "batch_size",
    } <= set(load["properties"])


# -- the shared SQL path on PostgreSQL -----------------------------------------------------------------------


def _on_postgres(pg_url: str, action_type: str, args: dict[str, Any], **options: Any) -> ActionContext:
    info = conninfo_to_dict(pg_url)
    return _context(
        action_type,
        args,
        {"host": info.get("host", "127.0.0.1"), "port": int(info.get("port") or 5432)},
        master_db_name=info["dbname"],
        master_user_name=info.get("user", "postgres"),
        **options,
    )


@pytest.mark.postgres
def test_execute_sql_data_check_and_cluster_maintenance_on_the_shared_sql_path(pg_url: str) -> None:
    dart = Store()
    _run(
        _on_postgres(
            pg_url,
            "execute_sql",
            {
                "sql_script": (
                    "CREATE SCHEMA dart; CREATE TABLE dart.retention_policy (schema_name text, "
                    "table_name text, column_name text, retention_days int); "
                    "INSERT INTO dart.retention_policy VALUES ('public', 'visits', 'day', 30); "
                    "CREATE TABLE visits AS SELECT g AS id, current_date - g AS day "
                    "FROM generate_series(0, 99) g"
                )
            },
        ),
        dart,
    )
    _run(_on_postgres(pg_url, "data_check", {"sql_script": "SELECT count(*) = 100 FROM visits"}), dart)
    _run(
        _on_postgres(
            pg_url, "cluster_maintenance", {"Retention_Policy": True, "Vacuum": False, "Analyze": False}
        ),
        dart,
    )
    assert query(pg_url, "SELECT count(*), max(id) FROM visits") == [
        (31, 30)
    ]  # DATEDIFF(day, day, today) <= 30
    with pytest.raises(ActionFailure, match="^data_check: Data check failed$"):
        _run(_on_postgres(pg_url, "data_check", {"sql_script": "SELECT count(*) > 31 FROM visits"}), dart)
    with pytest.raises(ActionFailure, match='^execute_sql: SQL error: relation "nope" does not exist$'):
        _run(
            _on_postgres(pg_url, "execute_sql", {"sql_script": "DELETE FROM visits; SELECT * FROM nope"}),
            dart,
        )
    assert query(pg_url, "SELECT count(*) FROM visits") == [(31,)]
    query(pg_url, "DROP TABLE dart.retention_policy")
    with pytest.raises(
        ActionFailure,
        match=r"^cluster_maintenance: Retention_Policy needs the table "
        r"dart.retention_policy \(schema_name, table_name, column_name, ",
    ):
        _run(_on_postgres(pg_url, "cluster_maintenance", {"Retention_Policy": True}), dart)
    context = _on_postgres(pg_url, "execute_sql", {"sql_script": "SELECT 1"})
    context.datastore["data"]["port"] = 1
    with pytest.raises(
        ActionFailure, match=r"^execute_sql: cannot connect to Redshift admin@127.0.0.1:1/dart"
    ):
        context.datastore["data"]["args"].pop("master_user_name")
        context.datastore["data"]["args"].pop("master_db_name")
        _run(context, dart)


@pytest.mark.postgres
def test_a_failed_copy_names_its_row_from_stl_load_errors(pg_url: str) -> None:
    """stl_load_errors as a PostgreSQL table with Redshift's columns (CHAR padding included): the lookup and
    the message are the ones a Redshift COPY failure gets."""
    query(
        pg_url,
        "CREATE TABLE stl_load_errors (query int, starttime timestamp, filename char(256), "
        "line_number bigint, colname char(127), raw_field_value char(1024), err_reason char(100))",
    )
    query(
        pg_url,
        "INSERT INTO stl_load_errors VALUES "
        "(1, now() - interval '1 day', 's3://data/events/old.csv', 9, 'id', 'x', 'old'), "
        "(2, now(), 's3://data/events/part-3.csv.gz', 1235, 'amount', 'abc', "
        "'Invalid digit, Value ''a'', Pos 0, Type: Decimal'), "
        "(3, now(), 's3://other/x.csv', 1, 'id', 'y', 'elsewhere')",
    )
    dataset = _dataset("CSV", "GZIP")
    with connect(conninfo_to_dict(pg_url)) as conn:
        assert load_error(conn, dataset, "public.events") == (
            'row 1,235 of s3://data/events/part-3.csv.gz: column "amount" (NUMERIC(10,2)): Invalid digit, '
            "Value 'a', Pos 0, Type: Decimal (value \"abc\")"
        )
        missing = Dataset.from_api(dataset_for("s3://none/x", "CSV", "GZIP", COLUMNS))
        assert load_error(conn, missing, "public.events") == (
            "COPY into public.events failed and stl_load_errors has no row for s3://none/x/"
        )


@pytest.mark.postgres
def test_load_and_unload_handlers_refuse_in_one_line(pg_url: str, s3: Any, bucket: str) -> None:
    """The handlers' wiring up to the statement Redshift would run: listing, connection, authorization."""
    s3.put_object(Bucket=bucket, Key="events/dt=2026-01-01/part-0.csv", Body=b"id\n1\n")
    location = f"s3://{bucket}/events"
    partitioned = dataset_for(
        location, "CSV", "NONE", COLUMNS[:1], partitions=[{"name": "dt", "data_type": "DATE"}]
    )
    dart = Store(
        {
            "/dataset/d1": {"id": "d1", "data": partitioned},
            "/dataset/d2": {"id": "d2", "data": dataset_for(location, "CSV", "NONE", COLUMNS[:1])},
        }
    )
    load = _on_postgres(pg_url, "load_dataset", {"dataset_id": "d1"})
    load.datastore["data"]["s3_artifacts_path"] = f"s3://{bucket}/artifacts/rs1"
    with pytest.raises(
        ActionFailure,
        match=r"^load_dataset: dataset ds_\w+ has partition columns: Redshift's COPY "
        r"cannot take their values from the files' folders$",
    ):
        _run(load, dart)
    with pytest.raises(
        ActionFailure,
        match="^load_dataset: the datastore has no s3_artifacts_path for the load's "
        r"manifests \(set dart's S3 root\)$",
    ):
        _run(_on_postgres(pg_url, "load_dataset", {"dataset_id": "d2"}), dart)
    with pytest.raises(ActionFailure, match='^copy_to_s3: SQL error: syntax error at or near "UNLOAD"$'):
        _run(
            _on_postgres(
                pg_url,
                "copy_to_s3",
                {"source_sql_statement": "SELECT 1", "destination_s3_path": f"s3://{bucket}/out/x_"},
            ),
            dart,
        )
