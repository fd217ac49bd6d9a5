"""The graph walk in memory (projections/graph.py): the definitions the relationships run through (TEMPLATE
actions, workflows, triggers, subscriptions, datasets, events) read once per request, a few bounded queries,
then followed without a round trip per level. A chain of 50 workflows is 99 levels deep: level by level it
took seconds in queries; in memory it takes milliseconds. Datastores, whose clones grow with every run, are
read by id. When a kind holds more than ``CAP`` definitions, ``load`` answers None and the walk goes level by
level in SQL instead."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Protocol

import sqlalchemy as sa

from projections.reads import TABLES

CAP = 20_000
KINDS = ("action", "workflow", "trigger", "subscription", "dataset", "event")


class Found(Protocol):
    def add(self, entity_type: str, entity_id: str, data: dict[str, Any], edge: tuple[str, str, str, str]) -> None: ...


def _args(data: dict[str, Any]) -> dict[str, Any]:
    args = data.get("args")
    return args if isinstance(args, dict) else {}


def _ids(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class DefinitionIndex:
    """Every definition by id, and the reverse references the walk follows."""

    def __init__(self, rows: dict[str, dict[str, dict[str, Any]]]) -> None:
        self.rows = rows
        self.datastores: dict[str, dict[str, Any]] = {}  # read by id as the walk meets them
        self.by: dict[str, defaultdict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for aid, d in rows["action"].items():
            for name, ref in (("action.dataset", _args(d).get("dataset_id")),
                              ("action.subscription", _args(d).get("subscription_id")),
                              ("action.workflow", d.get("workflow_id"))):
                key = _text(ref)
                if key:
                    self.by[name][key].append(aid)
        for sid, d in rows["subscription"].items():
            if _text(d.get("dataset_id")):
                self.by["subscription.dataset"][d["dataset_id"]].append(sid)
        for wid, d in rows["workflow"].items():
            if _text(d.get("datastore_id")):
                self.by["workflow.datastore"][d["datastore_id"]].append(wid)
        for tid, d in rows["trigger"].items():
            args = _args(d)
            for w in dict.fromkeys(_ids(d.get("workflow_ids"))):
                self.by["trigger.workflow_ids"][w].append(tid)
            for t in dict.fromkeys(_ids(args.get("completed_trigger_ids"))):
                self.by["trigger.completed_trigger"][t].append(tid)
            for name, key in (("trigger.completed_workflow", "completed_workflow_id"),
                              ("trigger.event", "event_id"), ("trigger.subscription", "subscription_id")):
                if _text(args.get(key)):
                    self.by[name][args[key]].append(tid)
        self.paths = [(aid, p) for aid, d in rows["action"].items()
                      if (p := _text(_args(d).get("destination_s3_path")))]
        self.locations = [(did, loc) for did, d in rows["dataset"].items() if (loc := _text(d.get("location")))]

    @classmethod
    def load(cls, conn: sa.Connection) -> DefinitionIndex | None:
        rows: dict[str, dict[str, dict[str, Any]]] = {}
        for kind in KINDS:
            t = TABLES[kind]
            query = sa.select(t.c.id, t.c.data)
            if kind == "action":
                query = query.where(t.c.state == "TEMPLATE")
            found = conn.execute(query.order_by(t.c.created, t.c.id).limit(CAP + 1)).all()
            if len(found) > CAP:
                return None
            rows[kind] = {r.id: r.data for r in found}
        return cls(rows)

    def _each(self, kind: str, ids: Iterable[str], found: Found, edge: Any) -> None:
        for entity_id in ids:
            data = self.rows[kind].get(entity_id)
            if data is not None:
                found.add(kind, entity_id, data, edge(entity_id))

    # Each ``from_<type>`` is projections/graph.py's ``_from_<type>``, over the index.
    def from_dataset(self, members: dict[str, dict[str, Any]], found: Found) -> None:
        for did, d in members.items():
            self._each("action", self.by["action.dataset"].get(did, ()), found, lambda a, did=did: ("dataset", did, "action", a))
            loc = _text(d.get("location"))
            if loc:
                self._each("action", [a for a, p in self.paths if p.startswith(loc)], found,
                           lambda a, did=did: ("dataset", did, "action", a))
            self._each("subscription", self.by["subscription.dataset"].get(did, ()), found,
                       lambda s, did=did: ("dataset", did, "subscription", s))

    def from_action(self, members: dict[str, dict[str, Any]], found: Found) -> None:
        for aid, d in members.items():
            if d.get("state") != "TEMPLATE":
                continue
            for kind, ref in (("dataset", _args(d).get("dataset_id")), ("subscription", _args(d).get("subscription_id")),
                              ("workflow", d.get("workflow_id"))):
                key = _text(ref)
                if key:
                    self._each(kind, [key], found, lambda r, kind=kind, aid=aid: (kind, r, "action", aid))
            path = _text(_args(d).get("destination_s3_path"))
            if path:
                self._each("dataset", [i for i, loc in self.locations if path.startswith(loc)], found,
                           lambda r, aid=aid: ("dataset", r, "action", aid))

    def from_workflow(self, members: dict[str, dict[str, Any]], found: Found) -> list[tuple[str, str]]:
        """Adds the workflow's actions and triggers; answers (workflow, datastore) pairs to read by id."""
        stores = []
        for wid, d in members.items():
            actions = sorted(self.by["action.workflow"].get(wid, ()),
                             key=lambda a: _order(self.rows["action"][a].get("order_idx")))
            self._each("action", actions, found, lambda a, wid=wid: ("workflow", wid, "action", a))
            self._each("trigger", self.by["trigger.workflow_ids"].get(wid, ()), found,
                       lambda t, wid=wid: ("trigger", t, "workflow", wid))
            self._each("trigger", self.by["trigger.completed_workflow"].get(wid, ()), found,
                       lambda t, wid=wid: ("workflow", wid, "trigger", t))
            if _text(d.get("datastore_id")):
                stores.append((wid, d["datastore_id"]))
        return stores

    def from_trigger(self, members: dict[str, dict[str, Any]], found: Found) -> None:
        for tid, d in members.items():
            args = _args(d)
            self._each("workflow", _ids(d.get("workflow_ids")), found, lambda w, tid=tid: ("trigger", tid, "workflow", w))
            for kind, key in (("workflow", "completed_workflow_id"), ("subscription", "subscription_id"),
                              ("event", "event_id")):
                if _text(args.get(key)):
                    self._each(kind, [args[key]], found, lambda r, kind=kind, tid=tid: (kind, r, "trigger", tid))
            self._each("trigger", _ids(args.get("completed_trigger_ids")), found,
                       lambda t, tid=tid: ("trigger", t, "trigger", tid))
            self._each("trigger", self.by["trigger.completed_trigger"].get(tid, ()), found,
                       lambda s, tid=tid: ("trigger", tid, "trigger", s))

    def from_subscription(self, members: dict[str, dict[str, Any]], found: Found) -> None:
        for sid, d in members.items():
            if _text(d.get("dataset_id")):
                self._each("dataset", [d["dataset_id"]], found, lambda r, sid=sid: ("dataset", r, "subscription", sid))
            self._each("action", self.by["action.subscription"].get(sid, ()), found,
                       lambda a, sid=sid: ("subscription", sid, "action", a))
            self._each("trigger", self.by["trigger.subscription"].get(sid, ()), found,
                       lambda t, sid=sid: ("subscription", sid, "trigger", t))

    def from_datastore(self, root: str, found: Found) -> None:
        self._each("workflow", self.by["workflow.datastore"].get(root, ()), found,
                   lambda w: ("datastore", root, "workflow", w))

    def from_event(self, members: dict[str, dict[str, Any]], found: Found) -> None:
        for eid in members:
            self._each("trigger", self.by["trigger.event"].get(eid, ()), found,
                       lambda t, eid=eid: ("event", eid, "trigger", t))


def _order(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
