"""Start-up registration of the built-in engines (services/runtime/builtin_engines.py) on a real SQLite store:
every one created on a fresh home, nothing appended by a start with nothing changed, a changed definition
updated, and one engine that cannot be registered leaves the others registered."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from engines.catalog import BUILT_IN_ENGINES
from services.commands.entities import EntityService
from services.runtime.builtin_engines import register_builtin_engines
from services.runtime.composition import build
from services.runtime.settings import load_settings


def test_built_in_engines_are_registered_once_and_kept_up_to_date(tmp_path: Path) -> None:
    container = build(load_settings(env={"DART_HOME": str(tmp_path)}))
    entities = EntityService(container.store, container)
    try:
        names = [e.name for e in BUILT_IN_ENGINES]
        assert register_builtin_engines(entities) == dict.fromkeys(names, "created")
        head = container.store.head_position()
        assert register_builtin_engines(entities) == dict.fromkeys(names, "unchanged")
        assert container.store.head_position() == head  # a start with nothing changed appends nothing

        def newer(**settings: Any) -> dict[str, Any]:
            return {**BUILT_IN_ENGINES[0].registration(**settings), "description": "a newer release"}

        changed = (dataclasses.replace(BUILT_IN_ENGINES[0], registration=newer), *BUILT_IN_ENGINES[1:])
        outcome = register_builtin_engines(entities, changed)
        assert outcome[names[0]] == "updated" and set(list(outcome.values())[1:]) == {"unchanged"}
        [row] = entities.reader.find_by("engine", name=names[0])
        assert row["data"]["description"] == "a newer release" and row["data"]["user_id"] == "dart"
    finally:
        container.store.close()


def test_an_engine_that_cannot_be_registered_leaves_the_others_registered(tmp_path: Path) -> None:
    container = build(load_settings(env={"DART_HOME": str(tmp_path)}))
    entities = EntityService(container.store, container)
    try:
        def broken(**_: Any) -> dict[str, Any]:
            return {"name": "broken_engine", "options_json_schema": {"type": "not-a-type"}}

        engines = (dataclasses.replace(BUILT_IN_ENGINES[0], name="broken_engine", registration=broken),
                   *BUILT_IN_ENGINES[1:])
        outcome = register_builtin_engines(entities, engines)
        assert outcome["broken_engine"] == "failed"
        assert {row["data"]["name"] for row in entities.reader.find_by("engine")} == {
            e.name for e in BUILT_IN_ENGINES[1:]}
    finally:
        container.store.close()
