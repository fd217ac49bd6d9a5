"""How long ``GET /graph/<type>/{id}`` takes on a graph of about 1,000 entities (issue 14: "well under a second"),
with 20,000 unrelated actions beside it so a query that scans instead of looking up shows.

The graph: a datastore, 50 workflows of 15 TEMPLATE actions each (every fifth one loads one of 50 datasets),
chained one after another by 49 workflow_completion triggers, and an event with its event trigger per
workflow: 1,000 nodes in all, 99 levels deep from the first workflow. Measured from the datastore (two levels
wide) and from the first workflow (the whole chain, level by level), the median of five, on SQLite and, with
``--postgres URL`` (a server: a database is made and dropped), on PostgreSQL.

    python -m bench.graph_bench [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from typing import Any

from bench.harness import pg
from events.streams.action import ActionCreated
from events.types import ExpectedVersion, Metadata, NewEvent, StreamAppend
from projections.graph import GraphReader
from services.commands.auth import Principal
from services.commands.entities import EntityService
from services.runtime.builtin_engines import register_builtin_engines
from services.runtime.composition import build
from services.runtime.settings import load_settings

WHO = Principal(key="bench", user_id="bench", scope="admin")
WORKFLOWS, ACTIONS, NOISE = 50, 15, 20_000


def _fill(entities: EntityService) -> dict[str, str]:
    register_builtin_engines(entities)
    create = entities.create
    store = create("datastore", {"data": {"name": "bench", "engine_name": "no_op_engine", "state": "TEMPLATE",
                                                              "args": {}}},
                   WHO)["id"]
    datasets = [create("dataset", {"data": {
        "name": f"bench_{uuid.uuid4().hex[:8]}", "table_name": "t", "location": f"s3://bench/d{n}",
        "load_type": "INSERT", "data_format": {"file_format": "PARQUET", "row_format": "NONE"},
        "columns": [{"name": "c", "data_type": "VARCHAR", "length": 10}]}}, WHO)["id"] for n in range(WORKFLOWS)]
    flows = []
    for n in range(WORKFLOWS):
        flow = create("workflow", {"data": {"name": f"wf{n}"}}, WHO, store)["id"]
        flows.append(flow)
        actions = [{"name": f"a{i}", "action_type_name": "fake_load_dataset", "args": {"dataset_id": datasets[n]}}
                   if i % 5 == 0 else {"name": f"a{i}", "action_type_name": "fake_action_that_succeeds"}
                   for i in range(ACTIONS)]
        entities.create_many("action", actions, WHO, ("workflow", flow))
        event = create("event", {"data": {"name": f"e{n}"}}, WHO)["id"]
        create("trigger", {"data": {"name": f"et{n}", "trigger_type_name": "event", "workflow_ids": [flow],
                                    "args": {"event_id": event}}}, WHO)
        if n:
            create("trigger", {"data": {"name": f"t{n}", "trigger_type_name": "workflow_completion",
                                        "workflow_ids": [flow], "args": {"completed_workflow_id": flows[n - 1]}}},
                   WHO)
    other = create("datastore", {"data": {"name": "noise", "engine_name": "no_op_engine", "state": "TEMPLATE",
                                                              "args": {}}},
                   WHO)["id"]
    meta = Metadata(actor="bench")
    for start in range(0, NOISE, 500):
        entities.store.append(*(StreamAppend(f"action-N{start + i:09d}", ExpectedVersion.NO_STREAM, [NewEvent(
            ActionCreated({"name": "noise", "action_type_name": "fake_action_that_succeeds", "state": "COMPLETED",
                           "datastore_id": other, "workflow_instance_id": f"I{i % 97}", "args": {}}), meta)])
            for i in range(500)))
    return {"datastore": store, "workflow": flows[0]}


def _median_ms(reader: GraphReader, entity_type: str, entity_id: str) -> tuple[float, int, int]:
    times = []
    graph: dict[str, Any] = {}
    for _ in range(5):
        started = time.perf_counter()
        graph = reader.graph(entity_type, entity_id)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), len(graph["nodes"]), len(graph["edges"])


def run(database_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as home:
        env = {"DART_HOME": home, **({"DART_DATABASE_URL": database_url} if database_url else {})}
        container = build(load_settings(env=env))
        try:
            roots = _fill(EntityService(container.store, container))
            reader = GraphReader(container.store)
            backend = "postgresql" if database_url else "sqlite"
            for entity_type, entity_id in roots.items():
                ms, nodes, edges = _median_ms(reader, entity_type, entity_id)
                print(f"{backend:10} from the {entity_type:9}: {nodes} nodes, {edges} edges, {ms:.0f} ms (median of 5)")
        finally:
            container.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="a PostgreSQL server URL (a database is made and dropped)")
    args = parser.parse_args()
    run(None)
    if args.postgres:
        with pg.temporary_database(args.postgres) as url:
            run(str(url))


if __name__ == "__main__":
    main()
