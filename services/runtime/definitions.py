"""Definitions as files (issue 17): datastores, datasets, workflows with their actions, triggers, subscriptions
and events, in YAML or Python, referring to each other by name instead of id (docs/client.md).

A file is a mapping of kind (plural) to a list of entities, each the entity's ``data`` with its references
written by name: a field the API calls ``datastore_id`` is ``datastore: <name>`` here, ``workflow_ids`` is
``workflows: [<name>, ...]``, and so on for every reference field (``REFERENCES``). A reference given under
its API name (``datastore_id``) is an id, passed as it is. A workflow lists its template actions in order.
A Python file defines the same lists as module variables (``workflows = [...]``) or one ``DEFINITIONS`` dict.
"""

from __future__ import annotations

import runpy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# kind (as a file names it) -> the API's entity name, in the order a create must follow
KINDS = {"datastores": "datastore", "datasets": "dataset", "events": "event", "workflows": "workflow",
         "subscriptions": "subscription", "triggers": "trigger"}
ORDER = ("datastore", "dataset", "event", "workflow", "subscription", "action", "trigger")
SUFFIXES = (".yaml", ".yml", ".py")


@dataclass(frozen=True)
class Reference:
    """A field of ``owner`` holding the id (or, ``many``, the ids) of ``target`` entities, at ``path`` in its
    data; in files it is ``file_key`` and holds names. The same relationships as the graph's (reference
    §3.13, services/domain/graph.py)."""

    owner: str
    path: tuple[str, ...]
    target: str
    many: bool = False

    @property
    def file_path(self) -> tuple[str, ...]:
        last = self.path[-1]
        return (*self.path[:-1], last[:-4] + "s" if last.endswith("_ids") else last.removesuffix("_id"))


REFERENCES: tuple[Reference, ...] = (
    Reference("action", ("args", "dataset_id"), "dataset"),
    Reference("action", ("args", "subscription_id"), "subscription"),
    Reference("workflow", ("datastore_id",), "datastore"),
    Reference("subscription", ("dataset_id",), "dataset"),
    Reference("trigger", ("workflow_ids",), "workflow", many=True),
    Reference("trigger", ("args", "completed_workflow_id"), "workflow"),
    Reference("trigger", ("args", "event_id"), "event"),
    Reference("trigger", ("args", "subscription_id"), "subscription"),
    Reference("trigger", ("args", "completed_trigger_ids"), "trigger", many=True),
)


class DefinitionError(ValueError):
    """A definition file is wrong; the message names the file, the entity and the field."""


@dataclass
class Definition:
    """One entity as a file defines it: its data with references by name (``refs``: file path -> names)."""

    kind: str
    name: str
    file: str
    data: dict[str, Any]
    refs: dict[tuple[str, ...], Any] = field(default_factory=dict)
    workflow: str | None = None  # an action's workflow
    position: int = 0  # an action's place in its workflow (0-based)

    @property
    def key(self) -> tuple[str, ...]:
        """How the entity is found on the server: by kind and name; an action by its workflow and place."""
        if self.kind == "action":
            return ("action", str(self.workflow), str(self.position))
        return (self.kind, self.name)

    @property
    def label(self) -> str:
        if self.kind == "action":
            return f"action {self.workflow}/{self.name} (#{self.position + 1})"
        return f"{self.kind} {self.name}"

    def where(self, field_path: str = "") -> str:
        return f"{self.file}: {self.label}" + (f": {field_path}" if field_path else "")


def files_of(targets: Iterable[str | Path]) -> list[Path]:
    """The definition files named: files as given, directories walked for *.yaml, *.yml and *.py, sorted."""
    found: list[Path] = []
    for target in targets:
        path = Path(target)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
        elif path.is_file():
            found.append(path)
        else:
            raise DefinitionError(f"{path}: no such file or directory")
    return found


def load(targets: Iterable[str | Path]) -> list[Definition]:
    """Every entity of the files, checked for shape and duplicates (references are checked by the plan)."""
    definitions: list[Definition] = []
    seen: dict[tuple[str, ...], Definition] = {}
    for path in files_of(targets):
        for definition in _entities(path, _read(path)):
            other = seen.get(definition.key)
            if other is not None:
                raise DefinitionError(f"{definition.where('name')}: defined twice (also in {other.file})")
            seen[definition.key] = definition
            definitions.append(definition)
    return definitions


def _read(path: Path) -> dict[str, Any]:
    if path.suffix == ".py":
        try:
            namespace = runpy.run_path(str(path))
        except Exception as exc:  # any error of the user's file is reported as the file's
            raise DefinitionError(f"{path}: {type(exc).__name__}: {exc}") from exc
        loaded = namespace.get("DEFINITIONS") or {k: namespace[k] for k in KINDS if k in namespace}
    else:
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise DefinitionError(f"{path}: not YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise DefinitionError(f"{path}: expected a mapping of {', '.join(KINDS)} to lists")
    return loaded


def _entities(path: Path, loaded: dict[str, Any]) -> Iterator[Definition]:
    unknown = sorted(str(k) for k in loaded if k not in KINDS)
    if unknown:
        raise DefinitionError(f"{path}: unknown kind(s) {', '.join(unknown)} (expected {', '.join(KINDS)})")
    for plural, kind in KINDS.items():
        items = loaded.get(plural) or []
        if not isinstance(items, list):
            raise DefinitionError(f"{path}: {plural}: expected a list of {kind}s")
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
                raise DefinitionError(f"{path}: {plural}[{index}]: name: each {kind} needs a name")
            data = dict(item)
            actions = data.pop("actions", None) if kind == "workflow" else None
            definition = _definition(kind, str(path), data)
            yield definition
            if kind == "workflow":
                if actions is not None and not isinstance(actions, list):
                    raise DefinitionError(definition.where("actions") + ": expected a list of actions")
                for position, action in enumerate(actions or []):
                    if not isinstance(action, dict) or not isinstance(action.get("name"), str):
                        raise DefinitionError(definition.where(f"actions[{position}].name") + ": each action "
                                              "needs a name")
                    yield _definition("action", str(path), dict(action), definition.name, position)


def _definition(kind: str, file: str, data: dict[str, Any], workflow: str | None = None,
                position: int = 0) -> Definition:
    definition = Definition(kind, str(data["name"]), file, data, workflow=workflow, position=position)
    for ref in REFERENCES:
        if ref.owner != kind:
            continue
        holder = _holder(data, ref.file_path[:-1])
        if holder is None or ref.file_path[-1] not in holder:
            continue
        names = holder.pop(ref.file_path[-1])
        dotted = ".".join(ref.file_path)
        if ref.many and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise DefinitionError(definition.where(dotted) + f": expected a list of {ref.target} names")
        if not ref.many and not isinstance(names, str):
            raise DefinitionError(definition.where(dotted) + f": expected a {ref.target} name")
        definition.refs[ref.path] = names
    if kind == "action":
        for api_field in ("workflow_id", "datastore_id"):
            if api_field in data:
                raise DefinitionError(definition.where(api_field) + ": an action belongs to the workflow that "
                                      "lists it")
    return definition


def _holder(data: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    holder: Any = data
    for part in path:
        holder = holder.get(part) if isinstance(holder, dict) else None
    return holder if isinstance(holder, dict) else None


def dump(by_kind: dict[str, list[dict[str, Any]]]) -> str:
    """The YAML text of a definitions mapping (keys in the order given, block style)."""
    return yaml.safe_dump({k: v for k, v in by_kind.items() if v}, sort_keys=False, default_flow_style=False,
                          allow_unicode=True)
