"""Helpers for the projection tests: random entity traffic, snapshots of read-model tables, and an independent
fold of the log to compare the read models with.

A plain module (no fixtures): the stores come from conftest's ``projected_store`` (or
``tests.support.world.open_projected_store`` for a second store on the same database).
"""

from __future__ import annotations

import random
import string
import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from events.checkpoints import read_checkpoint
from events.store import EventStore
from events.streams import CATEGORIES, CATEGORY_MODULES
from events.streams.entity import EntityCreated, EntityDeleted, EntityUpdated
from events.types import ExpectedVersion, NewEvent, RawEvent, StreamAppend
from projections.catalog import all_projections
from projections.entities import PROMOTED, EntityProjection
from projections.stats import EventTypeCounts

ENTITY_TABLES = tuple(f"rm_{c}" for c in CATEGORIES)
STATS_TABLE = "stats_event_type_counts"
STATS_NAME = EventTypeCounts.name

# Type names per category and lifecycle step, e.g. TYPES["workflow"]["created"] == "WorkflowCreated".
_STEPS = {"created": EntityCreated, "updated": EntityUpdated, "deleted": EntityDeleted}
TYPES: dict[str, dict[str, str]] = {
    module.CATEGORY: {
        step: next(cls.type_name for cls in module.EVENTS if issubclass(cls, base))
        for step, base in _STEPS.items()
    }
    for module in CATEGORY_MODULES
}
STEP_OF_TYPE = {name: step for steps in TYPES.values() for step, name in steps.items()}


# -------------------------------------------------------------------------------------- random payloads
def random_id(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_uppercase + string.digits, k=10))


def _scalar(rng: random.Random) -> Any:
    kind = rng.randrange(7)
    if kind == 0:
        return rng.randint(-(10**12), 10**12)
    if kind == 1:
        return round(rng.uniform(-1e6, 1e6), rng.randrange(0, 7))
    if kind == 2:
        return rng.random() < 0.5
    if kind == 3:
        return None
    if kind == 4:
        return "".join(rng.choices("abcdé漢 _-\"'\\/\n", k=rng.randrange(0, 12)))
    return "".join(rng.choices(string.ascii_letters, k=rng.randrange(1, 20)))


def random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 3 and roll < 0.2:
        return {f"k{rng.randrange(6)}": random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))}
    if depth < 3 and roll < 0.35:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return _scalar(rng)


def random_data(rng: random.Random, full: bool) -> dict[str, Any]:
    """Entity data (``full``) or a change set: nested dicts and lists, usually a name and a state."""
    data: dict[str, Any] = {}
    if full or rng.random() < 0.4:
        data["name"] = "n_" + "".join(rng.choices(string.ascii_lowercase + "_", k=rng.randrange(1, 30)))
    if full or rng.random() < 0.4:
        data["state"] = rng.choice(["ACTIVE", "INACTIVE", "QUEUED", "RUNNING", "FAILED", "COMPLETED"])
    if rng.random() < 0.05:  # not a string: the state/name columns must then be NULL
        data[rng.choice(["name", "state"])] = rng.choice([7, None, ["x"], {"a": 1}])
    for _ in range(rng.randrange(0 if not full else 1, 5)):
        key = rng.choice(["args", "tags", "engine_name", "on_failure", "nested", "n", "x", "y"])
        data[key] = random_value(rng)
    return data


# -------------------------------------------------------------------------------------- random traffic
class Traffic:
    """Random Created/Updated/Deleted events over entities of every category, appended through a store.

    Each instance owns its entity ids (so concurrent instances never conflict) and tracks which ids are
    alive so most updates and deletes hit live entities, while a few hit deleted or unknown ones and a few
    deleted entities are created again.
    """

    def __init__(self, store: EventStore, seed: int, categories: Iterable[str] = CATEGORIES) -> None:
        self.store = store
        self.rng = random.Random(seed)
        self.categories = list(categories)
        self.alive: dict[str, list[str]] = {c: [] for c in self.categories}
        self.dead: dict[str, list[str]] = {c: [] for c in self.categories}
        self.appended = 0

    def _events_for(self, category: str) -> tuple[str, list[NewEvent]]:
        rng = self.rng
        types = TYPES[category]
        roll = rng.random()
        alive, dead = self.alive[category], self.dead[category]
        if not alive or roll < 0.25:
            if dead and rng.random() < 0.1:
                entity = dead.pop(rng.randrange(len(dead)))  # created again after its deletion
            else:
                entity = random_id(rng)
            alive.append(entity)
            events = [RawEvent(types["created"], {"data": random_data(rng, True)})]
            # Sometimes a whole life in one append: created, changed, maybe deleted.
            for _ in range(rng.choice([0, 0, 0, 1, 2])):
                events.append(RawEvent(types["updated"], {"changes": random_data(rng, False)}))
            if rng.random() < 0.05:
                events.append(RawEvent(types["deleted"], {}))
                alive.remove(entity)
                dead.append(entity)
        elif roll < 0.85:
            pool = dead if dead and rng.random() < 0.03 else alive  # an update of a deleted entity: no row
            entity = rng.choice(pool)
            events = [
                RawEvent(types["updated"], {"changes": random_data(rng, False)})
                for _ in range(rng.choice([1, 1, 2]))
            ]
        else:
            entity = alive.pop(rng.randrange(len(alive)))
            dead.append(entity)
            events = [RawEvent(types["deleted"], {})]
        return f"{category}-{entity}", [NewEvent(e) for e in events]

    def step(self) -> int:
        """One append of one to three streams (of random categories); returns how many events it held."""
        parts: dict[str, list[NewEvent]] = {}
        for category in self.rng.sample(self.categories, self.rng.choice([1, 1, 1, 2, 3])):
            stream, events = self._events_for(category)  # distinct categories: distinct streams
            parts[stream] = events
        self.store.append(*(StreamAppend(s, ExpectedVersion.ANY, evs) for s, evs in parts.items()))
        n = sum(len(evs) for evs in parts.values())
        self.appended += n
        return n

    def run(self, at_least: int) -> int:
        while self.appended < at_least:
            self.step()
        return self.appended


