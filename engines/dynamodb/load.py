"""load_dataset: the range's files streamed row by row (the shared dataset layer), each row an item
(engines.dynamodb.attributes) written by parallel BatchWriteItem calls (engines.dynamodb.writer).

Capacity: on a provisioned table, ``initial_write_capacity_units`` is set before the first write and the table
is put back after the last one, also when the load fails, to ``final_write_capacity_units`` or else to what it
was (kept in a tag on the table, so the re-run of a killed load still restores it); writes are paced to
``write_capacity_utilization_percent`` of the capacity in force. An on-demand table has no capacity to set.

Exactly once in effect: an item is the row's whole content under its key, and a put replaces the item of that
key, so a re-run (after a failure, a kill, a lost check-in) writes the same items again and leaves the same
table. There is no transaction across batches: a load that fails midway leaves the items written so far, which
its re-run overwrites. Every load type writes this way (RELOAD_LAST reads only the range's last file); items
whose keys are not in the files are never deleted, as with the original's Hive load into DynamoDB."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engines.data.datasets import Dataset
from engines.data.readers import read_rows
from engines.dynamodb.attributes import ItemBuilder
from engines.dynamodb.table import Capacity, Table, key_types_of
from engines.dynamodb.writer import WRITERS, BatchWriter, Pacer, WriteStats

log = logging.getLogger("dart.engine.dynamodb")
DEFAULT_UTILIZATION = 0.5


@dataclass(frozen=True)
class CapacityPlan:
    provisioned: bool
    before: int | None  # the write capacity the load found
    during: int | None
    after: int | None  # what the load leaves (None: unchanged)
    promised: int | None  # the tagged capacity to restore, when the load changed it (or a killed one did)
    new_promise: bool = False  # the tag is this load's to write


def plan_capacity(table: Table, description: dict[str, Any], args: dict[str, Any], has_files: bool
                  ) -> CapacityPlan:
    capacity: Capacity = table.capacity(description)
    initial = args.get("initial_write_capacity_units")
    final = args.get("final_write_capacity_units")
    if not capacity.provisioned:
        if initial or final:
            log.info("table %s is on-demand: the write capacity args do not apply", table.name)
        return CapacityPlan(False, None, None, None, None)
    promised = table.restore_tag(description["TableArn"])  # a killed load's promise
    during, new_promise = capacity.write, False
    if initial and initial != capacity.write and has_files:
        during = initial
        if promised is None:
            promised, new_promise = capacity.write, True
    return CapacityPlan(True, capacity.write, during, final or promised, promised, new_promise)


class Loader:
    """One load of ``files`` into the table named ``table_name``."""

    def __init__(self, dynamodb: Any, s3: Any, table_name: str, dataset: Dataset, args: dict[str, Any],
                 progress: Callable[[int, int], None] | None = None, writers: int = WRITERS) -> None:
        self.dynamodb, self.s3, self.dataset, self.args = dynamodb, s3, dataset, args
        self.table = Table(dynamodb, table_name)
        self.progress = progress or (lambda done, total: None)
        self.writers = writers
        self.utilization = float(args.get("write_capacity_utilization_percent") or DEFAULT_UTILIZATION)

    def run(self, files: Sequence[tuple[str, int]]) -> dict[str, Any]:
        files = list(files)[-1:] if self.dataset.load_type == "RELOAD_LAST" else list(files)
        description = self.table.require()
        if description["TableStatus"] != "ACTIVE":  # just created, or still updating: writes need it ACTIVE
            self.table.wait(lambda t: t is not None and t["TableStatus"] == "ACTIVE", "ACTIVE")
            description = self.table.require()
        builder = ItemBuilder(self.dataset.load_columns, key_types_of(description))
        plan = plan_capacity(self.table, description, self.args, bool(files))
        arn = description["TableArn"]
        if plan.new_promise:
            self.table.tag_restore(arn, plan.promised)  # before the raise: a kill after it still restores
        rate = plan.during * self.utilization if plan.provisioned and plan.during else None
        pacer = Pacer(rate)
        failed = False
        try:
            if plan.during is not None and plan.during != plan.before:
                self.table.set_write_capacity(plan.during)
            rows, stats = self._write(builder, files, pacer)
        except BaseException:
            failed = True
            raise
        finally:
            self._restore(plan, arn, failed)
        log.info("wrote %d item(s) from %d row(s) of %d file(s) into %s (%d item(s) retried, %.1f s paced)",
                 stats.items, rows, len(files), self.table.name, stats.retried_items, pacer.waited)
        return {
            "table": self.table.name, "files": len(files), "rows": rows, "items_written": stats.items,
            "retried_items": stats.retried_items, "throttled_batches": stats.throttled_batches,
            "write_capacity": ({"before": plan.before, "during": plan.during,
                                "after": plan.after or plan.during} if plan.provisioned else None),
            "write_rate_limit": rate, "paced_seconds": round(pacer.waited, 3),
        }

    def _write(self, builder: ItemBuilder, files: list[tuple[str, int]], pacer: Pacer
               ) -> tuple[int, WriteStats]:
        rows = 0
        writer = BatchWriter(self.dynamodb, self.table.name, pacer, self.writers)
        try:
            build, put = builder.build, writer.put
            for done, (path, _) in enumerate(files, start=1):
                for number, values in read_rows(self.dataset, self.s3, path):
                    put(*build(values, number, path))
                    rows += 1
                self.progress(done, len(files))
            return rows, writer.close()
        except BaseException:
            writer.abort()
            raise

    def _restore(self, plan: CapacityPlan, arn: str, failed: bool) -> None:
        if not plan.provisioned or plan.after is None:
            return
        try:
            self.table.set_write_capacity(plan.after)
            if plan.promised is not None:
                self.table.tag_restore(arn, None)
        except Exception:
            if not failed:
                raise
            log.exception("restoring the write capacity of %s failed too", self.table.name)
