"""``dart projections rebuild`` and ``dart projections status``."""

from __future__ import annotations

import sys

import sqlalchemy as sa
from tqdm import tqdm

from events.checkpoints import all_checkpoints
from projections.catalog import by_name
from projections.rebuild import rebuild
from services.runtime.composition import build
from services.runtime.settings import Settings


def rebuild_command(settings: Settings, names: list[str]) -> int:
    container = build(settings)
    store = container.store
    chosen = by_name(names or None)
    total_events, total_seconds = 0, 0.0
    for projection in chosen:
        types = projection.handled_types(store.registry.names())
        with tqdm(total=store.count(types), desc=projection.name, unit="ev", unit_scale=True,
                  file=sys.stderr, leave=True) as bar:
            result = rebuild(store, projection, progress=bar.update)
        total_events += result.events
        total_seconds += result.seconds
        rows = ", ".join(f"{t}: {n} rows" for t, n in result.rows.items())
        rate = result.events / result.seconds if result.seconds else 0
        print(f"{projection.name}: {result.events} events in {result.seconds:.2f}s ({rate:,.0f} events/s); {rows}")
    rate = total_events / total_seconds if total_seconds else 0
    print(f"rebuilt {len(chosen)} projection(s): {total_events} events in {total_seconds:.2f}s ({rate:,.0f} events/s)")
    return 0


def status_command(settings: Settings) -> int:
    container = build(settings)
    store = container.store
    head = store.head_position()
    with store.engine.connect() as conn:
        checkpoints = all_checkpoints(conn)
        print(f"head position: {head}")
        print(f"{'projection':<34} {'mode':<7} {'position':>10} {'lag':>8}  rows")
        for projection in container.projections:
            position = head if projection.mode == "inline" else checkpoints.get(projection.name, 0)
            rows = sum(
                int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() or 0)
                for t in projection.tables.values()
            )
            print(f"{projection.name:<34} {projection.mode:<7} {position:>10} {head - position:>8}  {rows}")
    return 0
