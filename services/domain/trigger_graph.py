"""Trigger loops (issue 11): a trigger starts workflows, a workflow's completion fires the workflow_completion
triggers watching it, and a trigger's fire is an input of the super triggers naming it. A trigger whose
change would close a loop through itself is refused, naming the loop, unless some trigger on that loop
allows loops with a minimum interval between its fires (``args.allow_cycle_min_interval_seconds``): every
turn of the loop passes through that trigger, so the loop runs at most once per interval.

As a second line of defence (loops closed by two racing changes, or recorded before this rule), a fire
caused by a chain of more than ``MAX_FIRE_DEPTH`` fires is skipped (services/commands/triggers.py)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ALLOW_CYCLE = "allow_cycle_min_interval_seconds"
MAX_FIRE_DEPTH = 32  # fires caused by fires; a trigger that allows loops starts a new chain (its interval guards it)
LOOPING_TYPES = ("workflow_completion", "super")  # the only triggers something else fires

Node = tuple[str, str]  # ("trigger", id) or ("workflow", id)


@dataclass(frozen=True)
class TriggerLinks:
    """What of a trigger makes the graph: the workflows it starts, what fires it, whether it allows loops."""

    id: str
    type_name: str
    workflow_ids: tuple[str, ...] = ()
    completed_workflow_id: str | None = None  # workflow_completion
    completed_trigger_ids: tuple[str, ...] = ()  # super
    allows_cycle: bool = False


def links(trigger_id: str, data: Mapping[str, Any]) -> TriggerLinks:
    args = data.get("args") or {}
    return TriggerLinks(
        trigger_id, str(data.get("trigger_type_name")), tuple(str(w) for w in data.get("workflow_ids") or ()),
        args.get("completed_workflow_id") if data.get("trigger_type_name") == "workflow_completion" else None,
        tuple(str(t) for t in args.get("completed_trigger_ids") or ()) if data.get("trigger_type_name") == "super"
        else (),
        min_interval(data) is not None)


def min_interval(data: Mapping[str, Any]) -> float | None:
    """The trigger's minimum interval between fires, when it allows loops."""
    value = (data.get("args") or {}).get(ALLOW_CYCLE)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def find_loop(triggers: Iterable[TriggerLinks], start: str) -> list[Node] | None:
    """The shortest loop from trigger ``start`` back to itself that passes through no trigger allowing loops
    (``start`` excepted: the caller asks only when it does not allow them), or None."""
    by_id = {t.id: t for t in triggers}
    watching: dict[str, list[str]] = {}  # workflow -> workflow_completion triggers on it
    supers: dict[str, list[str]] = {}  # trigger -> super triggers having it as input
    for t in by_id.values():
        if t.allows_cycle and t.id != start:
            continue  # a loop through it is allowed: leave it out of the search
        if t.completed_workflow_id is not None:
            watching.setdefault(t.completed_workflow_id, []).append(t.id)
        for source in t.completed_trigger_ids:
            supers.setdefault(source, []).append(t.id)

    def successors(node: Node) -> list[Node]:
        kind, ident = node
        if kind == "workflow":
            return [("trigger", t) for t in watching.get(ident, [])]
        found = by_id.get(ident)
        started = [("workflow", w) for w in found.workflow_ids] if found is not None else []
        return [*started, *(("trigger", s) for s in supers.get(ident, []))]

    origin: Node = ("trigger", start)
    parents: dict[Node, Node] = {}
    queue = deque([origin])
    while queue:
        node = queue.popleft()
        for following in successors(node):
            if following == origin:
                path = [origin]
                step = node
                while step != origin:
                    path.append(step)
                    step = parents[step]
                return [origin, *reversed(path[1:]), origin]
            if following not in parents:
                parents[following] = node
                queue.append(following)
    return None


def describe(loop: list[Node]) -> str:
    """``trigger T1 -> workflow W1 -> trigger T2 -> trigger T1``."""
    return " -> ".join(f"{kind} {ident}" for kind, ident in loop)


def loop_refusal(others: Iterable[TriggerLinks], changed: TriggerLinks) -> str | None:
    """Why ``changed`` (a trigger as it would be saved) may not be saved among ``others`` (every other
    trigger that something fires), or None."""
    if changed.allows_cycle or changed.type_name not in LOOPING_TYPES:
        return None  # allowed, or nothing fires it: no loop can pass through it
    loop = find_loop([*(t for t in others if t.id != changed.id), changed], changed.id)
    if loop is None:
        return None
    return (f"args: {describe(loop)} is a loop; a trigger on it may allow it with "
            f"args.{ALLOW_CYCLE} (the minimum number of seconds between its fires)")


def chain_depth(parent_depth: int | None, allows_cycle: bool) -> int:
    """The depth of a fire: one more than the fire that caused it (0 for a fire nothing fired, and for a
    trigger that allows loops, which its interval guards instead)."""
    if parent_depth is None or allows_cycle:
        return 0
    return parent_depth + 1


def too_deep(depth: int) -> str | None:
    if depth > MAX_FIRE_DEPTH:
        return (f"fire chain too deep: this fire was caused by a chain of {depth} trigger fires (at most "
                f"{MAX_FIRE_DEPTH}); a trigger loop? (see args.{ALLOW_CYCLE})")
    return None
