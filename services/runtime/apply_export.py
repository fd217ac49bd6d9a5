"""``dart export``: the server's datastores, datasets, events, workflows (with their template actions),
subscriptions and triggers as definition files, references by name, so ``dart apply`` of the export changes
nothing. Run clones (a run's datastore and actions) and engines are not definitions and are left out."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from services.client import Dart, Entity
from services.runtime.apply_plan import SERVER_FIELDS
from services.runtime.definitions import KINDS, REFERENCES, dump

Out = Any


def definitions_of(dart: Dart) -> dict[str, list[dict[str, Any]]]:
    """``{plural kind: [entity data as a file writes it]}``."""
    entities: dict[str, list[Entity[Any]]] = {}
    for kind in KINDS.values():
        found = [e for e in dart.entities(kind).list() if not getattr(e.data, "workflow_instance_id", None)]
        entities[kind] = sorted(found, key=lambda e: str(e.data.name))
    names = {(kind, e.id): str(e.data.name) for kind, found in entities.items() for e in found}
    out: dict[str, list[dict[str, Any]]] = {}
    for plural, kind in KINDS.items():
        items = []
        for entity in entities[kind]:
            data = _written(kind, entity.data.to_json(), names)
            if kind == "workflow":
                actions = dart.actions.list(filters=[f"workflow_id = {entity.id}", "state = TEMPLATE"])
                ordered = sorted(actions, key=lambda a: (a.data.order_idx or 0, a.id))
                data["actions"] = [_action(a, position, names) for position, a in enumerate(ordered)]
            items.append(data)
        out[plural] = items
    return out


def _action(action: Entity[Any], position: int, names: dict[tuple[str, str], str]) -> dict[str, Any]:
    data = _written("action", action.data.to_json(), names)
    if data.get("order_idx") == position:
        data.pop("order_idx")  # its place in the list says it
    return data


def _written(kind: str, data: dict[str, Any], names: dict[tuple[str, str], str]) -> dict[str, Any]:
    """The data without what the server keeps for itself, references by name where the target is exported."""
    data = {k: copy.deepcopy(v) for k, v in data.items()
            if k not in SERVER_FIELDS.get(kind, ()) and v is not None and v != []}
    for ref in REFERENCES:
        if ref.owner != kind:
            continue
        holder: Any = data
        for part in ref.path[:-1]:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if not isinstance(holder, dict) or ref.path[-1] not in holder:
            continue
        value = holder[ref.path[-1]]
        targets = value if ref.many and isinstance(value, list) else [value]
        if not all((ref.target, t) in names for t in targets):
            continue  # an entity the export does not hold: keep the id
        named = [names[(ref.target, t)] for t in targets]
        del holder[ref.path[-1]]
        holder[ref.file_path[-1]] = named if ref.many else named[0]
    name = data.pop("name", None)
    return {"name": name, **data}


def export(dart: Dart, output: str | None, out: Out = print) -> None:
    """Write one YAML file (``output`` ending .yaml/.yml, or standard output) or a directory of one per kind."""
    by_kind = definitions_of(dart)
    if output is None:
        out(dump(by_kind).rstrip("\n"))
        return
    target = Path(output)
    if target.suffix in (".yaml", ".yml"):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(dump(by_kind))
        out(f"wrote {target}")
        return
    target.mkdir(parents=True, exist_ok=True)
    for plural, items in by_kind.items():
        if items:
            (target / f"{plural}.yaml").write_text(dump({plural: items}))
    out(f"wrote {', '.join(f'{p}.yaml' for p, items in by_kind.items() if items)} in {target}")
