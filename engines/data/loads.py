"""What every SQL engine's load actions share around its own loader: the load's options from the action's
args, the files of a load_dataset (the range) or of a consume_subscription (its assigned elements, less those
already loaded), the progress and result reports, and copy_to_s3's destination."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from engines.data import s3 as s3_hook
from engines.data.datasets import Dataset

Files = list[tuple[str, int]]  # (s3 path, size) in load order


class Dart(Protocol):
    """The few dart calls a load makes (engines.sdk.DartClient)."""

    def get(self, path: str, params: Any = None) -> Any: ...

    def subscription_elements(self, action_id: str) -> Iterable[dict[str, Any]]: ...

    def report_progress(
        self, action_id: str, progress: float | None = None, extra_data: dict[str, Any] | None = None
    ) -> Any: ...


@dataclass(frozen=True)
class LoadOptions:
    schema: str = "public"
    table: str | None = None  # default: the dataset's table_name
    max_errors: int = 0
    batch_size: int = 0  # MERGE: files per stage round (0: one round)
    truncate_columns: bool = True
    subscription_id: str | None = None


@dataclass
class LoadResult:
    target: str
    files: int = 0
    rows: int = 0
    errors: list[str] = field(default_factory=list)
    already_loaded: bool = False


def load_options(
    args: dict[str, Any], default_schema: str, subscription_id: str | None = None
) -> LoadOptions:
    """The target options of load_dataset and consume_subscription (the redshift engine's names)."""
    return LoadOptions(
        schema=args.get("target_schema_name") or default_schema,
        table=args.get("target_table_name") or None,
        max_errors=int(args.get("max_errors") or 0),
        batch_size=int(args.get("batch_size") or 0),
        truncate_columns=args.get("truncate_columns") is not False,
        subscription_id=subscription_id,
    )


def dataset_files(client: Dart, args: dict[str, Any], s3: Any = None) -> tuple[Dataset, Files]:
    """load_dataset's dataset and the files its range selects, in S3's key order."""
    dataset = Dataset.from_api(client.get(f"/dataset/{args['dataset_id']}"))
    s3 = s3 or s3_hook.client()
    return dataset, list(s3_hook.list_range(s3, s3_hook.resolve_range(dataset.location, args)))


def subscription_files(client: Dart, action_id: str, subscription_id: str) -> tuple[Dataset, Files]:
    """consume_subscription's dataset and every element assigned to the action, by s3_path."""
    subscription = client.get(f"/subscription/{subscription_id}")
    dataset = Dataset.from_api(client.get(f"/dataset/{subscription['data']['dataset_id']}"))
    elements = sorted(
        (e["s3_path"], int(e.get("file_size") or 0)) for e in client.subscription_elements(action_id)
    )
    return dataset, elements


def files_to_load(dataset: Dataset, files: Iterable[tuple[str, int]]) -> Files:
    """The files a load of ``dataset`` reads, after the checks every SQL engine makes of its load type:
    MERGE needs keys; RELOAD_LAST reads only the range's last file (the original's copy.py)."""
    load_type = dataset.load_type
    if load_type == "MERGE" and not dataset.upsert_keys:
        raise ValueError(f"dataset {dataset.name} is MERGE but has neither merge_keys nor primary_keys")
    if load_type not in ("INSERT", "MERGE", "RELOAD_ALL", "RELOAD_LAST"):
        raise ValueError(f"load_type {load_type!r} is not INSERT, MERGE, RELOAD_ALL or RELOAD_LAST")
    files = list(files)
    return files[-1:] if load_type == "RELOAD_LAST" else files


def not_loaded(files: Files, done: set[str]) -> Files:
    """The files no earlier action loaded (an action whose check-in was lost leaves its elements assigned)."""
    return [f for f in files if f[0] not in done]


def progress_reporter(client: Dart, action_id: str) -> Callable[[int, int], None]:
    """Files done of total as the action's progress, up to 0.95 (the commit is the rest)."""

    def progress(done: int, total: int) -> None:
        client.report_progress(action_id, round(0.95 * done / total, 4))

    return progress


def report_load(client: Dart, action_id: str, result: LoadResult) -> None:
    client.report_progress(
        action_id,
        1.0,
        {
            "target": result.target,
            "files": result.files,
            "rows": result.rows,
            "skipped_rows": len(result.errors),
            "errors": result.errors[:20],
        },
    )


def destination(args: dict[str, Any], suffix: str) -> str:
    """copy_to_s3's object: the destination prefix with its tokens, then ``000`` (UNLOAD ... PARALLEL OFF's
    name) and the suffix (``.gz``, ``.parquet``)."""
    return str(s3_hook.tokens(args["destination_s3_path"], s3_hook.token_time())) + "000" + suffix
