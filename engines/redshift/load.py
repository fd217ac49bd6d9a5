"""A Redshift load, exactly once: the files' manifests (and a JSON dataset's JSONPaths) written under the
datastore's s3_artifacts_path, then in one transaction: COPY into the target (INSERT), into the emptied target
(RELOAD_*: readers see the old rows until commit) or into a stage merged round by round (MERGE), and the
action and its files recorded in dart_tracking. A failed COPY names its row from stl_load_errors."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from engines.data import s3 as s3_hook
from engines.data.datasets import Dataset, RowError
from engines.data.loads import LoadOptions, LoadResult, files_to_load
from engines.postgresql.hook import quote
from engines.redshift import sql
from engines.redshift.sql import TRACKING_SCHEMA, Authorization

log = logging.getLogger("dart.engine.redshift")
STAGE = "_dart_stage"


def ensure_tracking(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        for statement in sql.TRACKING_DDL:
            conn.execute(statement)


def upload_manifests(
    s3: Any,
    artifacts: str | None,
    action_id: str,
    dataset: Dataset,
    rounds: Sequence[Sequence[tuple[str, int]]],
) -> tuple[list[str], str | None]:
    """Each round's manifest, and the JSONPaths of a JSON dataset, at the original's paths; returns their S3
    paths."""
    if not artifacts:
        raise ValueError(
            "the datastore has no s3_artifacts_path for the load's manifests (set dart's S3 root)"
        )
    base = artifacts.rstrip("/")
    paths = []
    for number, files in enumerate(rounds, start=1):
        path = f"{base}/load-manifests/load-manifest-for-action-{action_id}-part-{number}.json"
        _put(s3, path, sql.manifest(files))
        paths.append(path)
    json_paths = None
    if dataset.row_format == "JSON" and dataset.file_format != "PARQUET":
        json_paths = f"{base}/json-manifests/json-manifest-for-action-{action_id}.json"
        _put(s3, json_paths, sql.jsonpaths(dataset))
    return paths, json_paths


def _put(s3: Any, path: str, body: str) -> None:
    with s3_hook.MultipartWriter(s3, path) as writer:
        writer.write(body.encode())


def load_error(conn: psycopg.Connection[Any], dataset: Dataset, table: str) -> str:
    """The newest stl_load_errors row of the dataset's files as a one-line cause (read on a second connection:
    the failed COPY aborted the load's transaction)."""
    found = conn.execute(sql.LOAD_ERROR_SQL, [dataset.location + "/%"]).fetchone()
    if found is None:
        return f"COPY into {table} failed and stl_load_errors has no row for {dataset.location}/"
    filename, line, column_name, raw, reason = found
    column = next((c for c in dataset.columns if c.name == column_name), None)
    return str(RowError(int(line), str(filename), f'{reason} (value "{raw}")', column))


class Loader:
    """One load on ``conn`` (not in autocommit); ``errors`` opens a second connection for stl_load_errors."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        s3: Any,
        action_id: str,
        artifacts: str | None,
        dataset: Dataset,
        options: LoadOptions,
        args: dict[str, Any],
        auth: Authorization,
        errors: Callable[[], psycopg.Connection[Any]],
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.conn, self.s3, self.action_id, self.artifacts = conn, s3, action_id, artifacts
        self.dataset, self.options, self.args, self.auth, self.errors = dataset, options, args, auth, errors
        self.progress = progress or (lambda done, total: None)
        self.table = options.table or dataset.table_name
        self.target = f"{quote(options.schema)}.{quote(self.table)}"
        self.result = LoadResult(f"{options.schema}.{self.table}")

    def rounds(self, files: Sequence[tuple[str, int]]) -> list[list[tuple[str, int]]]:
        """One COPY per round: batch_size files (MERGE without batch_merge_sort_keys: one file, so a later
        file wins, as the original), else all."""
        load_type = self.dataset.load_type
        size = self.options.batch_size
        if load_type == "MERGE" and not self.dataset.batch_merge_sort_keys:
            size = 1
        size = size or max(1, len(files))
        return [list(files[i : i + size]) for i in range(0, len(files), size)]

    def run(self, files: Sequence[tuple[str, int]]) -> LoadResult:
        load_type = self.dataset.load_type
        files = files_to_load(self.dataset, files)
        create = sql.create_table_sql(self.target, self.dataset, self.args)  # refuses what COPY cannot load
        rounds = self.rounds(files)
        manifests, json_paths = upload_manifests(
            self.s3, self.artifacts, self.action_id, self.dataset, rounds
        )
        ensure_tracking(self.conn)
        with self.conn.transaction(), self.conn.cursor() as cur:
            # One load at a time on the cluster: a re-run of this action waits for the first, and two loads
            # never abort each other under Redshift's serializable isolation.
            cur.execute(f"LOCK {TRACKING_SCHEMA}.loads")
            done = cur.execute(
                f"SELECT files, rows FROM {TRACKING_SCHEMA}.loads WHERE action_id = %s", [self.action_id]
            ).fetchone()
            if done is not None:
                self.result.files, self.result.rows, self.result.already_loaded = done[0], done[1], True
                return self.result
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(self.options.schema)}")
            cur.execute(create)
            into = self.target
            if load_type == "MERGE":
                cur.execute(f"CREATE TEMP TABLE {STAGE} (LIKE {self.target})")
                into = STAGE
            elif load_type != "INSERT":
                cur.execute(f"DELETE FROM {self.target}")  # not TRUNCATE, which would commit
            for batch, manifest_path in zip(rounds, manifests):
                self._copy(cur, into, manifest_path, json_paths)
                if load_type == "MERGE":
                    for statement in sql.merge_sql(self.target, STAGE, self.dataset):
                        cur.execute(statement)
                cur.executemany(
                    f"INSERT INTO {TRACKING_SCHEMA}.loaded_files (action_id, s3_path, subscription_id, "
                    "target) VALUES (%s, %s, %s, %s)",
                    [
                        (self.action_id, path, self.options.subscription_id, self.result.target)
                        for path, _ in batch
                    ],
                )
                self.result.files += len(batch)
                self.progress(self.result.files, len(files))
            cur.execute(
                f"INSERT INTO {TRACKING_SCHEMA}.loads (action_id, target, load_type, files, rows, "
                "skipped_rows) VALUES (%s, %s, %s, %s, %s, %s)",
                [
                    self.action_id,
                    self.result.target,
                    load_type,
                    self.result.files,
                    self.result.rows,
                    len(self.result.errors),
                ],
            )
        return self.result

    def _copy(self, cur: psycopg.Cursor[Any], into: str, manifest_path: str, json_paths: str | None) -> None:
        statement = sql.copy_sql(
            into,
            self.dataset,
            manifest_path,
            self.auth,
            self.options.max_errors,
            self.options.truncate_columns,
            json_paths,
        )
        try:
            cur.execute(statement)
        except psycopg.Error as exc:
            if "stl_load_errors" not in str(exc):
                raise
            with self.errors() as other:
                raise ValueError(load_error(other, self.dataset, self.result.target)) from exc
        self.result.rows += int(cur.execute("SELECT pg_last_copy_count()").fetchone()[0])  # type: ignore[index]
        skipped = cur.execute(
            "SELECT count(*) FROM stl_load_errors WHERE query = pg_last_copy_id()"
        ).fetchone()
        for _ in range(int(skipped[0]) if skipped else 0):
            self.result.errors.append(f"a row of {manifest_path} skipped (MAXERROR; see stl_load_errors)")
