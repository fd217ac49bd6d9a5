"""The entity graph the UI draws (reference §3.13, §5.10): from one entity, everything linked to it through the
original's relationships, plus its workflows' latest instances and its datastores' recent one-off actions.

Read from the inline read models: the definitions the relationships run through are read once and followed in
memory (projections/graph_index.py); past its cap, level by level, each level a handful of set-based queries
(one per relationship kind, ids in batches), each with a LIMIT. The walk stops at ``MAX_NODES`` nodes as the
original's recursive query did (``LIMIT 1000``). A datastore's workflows are followed only from the datastore
the walk starts at, as the original's ``dart_depth < 1`` did, so a graph never leaks through a shared datastore
into unrelated workflows (reference §15.4).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from events.store import EventStore
from projections.graph_index import DefinitionIndex
from projections.reads import TABLES
from services.domain.completion import parse_timedelta
from services.domain.errors import NotFound
from services.domain.graph import GRAPH_TYPES
from services.domain.graph import node as node_of

MAX_NODES = 1000
ONE_OFF_ACTIONS = 10  # per datastore, created within ONE_OFF_WINDOW, as the original showed
ONE_OFF_WINDOW = timedelta(days=1)
BATCH = 500  # ids per IN (...) list


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _args(data: dict[str, Any]) -> dict[str, Any]:
    args = data.get("args")
    return args if isinstance(args, dict) else {}


def _ids(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass
class _Walk:
    """The graph so far: nodes in the order found, edges without repeats."""

    nodes: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    data: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    edges: dict[tuple[str, str, str, str], None] = field(default_factory=dict)

    def full(self) -> bool:
        return len(self.nodes) >= MAX_NODES

    def add(self, entity_type: str, entity_id: str, data: dict[str, Any]) -> bool:
        """Add a node; True when it is new (to be expanded)."""
        key = (entity_type, entity_id)
        if key in self.nodes or self.full():
            return False
        self.nodes[key] = node_of(entity_type, entity_id, data)
        self.data[key] = data
        return True

    def edge(self, source_type: str, source_id: str, destination_type: str, destination_id: str) -> None:
        self.edges[(source_type, source_id, destination_type, destination_id)] = None

    def as_dict(self) -> dict[str, Any]:
        edges = [{"source_type": s, "source_id": si, "destination_type": d, "destination_id": di}
                 for s, si, d, di in self.edges if (s, si) in self.nodes and (d, di) in self.nodes]
        return {"nodes": list(self.nodes.values()), "edges": edges}


class GraphReader:
    """``GET /graph/entity_identifiers`` and ``GET /graph/<type>/<id>``, over the inline read models."""

    def __init__(self, store: EventStore, now: Any = None) -> None:
        self.store = store
        self._now = now or (lambda: datetime.now(UTC))

    # ------------------------------------------------------------------------------ identifiers
    def identifiers(self, search: str, limit: int = 20) -> list[dict[str, Any]]:
        """Up to ``limit`` entities whose id or name contains ``search`` (any case): TEMPLATE actions, datasets,
        datastores, events, subscriptions, triggers and workflows."""
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        found: list[dict[str, Any]] = []
        with self.store.engine.connect() as conn:
            for entity_type in GRAPH_TYPES:
                t = TABLES[entity_type]
                query = sa.select(t.c.id, t.c.name).where(
                    sa.or_(t.c.id.ilike(pattern, escape="\\"), t.c.name.ilike(pattern, escape="\\")))
                if entity_type == "action":
                    query = query.where(t.c.state == "TEMPLATE")
                for row in conn.execute(query.order_by(t.c.name, t.c.id).limit(limit - len(found))):
                    found.append({"entity_type": entity_type, "entity_id": row.id, "name": row.name})
                if len(found) >= limit:
                    break
        return found

    # ------------------------------------------------------------------------------------ graph
    def graph(self, entity_type: str, entity_id: str) -> dict[str, Any]:
        """``{nodes, edges}`` of the graph around one entity; NotFound when it does not exist."""
        with self.store.engine.connect() as conn:
            root = self._by_id(conn, entity_type, [entity_id])
            if not root:
                raise NotFound(entity_type, entity_id)
            walk = _Walk()
            walk.add(entity_type, entity_id, root[entity_id])
            frontier: dict[str, dict[str, dict[str, Any]]] = {entity_type: dict(root)}
            root_datastore = entity_id if entity_type == "datastore" else None
            index = DefinitionIndex.load(conn)
            while frontier and not walk.full():
                found = _Found()
                for kind, members in frontier.items():
                    if index is None:
                        getattr(self, f"_from_{kind}")(conn, members, found, root_datastore)
                    else:
                        self._from_index(conn, index, kind, members, found, root_datastore)
                frontier = found.into(walk)
            self._instances(conn, walk)
            self._one_off_actions(conn, walk)
        return walk.as_dict()

    def _from_index(self, conn: sa.Connection, index: DefinitionIndex, kind: str, members: dict[str, dict[str, Any]],
                    found: _Found, root_datastore: str | None) -> None:
        if kind == "workflow":
            pairs = index.from_workflow(members, found)
            wanted = {store for _, store in pairs} - index.datastores.keys()
            index.datastores.update(self._by_id(conn, "datastore", wanted))  # a chain's workflows share theirs
            stores = index.datastores
            for wid, store in pairs:
                if store in stores:
                    found.add("datastore", store, stores[store], ("datastore", store, "workflow", wid))
        elif kind == "datastore":
            if root_datastore in members:
                index.from_datastore(root_datastore, found)
        else:
            getattr(index, f"from_{kind}")(members, found)

    # Each ``_from_<type>`` adds what the original's recursive query related to entities of that type.
    def _from_dataset(self, conn: sa.Connection, members: dict[str, dict[str, Any]], found: _Found,
                      root_datastore: str | None) -> None:
        ids = list(members)
        for aid, data in self._where(conn, "action", _arg("dataset_id").in_(ids), templates=True):
            found.add("action", aid, data, ("dataset", _args(data)["dataset_id"], "action", aid))
        locations = {did: loc for did, d in members.items() if (loc := _text(d.get("location")))}
        if locations:
            path = _arg("destination_s3_path")
            for batch in _batches(list(locations.items())):
                clause = sa.or_(*(path.startswith(loc, autoescape=True) for _, loc in batch))
                for aid, data in self._where(conn, "action", clause, templates=True):
                    target = str(_args(data).get("destination_s3_path"))
                    for did, loc in batch:
                        if target.startswith(loc):
                            found.add("action", aid, data, ("dataset", did, "action", aid))
        sub = TABLES["subscription"]
        for sid, data in self._where(conn, "subscription", sub.c.data["dataset_id"].as_string().in_(ids)):
            found.add("subscription", sid, data, ("dataset", data["dataset_id"], "subscription", sid))

    def _from_action(self, conn: sa.Connection, members: dict[str, dict[str, Any]], found: _Found,
                     root_datastore: str | None) -> None:
        templates = {aid: d for aid, d in members.items() if d.get("state") == "TEMPLATE"}
        if not templates:
            return
        wanted = {kind: {r for d in templates.values() if (r := _text(ref(d)))} for kind, ref in (
            ("dataset", lambda d: _args(d).get("dataset_id")),
            ("subscription", lambda d: _args(d).get("subscription_id")),
            ("workflow", lambda d: d.get("workflow_id")))}
        for kind, ids in wanted.items():
            rows = self._by_id(conn, kind, ids)
            for aid, d in templates.items():
                ref = {"dataset": _args(d).get("dataset_id"), "subscription": _args(d).get("subscription_id"),
                       "workflow": d.get("workflow_id")}[kind]
                if ref in rows:
                    found.add(kind, ref, rows[ref], (kind, ref, "action", aid))
        paths = {aid: p for aid, d in templates.items() if (p := _text(_args(d).get("destination_s3_path")))}
        if paths:
            location = TABLES["dataset"].c.data["location"].as_string()
            for batch in _batches(list(paths.items())):
                clause = sa.or_(*(sa.literal(p).startswith(location) for _, p in batch))
                for did, data in self._where(conn, "dataset", sa.and_(location != "", clause)):
                    for aid, p in batch:
                        if p.startswith(str(data.get("location"))):
                            found.add("dataset", did, data, ("dataset", did, "action", aid))

    def _from_workflow(self, conn: sa.Connection, members: dict[str, dict[str, Any]], found: _Found,
                       root_datastore: str | None) -> None:
        ids = list(members)
        actions = TABLES["action"]
        rows = self._where(conn, "action", actions.c.workflow_id.in_(ids), templates=True)
        for aid, data in sorted(rows, key=lambda r: _number(r[1].get("order_idx"))):
            found.add("action", aid, data, ("workflow", data["workflow_id"], "action", aid))
        stores = self._by_id(conn, "datastore", {r for d in members.values() if (r := _text(d.get("datastore_id")))})
        for wid, d in members.items():
            if d.get("datastore_id") in stores:
                found.add("datastore", d["datastore_id"], stores[d["datastore_id"]],
                          ("datastore", d["datastore_id"], "workflow", wid))
        for tid, data in self._triggers_naming(conn, ids):
            for wid in set(_ids(data.get("workflow_ids"))) & members.keys():
                found.add("trigger", tid, data, ("trigger", tid, "workflow", wid))
            completed = _args(data).get("completed_workflow_id")
            if completed in members:
                found.add("trigger", tid, data, ("workflow", completed, "trigger", tid))

    def _from_trigger(self, conn: sa.Connection, members: dict[str, dict[str, Any]], found: _Found,
                      root_datastore: str | None) -> None:
        refs: dict[str, list[tuple[str, str, bool]]] = {"workflow": [], "subscription": [], "event": [], "trigger": []}
        for tid, d in members.items():
            args = _args(d)
            refs["workflow"] += [(w, tid, True) for w in _ids(d.get("workflow_ids"))]  # trigger -> workflow
            for kind, name in (("workflow", "completed_workflow_id"), ("subscription", "subscription_id"),
                               ("event", "event_id")):
                if _text(args.get(name)):
                    refs[kind].append((args[name], tid, False))  # <kind> -> trigger
            refs["trigger"] += [(t, tid, False) for t in _ids(args.get("completed_trigger_ids"))]
        for kind, pairs in refs.items():
            rows = self._by_id(conn, kind, {ref for ref, _, _ in pairs})
            for ref, tid, outward in pairs:
                if ref in rows:
                    edge = ("trigger", tid, kind, ref) if outward else (kind, ref, "trigger", tid)
                    found.add(kind, ref, rows[ref], edge)
        for sid, data in self._triggers_naming(conn, list(members)):
            for tid in set(_ids(_args(data).get("completed_trigger_ids"))) & members.keys():
                found.add("trigger", sid, data, ("trigger", tid, "trigger", sid))

    def _from_subscription(self, conn: sa.Connection, members: dict[str, dict[str, Any]], found: _Found,
                           root_datastore: str | None) -> None:
        ids = list(members)
        datasets = self._by_id(conn, "dataset", {r for d in members.values() if (r := _text(d.get("dataset_id")))})
        for sid, d in members.items():
            if d.get("dataset_id") in datasets:
                found.add("dataset", d["dataset_id"], datasets[d["dataset_id"]],
                          ("dataset", d["dataset_id"], "subscription", sid))
        for aid, data in self._where(conn, "action", _arg("subscription_id").in_(ids), templates=True):
            found.add("action", aid, data, ("subscription", _args(data)["subscription_id"], "action", aid))
        triggers = TABLES["trigger"]
        for tid, data in self._where(conn, "trigger", triggers.c.data[("args", "subscription_id")].as_string().in_(ids)):
            found.add("trigger", tid, data, ("subscription", _args(data)["subscription_id"], "trigger", tid))

    def _from_datastore(self, conn: sa.Connection, members: dict[str, dict[str, Any]], found: _Found,
                        root_datastore: str | None) -> None:
        if root_datastore not in members:
            return  # reached through a workflow: its other workflows are not this graph's
        flows = TABLES["workflow"]
        for wid, data in self._where(conn, "workflow", flows.c.data["datastore_id"].as_string() == root_datastore):
            found.add("workflow", wid, data, ("datastore", root_datastore, "workflow", wid))

    def _from_event(self, conn: sa.Connection, members: dict[str, dict[str, Any]], found: _Found,
                    root_datastore: str | None) -> None:
        triggers = TABLES["trigger"]
        for tid, data in self._where(conn, "trigger", triggers.c.data[("args", "event_id")].as_string().in_(list(members))):
            found.add("trigger", tid, data, ("event", _args(data)["event_id"], "trigger", tid))

    # ---------------------------------------------------------------------------- run entities
    def _instances(self, conn: sa.Connection, walk: _Walk) -> None:
        """Each workflow's latest instances (as many as its concurrency) and their actions."""
        flows = {i: d for (t, i), d in walk.data.items() if t == "workflow"}
        if not flows or walk.full():
            return
        inst = TABLES["workflow_instance"]
        ranked = sa.select(inst.c.id, inst.c.workflow_id, inst.c.state, inst.c.created, sa.func.row_number().over(
            partition_by=inst.c.workflow_id, order_by=(inst.c.created.desc(), inst.c.id.desc())).label("n")
        ).where(inst.c.workflow_id.in_(list(flows))).subquery()
        rows = conn.execute(sa.select(ranked).where(ranked.c.n <= 50).order_by(ranked.c.created)).all()
        instances = [r for r in rows if r.n <= max(1, int(_number(flows[r.workflow_id].get("concurrency")) or 1))]
        actions = TABLES["action"]
        by_instance: dict[str, list[Any]] = {}
        for batch in _batches([r.id for r in instances]):
            for row in conn.execute(sa.select(actions.c.id, actions.c.data, actions.c.workflow_instance_id)
                                    .where(actions.c.workflow_instance_id.in_(batch)).limit(MAX_NODES)):
                by_instance.setdefault(row.workflow_instance_id, []).append(row)
        for instance in instances:
            mine = sorted(by_instance.get(instance.id, []), key=lambda r: _number(r.data.get("order_idx")))
            if not walk.add("workflow_instance", instance.id,
                            {"name": _instance_name(instance.state, [r.data for r in mine]), "state": instance.state}):
                continue
            walk.edge("workflow", instance.workflow_id, "workflow_instance", instance.id)
            for row in mine:
                walk.add("action", row.id, row.data)
                walk.edge("workflow_instance", instance.id, "action", row.id)

    def _one_off_actions(self, conn: sa.Connection, walk: _Walk) -> None:
        """Each datastore's latest ad-hoc actions (no workflow) of the last day."""
        stores = [i for (t, i) in walk.nodes if t == "datastore"]
        if not stores or walk.full():
            return
        actions = TABLES["action"]
        since = self._now() - ONE_OFF_WINDOW
        ranked = sa.select(actions.c.id, actions.c.datastore_id, actions.c.data, actions.c.created,
                           sa.func.row_number().over(partition_by=actions.c.datastore_id,
                                                     order_by=(actions.c.created.desc(), actions.c.id.desc())).label("n")
                           ).where(actions.c.datastore_id.in_(stores), actions.c.workflow_id.is_(None),
                                   actions.c.workflow_instance_id.is_(None), actions.c.created > since).subquery()
        for row in conn.execute(sa.select(ranked).where(ranked.c.n <= ONE_OFF_ACTIONS).order_by(ranked.c.created)):
            walk.add("action", row.id, row.data)
            walk.edge("datastore", row.datastore_id, "action", row.id)

    # ---------------------------------------------------------------------------------- queries
    def _by_id(self, conn: sa.Connection, entity_type: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        t = TABLES[entity_type]
        out: dict[str, dict[str, Any]] = {}
        for batch in _batches(sorted(set(ids))):
            for row in conn.execute(sa.select(t.c.id, t.c.data).where(t.c.id.in_(batch))):
                out[row.id] = row.data
        return out

    def _where(self, conn: sa.Connection, entity_type: str, clause: sa.ColumnElement[bool],
               templates: bool = False) -> list[tuple[str, dict[str, Any]]]:
        t = TABLES[entity_type]
        query = sa.select(t.c.id, t.c.data).where(clause)
        if templates:
            query = query.where(t.c.state == "TEMPLATE")
        return [(r.id, r.data) for r in conn.execute(query.order_by(t.c.created, t.c.id).limit(MAX_NODES))]

    def _triggers_naming(self, conn: sa.Connection, ids: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
        """Triggers whose data mentions any of ``ids`` (in ``workflow_ids`` or ``completed_trigger_ids``, lists
        that neither SQL dialect indexes alike): a text match narrows them, the caller checks the lists."""
        t = TABLES["trigger"]
        text = sa.cast(t.c.data, sa.Text)
        out: list[tuple[str, dict[str, Any]]] = []
        for batch in _batches(list(ids), 100):
            out += self._where(conn, "trigger", sa.or_(*(text.contains(f'"{i}"', autoescape=True) for i in batch)))
        return out


class _Found:
    """What one level of the walk found: nodes (kept in order) and the edges that led to them."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.edges: list[tuple[str, str, str, str]] = []

    def add(self, entity_type: str, entity_id: str, data: dict[str, Any], edge: tuple[str, str, str, str]) -> None:
        self.items.setdefault((entity_type, entity_id), data)
        self.edges.append(edge)

    def into(self, walk: _Walk) -> dict[str, dict[str, dict[str, Any]]]:
        """Add to the walk; the new nodes by type, to expand next."""
        frontier: dict[str, dict[str, dict[str, Any]]] = {}
        for (entity_type, entity_id), data in self.items.items():
            if walk.add(entity_type, entity_id, data):
                frontier.setdefault(entity_type, {})[entity_id] = data
        for edge in self.edges:
            walk.edge(*edge)
        return frontier


def _arg(name: str) -> sa.ColumnElement[Any]:
    return TABLES["action"].c.data[("args", name)].as_string()


def _batches(items: list[Any], size: int = BATCH) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _instance_name(state: str | None, actions: list[dict[str, Any]]) -> str:
    """``workflow_instance``, with its progress while RUNNING when every action has an average runtime."""
    name = "workflow_instance"
    runtimes = [a.get("avg_runtime") for a in actions]
    if state != "RUNNING" or not actions or any(not r for r in runtimes):
        return name
    total = done = 0.0
    for action, runtime in zip(actions, runtimes):
        seconds = parse_timedelta(runtime).total_seconds()
        total += seconds
        if action.get("state") in ("COMPLETED", "FAILED"):
            done += seconds
        elif action.get("state") in ("RUNNING", "FINISHING"):
            done += seconds * _number(action.get("progress"))
    return f"{name} - {done / total:.0%}" if total else name
