"""The list endpoint's SQL, dart's and the bare endpoint's, examined on the benchmark database: server time
and plan of one request's queries (EXPLAIN ANALYZE), and the expression indexes of the index experiment."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import psycopg

from bench import api_bare

# The experiment's indexes. dart's filters read a path as `data #>> $1::text[]` (text) and
# `CASE WHEN jsonb_typeof(data #> $1::text[]) = 'number' THEN ... END` (numeric), the path bound as a
# parameter; the bare endpoint writes `data ->> 'key'`. Each gets the index matching its own expression.
INDEXES = [
    ("ix_bench_action_wf_path", "CREATE INDEX {name} ON rm_action ((data #>> '{{workflow_id}}'::text[]))"),
    ("ix_bench_action_wf_arrow", "CREATE INDEX {name} ON rm_action ((data ->> 'workflow_id'))"),
    ("ix_bench_action_state_idx_path",
     ("CREATE INDEX {name} ON rm_action (state, (CASE WHEN jsonb_typeof(data #> '{{order_idx}}'::text[]) = "
      "'number' THEN ((data #> '{{order_idx}}'::text[]) #>> '{{}}')::numeric END))")),
    ("ix_bench_action_state_idx_arrow",
     ("CREATE INDEX {name} ON rm_action (state, (CASE WHEN jsonb_typeof(data -> 'order_idx') = 'number' "
      "THEN (data ->> 'order_idx')::numeric END))")),
]

# What dart sends for scenarios (a) and (b) (SQLAlchemy over psycopg, parameters bound server-side), as
# its statement log shows them; used to EXPLAIN ANALYZE them with the same parameters.
_DART_COLUMNS = ("rm_action.id, rm_action.version, rm_action.created, rm_action.updated, rm_action.state, "
                 "rm_action.name, rm_action.data")
_DART_A_WHERE = "rm_action.state = %s::VARCHAR AND (rm_action.data #>> %s::TEXT[]) = %s::VARCHAR"
_DART_NUMERIC = ("CASE WHEN (jsonb_typeof(rm_action.data #> %s::TEXT[]) = %s::VARCHAR) "
                 "THEN CAST((rm_action.data #> %s::TEXT[]) #>> '{}' AS NUMERIC) END")
_DART_B_WHERE = f"{_DART_NUMERIC} > %s AND rm_action.state = %s::VARCHAR"
DART_SQL = {
    "a_count": f"SELECT count(*) AS count_1 FROM rm_action WHERE {_DART_A_WHERE}",
    "a_page": f"SELECT {_DART_COLUMNS} FROM rm_action WHERE {_DART_A_WHERE} "
              "ORDER BY rm_action.updated DESC, rm_action.id DESC LIMIT %s::INTEGER OFFSET %s::INTEGER",
    "b_count": f"SELECT count(*) AS count_1 FROM rm_action WHERE {_DART_B_WHERE}",
    "b_page": f"SELECT {_DART_COLUMNS} FROM rm_action WHERE {_DART_B_WHERE} "
              f"ORDER BY {_DART_NUMERIC} ASC NULLS LAST, rm_action.id LIMIT %s::INTEGER OFFSET %s::INTEGER",
}



def explain(conn: psycopg.Connection[Any], query: str, params: list[Any]) -> dict[str, Any]:
    """EXPLAIN ANALYZE with the parameters bound server-side, as both apps send them (a custom plan); the
    fastest of three, so a cold cache does not decide."""
    best: dict[str, Any] = {}
    for _ in range(3):
        row = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query, params).fetchone()
        plan = row[0][0] if row else {}
        nodes: list[str] = []
        _walk(plan["Plan"], nodes)
        ms = round(plan["Execution Time"] + plan["Planning Time"], 2)
        if not best or ms < best["ms"]:
            best = {"ms": ms, "plan": " > ".join(nodes)}
    return best


def _walk(node: dict[str, Any], nodes: list[str]) -> None:
    """A plan's nodes, depth first, with the index each one uses."""
    nodes.append(node["Node Type"] + (f" on {node['Index Name']}" if "Index Name" in node else ""))
    for child in node.get("Plans", []):
        _walk(child, nodes)


def query_plans(conn: psycopg.Connection[Any], workflow_id: str) -> dict[str, Any]:
    """Server time and plan of each list query, dart's SQL and the bare endpoint's, for one request."""
    a = ["COMPLETED", ["workflow_id"], workflow_id]
    b = [["order_idx"], "number", ["order_idx"], Decimal(5), "QUEUED"]
    out = {
        "dart_a_count": explain(conn, DART_SQL["a_count"], a),
        "dart_a_page": explain(conn, DART_SQL["a_page"], [*a, 20, 0]),
        "dart_b_count": explain(conn, DART_SQL["b_count"], b),
        "dart_b_page": explain(conn, DART_SQL["b_page"], [*b, ["order_idx"], "number", ["order_idx"], 20, 0]),
    }
    for key, filters, order in (("a", ["state = COMPLETED", f"workflow_id = {workflow_id}"], []),
                                ("b", ["order_idx > 5", "state = QUEUED"], ["order_idx ASC"])):
        params = {"filters": json.dumps(filters), "limit": "20"}
        if order:
            params["order_by"] = json.dumps(order)
        count_sql, page_sql, where_params, page_params, _, _ = api_bare.list_query(params.get)
        out[f"bare_{key}_count"] = explain(conn, count_sql, where_params)
        out[f"bare_{key}_page"] = explain(conn, page_sql, page_params)
    return out

