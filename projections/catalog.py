"""Every projection dart has, in one table: the wiring registers the inline ones with the store and runs
the async ones."""

from __future__ import annotations

from events.streams import CATEGORIES
from projections.base import Projection
from projections.elements import ElementProjection
from projections.entities import EntityProjection
from projections.run_stats import RunStats
from projections.stats import EventTypeCounts


def all_projections() -> list[Projection]:
    return [*(EntityProjection(c) for c in CATEGORIES), ElementProjection(), EventTypeCounts(), RunStats()]


def by_name(names: list[str] | None = None) -> list[Projection]:
    every = all_projections()
    if not names:
        return every
    known = {p.name: p for p in every}
    unknown = [n for n in names if n not in known and not any(k.startswith(n + ".") for k in known)]
    if unknown:
        raise KeyError(f"unknown projection(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [p for p in every if p.name in names or any(p.name.startswith(n + ".") for n in names)]
