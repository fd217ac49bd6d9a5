"""The run metrics of ``/metrics`` (issue 15), all read from the store at each scrape, so every gunicorn worker
answers the same numbers and none is summed across workers: runs by workflow and outcome and the three
histograms (the ``stats.runs`` projection, projections/run_stats.py), events appended by type (the
``stats.event_type_counts`` projection), consumer and relay lag (their checkpoints against the head), and the
datastores' slots in use (the action read model). docs/operations.md says what each one means."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import sqlalchemy as sa
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from events.checkpoints import all_checkpoints
from events.store import EventStore
from projections.base import Projection
from projections.reads import TABLES
from projections.run_stats import read_histograms, read_outcomes
from projections.stats import EventTypeCounts
from services.domain.slots import BUSY

RELAY_CHECKPOINT = "relay"  # services/delivery/relay.py's checkpoint (a sibling room: named, not imported)
HISTOGRAM_NAMES = {
    "action_duration": ("dart_action_duration_seconds",
                        "Actions' running time (checked out to ended), by engine and action type."),
    "action_queue_wait": ("dart_action_queue_wait_seconds",
                          "Time actions waited from QUEUED to RUNNING (slot, launch, engine start)."),
    "trigger_to_first_action": ("dart_trigger_to_first_action_seconds",
                                "Time from a run's start by its trigger to its first action running."),
}
DESCRIBED = (
    ("dart_workflow_runs", "counter", "Workflow runs by workflow and outcome (started, completed, failed, cancelled)."),
    ("dart_events_appended", "counter", "Events appended to the log, by type (rate() is appends per second)."),
    ("dart_consumer_lag_events", "gauge", "Events a consumer has yet to read (the head minus its checkpoint)."),
    ("dart_consumer_lag_seconds", "gauge", "Age of the oldest event a consumer has yet to read (0: caught up)."),
    ("dart_relay_lag_events", "gauge", "Events the relay has yet to publish to the broker."),
    ("dart_relay_lag_seconds", "gauge", "Age of the oldest event the relay has yet to publish (0: caught up)."),
    ("dart_datastore_slots_in_use", "gauge", "A datastore's slots held by PENDING, RUNNING or FINISHING actions."),
    ("dart_datastore_slots", "gauge", "A datastore's slots (its concurrency), for the datastores in use."),
)


class RunCollector(Collector):
    def __init__(self, store: EventStore, projections: Iterable[Projection]) -> None:
        self.store = store
        self.projection_names = {p.name for p in projections if p.mode == "async"}

    def describe(self) -> Iterator[Metric]:
        # Given, so registering this collector does not query the store.
        for name, kind, text in DESCRIBED:
            yield (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(name, text)
        for name, text in HISTOGRAM_NAMES.values():
            yield HistogramMetricFamily(name, text)

    def collect(self) -> Iterator[Metric]:
        with self.store.engine.connect() as conn:
            yield from self._runs(conn)
            yield from self._appended(conn)
            yield from self._slots(conn)
            checkpoints = all_checkpoints(conn)
        yield from self._lags(checkpoints)

    def _runs(self, conn: sa.Connection) -> Iterator[Metric]:
        outcomes = read_outcomes(conn)
        names = _workflow_names(conn, {w for w, _, _ in outcomes})
        runs = CounterMetricFamily("dart_workflow_runs", DESCRIBED[0][2], labels=["workflow_id", "workflow", "outcome"])
        for workflow_id, outcome, count in outcomes:
            runs.add_metric([workflow_id, names.get(workflow_id, ""), outcome], count)
        yield runs
        families = {metric: HistogramMetricFamily(name, text, labels=_histogram_labels(metric))
                    for metric, (name, text) in HISTOGRAM_NAMES.items()}
        series = read_histograms(conn)
        names.update(_workflow_names(conn, {labels.get("workflow_id", "") for m, labels, *_ in series
                                            if m == "trigger_to_first_action"} - set(names)))
        for metric, labels, bounds, cumulative, total, _count in series:
            family = families.get(metric)
            if family is None:
                continue
            buckets = [(_bound(b), float(n)) for b, n in zip([*bounds, float("inf")], cumulative, strict=True)]
            if metric == "trigger_to_first_action":
                values = [labels.get("workflow_id", ""), names.get(labels.get("workflow_id", ""), "")]
            else:
                values = [labels.get("engine", ""), labels.get("action_type", "")]
            family.add_metric(values, buckets, total)
        yield from families.values()

    def _appended(self, conn: sa.Connection) -> Iterator[Metric]:
        table = EventTypeCounts().tables["stats_event_type_counts"]
        family = CounterMetricFamily("dart_events_appended", DESCRIBED[1][2], labels=["type"])
        for row in conn.execute(sa.select(table.c.type, table.c["count"]).order_by(table.c.type)).mappings():
            family.add_metric([row["type"]], int(row["count"]))
        yield family

    def _slots(self, conn: sa.Connection) -> Iterator[Metric]:
        actions, datastores = TABLES["action"], TABLES["datastore"]
        counted = conn.execute(sa.select(actions.c.datastore_id, sa.func.count().label("n"))
                               .where(actions.c.state.in_(BUSY), actions.c.datastore_id.is_not(None))
                               .group_by(actions.c.datastore_id)).mappings()
        busy = {str(r["datastore_id"]): int(r["n"]) for r in counted}
        rows = conn.execute(sa.select(datastores.c.id, datastores.c.name, datastores.c.data)
                            .where(datastores.c.id.in_(list(busy)))).all() if busy else []
        used = GaugeMetricFamily("dart_datastore_slots_in_use", DESCRIBED[6][2], labels=["datastore_id", "datastore"])
        size = GaugeMetricFamily("dart_datastore_slots", DESCRIBED[7][2], labels=["datastore_id", "datastore"])
        for row in rows:
            used.add_metric([row.id, row.name or ""], int(busy[row.id]))
            size.add_metric([row.id, row.name or ""], int((row.data or {}).get("concurrency") or 1))
        yield used
        yield size

    def _lags(self, checkpoints: dict[str, int]) -> Iterator[Metric]:
        head = self.store.head_position()
        now = datetime.now(UTC)
        events = GaugeMetricFamily("dart_consumer_lag_events", DESCRIBED[2][2], labels=["consumer"])
        seconds = GaugeMetricFamily("dart_consumer_lag_seconds", DESCRIBED[3][2], labels=["consumer"])
        relay_events = GaugeMetricFamily("dart_relay_lag_events", DESCRIBED[4][2])
        relay_seconds = GaugeMetricFamily("dart_relay_lag_seconds", DESCRIBED[5][2])
        for name, position in sorted(checkpoints.items()):
            if name in self.projection_names:
                continue  # dart_projection_lag_events says these
            behind = max(head - position, 0)
            age = self._age_after(position, now) if behind else 0.0
            if name == RELAY_CHECKPOINT:
                relay_events.add_metric([], behind)
                relay_seconds.add_metric([], age)
            else:
                events.add_metric([name], behind)
                seconds.add_metric([name], age)
        yield from (events, seconds, relay_events, relay_seconds)

    def _age_after(self, position: int, now: datetime) -> float:
        """Seconds since the first event after ``position`` was appended."""
        found = self.store.read_all(position, 1)
        return max((now - found[0].recorded_at).total_seconds(), 0.0) if found else 0.0


def _histogram_labels(metric: str) -> list[str]:
    return ["workflow_id", "workflow"] if metric == "trigger_to_first_action" else ["engine", "action_type"]


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(float(value))


def _workflow_names(conn: sa.Connection, ids: set[str]) -> dict[str, str]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    table = TABLES["workflow"]
    return {r.id: r.name or "" for r in conn.execute(sa.select(table.c.id, table.c.name).where(table.c.id.in_(ids)))}
