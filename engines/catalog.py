"""The built-in engines: each one's name, the module a launcher runs (``python -m <module>``) and its
registration body, the same function its ``register`` subcommand posts. ``dart up`` registers them all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engines.duckdb.definition import NAME as DUCKDB
from engines.duckdb.definition import duckdb_engine
from engines.dynamodb.definition import NAME as DYNAMODB
from engines.dynamodb.definition import dynamodb_engine
from engines.emr.definition import NAME as EMR
from engines.emr.definition import emr_engine
from engines.no_op.definition import NAME as NO_OP
from engines.no_op.definition import no_op_engine, subgraph_definitions
from engines.postgresql.definition import NAME as POSTGRESQL
from engines.postgresql.definition import postgresql_engine
from engines.redshift.definition import NAME as REDSHIFT
from engines.redshift.definition import redshift_engine
from engines.s3.definition import NAME as S3
from engines.s3.definition import s3_engine


@dataclass(frozen=True)
class BuiltInEngine:
    name: str
    module: str  # run as ``python -m <module>``
    registration: Callable[..., dict[str, Any]]  # a fresh ``POST /engine`` body
    # its UI recipes, each a ``POST /engine/{id}/subgraph_definition`` body's data
    subgraph_definitions: Callable[[], list[dict[str, Any]]] = list


BUILT_IN_ENGINES: tuple[BuiltInEngine, ...] = (
    BuiltInEngine(NO_OP, "engines.no_op", no_op_engine, subgraph_definitions),
    BuiltInEngine(S3, "engines.s3", s3_engine),
    BuiltInEngine(POSTGRESQL, "engines.postgresql", postgresql_engine),
    BuiltInEngine(DUCKDB, "engines.duckdb", duckdb_engine),
    BuiltInEngine(REDSHIFT, "engines.redshift", redshift_engine),
    BuiltInEngine(EMR, "engines.emr", emr_engine),
    BuiltInEngine(DYNAMODB, "engines.dynamodb", dynamodb_engine),
)