class Writer(threading.Thread):
    """Appends random traffic until stopped; keeps any exception instead of dying silently."""

    def __init__(self, store: EventStore, seed: int, pace: float = 0.0) -> None:
        super().__init__(daemon=True, name=f"writer-{seed}")
        self.traffic = Traffic(store, seed)
        self.pace = pace  # a pause between appends: SQLite's lock is not fair, busy writers starve others
        self.stop_event = threading.Event()
        self.errors: list[BaseException] = []
        self.appends = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.traffic.step()
                self.appends += 1
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(exc)
            if self.pace:
                self.stop_event.wait(self.pace)

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        self.join(timeout)
        assert not self.is_alive(), f"{self.name} did not stop"


# ------------------------------------------------------------------------------------------- snapshots
def _table(name: str) -> sa.Table:
    for projection in all_projections():
        if name in projection.tables:
            return projection.tables[name]
    raise KeyError(name)


def table_rows(store: EventStore, name: str) -> dict[Any, dict[str, Any]]:
    """Every row of a read-model table, by primary key, decoded (JSON parsed, timestamps aware UTC)."""
    table = _table(name)
    key = table.primary_key.columns.values()[0].name
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(table)).mappings().all()
        conn.rollback()
    return {r[key]: dict(r) for r in rows}


def snapshot(store: EventStore, names: Iterable[str] = ENTITY_TABLES) -> dict[str, dict[Any, dict[str, Any]]]:
    return {name: table_rows(store, name) for name in names}


def checkpoint(store: EventStore, name: str = STATS_NAME) -> int:
    with store.engine.connect() as conn:
        position = read_checkpoint(conn, name)
        conn.rollback()
    return position


def true_type_counts(store: EventStore) -> dict[str, int]:
    return dict(Counter(e.type for e in store.iter_all()))


def stats_counts(store: EventStore) -> dict[str, int]:
    return {t: int(r["count"]) for t, r in table_rows(store, STATS_TABLE).items()}


# ----------------------------------------------------------------------------------- independent oracle
def oracle_entity_rows(store: EventStore) -> dict[str, dict[str, dict[str, Any]]]:
    """The entity read models computed here from ``store.read_all``, without the projection code.

    Created sets the data (and the creation time, unless the entity is live), Updated merges its changes
    into live data only, Deleted drops the entity; version and updated follow every event of a live entity.
    """
    live: dict[str, dict[str, dict[str, Any]]] = {f"rm_{c}": {} for c in CATEGORIES}
    for event in store.iter_all(batch=5000):
        category, entity = event.stream_id.split("-", 1)
        rows = live[f"rm_{category}"]
        step = STEP_OF_TYPE[event.type]
        row = rows.get(entity)
        if step == "created":
            if row is None:
                row = rows[entity] = {"id": entity, "created": event.recorded_at}
            row["data"] = dict(event.data["data"])
        elif step == "updated" and row is not None:
            row["data"] = {**row["data"], **event.data["changes"]}
        elif step == "deleted":
            rows.pop(entity, None)
            row = None
        if row is not None:
            row["version"] = event.stream_version
            row["updated"] = event.recorded_at
    for table, rows in live.items():
        promoted = PROMOTED.get(table.removeprefix("rm_"), ())
        for row in rows.values():
            for column in ("state", "name", *promoted):
                value = row["data"].get(column)
                row[column] = value if isinstance(value, str) else None
    return live


def entity_projections() -> list[EntityProjection]:
    return [p for p in all_projections() if isinstance(p, EntityProjection)]


def assert_same_rows(actual: dict, expected: dict, what: str) -> None:
    """Equal snapshots, with a readable first difference when they are not."""
    for table in sorted(set(actual) | set(expected)):
        a, e = actual.get(table, {}), expected.get(table, {})
        missing, extra = sorted(set(e) - set(a)), sorted(set(a) - set(e))
        assert not missing and not extra, f"{what}: {table}: missing ids {missing[:5]}, extra ids {extra[:5]}"
        for key in sorted(e, key=str):
            assert a[key] == e[key], f"{what}: {table}[{key!r}]:\n actual   {a[key]!r}\n expected {e[key]!r}"

