"""The UI's subgraph recipes (reference §5.10, §3.11): the built-in ones the original made for each entity type
and each engine (a dataset, an event, a subscription of a dataset, a trigger of an event or a subscription, one
action per action type, a workflow of a datastore, the trigger kinds of a workflow, a datastore per engine), an
engine's stored subgraph definitions as recipes, and the schema a stored definition is checked with."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.domain.graph import CHILD, GRAPH_TYPES, PARENT, UNSAVED, sub_graph
from services.domain.schemas.fields import Schema, name_field

PARENT_ID, CHILD_ID = f"{PARENT}-1", f"{CHILD}-1"
ENTITY_LISTS = {"actions": "action", "datasets": "dataset", "datastores": "datastore", "events": "event",
                "subscriptions": "subscription", "triggers": "trigger", "workflows": "workflow"}
RELATIONSHIPS = (PARENT, CHILD)
Recipes = dict[str | None, list[dict[str, Any]]]


def ref(entity_type: str, n: int = 1) -> str:
    """The original's ``Ref``: ``UNSAVED-<type><n>``."""
    return f"{UNSAVED}-{entity_type}{n}"


def _one(entity_type: str, data: dict[str, Any], *, name: str, description: str, related_type: str | None,
         related_is_a: str | None, icon: str) -> dict[str, Any]:
    return sub_graph([(entity_type, {"id": ref(entity_type), "data": data})], name=name, description=description,
                     related_type=related_type, related_is_a=related_is_a, icon=icon)


def engineless_recipes(related_type: str | None) -> list[dict[str, Any]]:
    """The recipes that belong to no engine, for a selected entity of ``related_type`` (None: nothing
    selected)."""
    if related_type is None:
        return [
            _one("dataset", {"name": None, "table_name": None, "location": None, "load_type": None,
                             "data_format": None, "columns": [], "partitions": []},
                 name="dataset", description="create a new dataset entity", related_type=None, related_is_a=None,
                 icon="⬟"),
            _one("event", {"name": "event"}, name="event", description="create a new event entity",
                 related_type=None, related_is_a=None, icon="★"),
        ]
    if related_type == "dataset":
        return [_one("subscription", {"name": "subscription", "dataset_id": PARENT_ID}, name="subscription",
                     description="create a new subscription entity", related_type="dataset",
                     related_is_a=PARENT, icon="⬢")]
    if related_type == "event":
        return [_trigger("event", {"event_id": PARENT_ID}, [], "event trigger", "event", PARENT)]
    if related_type == "subscription":
        return [_trigger("subscription_batch", {"subscription_id": PARENT_ID,
                                                "unconsumed_data_size_in_bytes": 1000000},
                         [], "subscription batch trigger", "subscription", PARENT)]
    return []


def _trigger(type_name: str, args: dict[str, Any] | None, workflow_ids: list[str], name: str,
             related_type: str, related_is_a: str) -> dict[str, Any]:
    data: dict[str, Any] = {"name": f"{type_name}_trigger", "trigger_type_name": type_name, "state": "INACTIVE",
                            "workflow_ids": workflow_ids, "args": args}
    return _one("trigger", data, name=name, description=f"create a new {type_name} trigger entity",
                related_type=related_type, related_is_a=related_is_a, icon="▼")


def engine_recipes(engine: dict[str, Any], related_type: str | None) -> list[dict[str, Any]]:
    """The recipes of one engine (its ``data``) for a selected entity of ``related_type``."""
    engine_name = engine.get("name")
    action_types = [t for t in engine.get("supported_action_types") or [] if isinstance(t, dict)]
    recipes: list[dict[str, Any]] = []
    if related_type == "workflow":
        for action_type in action_types:
            recipes.append(_action(engine_name, action_type, {"workflow_id": PARENT_ID, "state": "TEMPLATE"},
                                   "workflow"))
        recipes.append(_trigger("workflow_completion", {"completed_workflow_id": PARENT_ID}, [],
                                "workflow completion trigger", "workflow", PARENT))
        recipes.append(_trigger("scheduled", None, [CHILD_ID], "scheduled trigger", "workflow", CHILD))
        recipes.append(_trigger("super", None, [CHILD_ID], "super trigger", "workflow", CHILD))
    if related_type == "datastore":
        recipes.append(_one("workflow", {"name": "workflow", "datastore_id": PARENT_ID, "engine_name": engine_name,
                                         "state": "INACTIVE"},
                            name="workflow", description="create a new workflow entity", related_type="datastore",
                            related_is_a=PARENT, icon="◆"))
        for action_type in action_types:
            recipes.append(_action(engine_name, action_type, {"datastore_id": PARENT_ID, "state": "HAS_NEVER_RUN"},
                                   "datastore"))
    return recipes


def _action(engine_name: Any, action_type: dict[str, Any], where: dict[str, Any],
            related_type: str) -> dict[str, Any]:
    name = action_type.get("name")
    data = {"name": name, "action_type_name": name, "engine_name": engine_name, **where,
            "args": {} if action_type.get("params_json_schema") else None}
    return _one("action", data, name=str(name), description=str(action_type.get("description") or ""),
                related_type=related_type, related_is_a=PARENT, icon="●")


def datastore_recipe(engine_name: str) -> dict[str, Any]:
    return _one("datastore", {"name": f"{engine_name}_datastore", "engine_name": engine_name, "state": "INACTIVE"},
                name="datastore", description="create a new datastore entity", related_type=None,
                related_is_a=None, icon="⬟")


def definition_recipe(definition: dict[str, Any]) -> dict[str, Any]:
    """A stored subgraph definition (its ``data``) as a recipe."""
    entities = [(entity_type, e)
                for field, entity_type in ENTITY_LISTS.items() for e in definition.get(field) or []]
    return sub_graph(entities, name=definition.get("name") or "", description=definition.get("description"),
                     related_type=definition.get("related_type"), related_is_a=definition.get("related_is_a"),
                     icon=definition.get("icon"), md_icon=definition.get("md_icon"))


def merge(*parts: Iterable[tuple[str | None, list[dict[str, Any]]]]) -> Recipes:
    out: Recipes = {}
    for part in parts:
        for engine_name, recipes in part:
            out.setdefault(engine_name, []).extend(recipes)
    return out


def subgraph_definition_schema(trigger_type_names: list[str], action_type_names: list[str] | None = None) -> Schema:
    """A stored definition: the original's fields; each template entity an ``{id, data}`` whose id is a
    placeholder, its action types named (the engine's own: checked in code, so the refusal names the action;
    ``action_type_names`` makes the schema say it, for the API document) and its trigger types built-in ones. The entities' data is
    checked in full when a recipe made from it is saved (``POST /graph/sub_graph``), as the original did."""
    placeholder = {"type": "string", "pattern": f"^({UNSAVED}|{PARENT}|{CHILD})-[A-Za-z0-9_]+$", "maxLength": 64}

    def entities(extra: Schema | None = None) -> Schema:
        data: Schema = {"type": "object"}
        if extra:
            data = {"type": "object", "properties": extra, "required": sorted(extra)}
        return {"type": "array", "default": [], "maxItems": 200, "items": {
            "type": "object", "required": ["id", "data"], "additionalProperties": False,
            "properties": {"id": placeholder, "data": data, "version_id": {}, "created": {}, "updated": {}}}}

    lists = {field: entities() for field in ENTITY_LISTS}
    action_type: Schema = {"type": "string"} if action_type_names is None else {"enum": action_type_names or [None]}
    lists["actions"] = entities({"action_type_name": action_type})
    lists["triggers"] = entities({"trigger_type_name": {"enum": trigger_type_names}})
    return {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "description": {"type": ["string", "null"]},
            "engine_name": name_field(),
            "related_type": {"enum": [*GRAPH_TYPES, None]},
            "related_is_a": {"enum": [*RELATIONSHIPS, None]},
            **lists,
            "icon": {"type": ["string", "null"], "maxLength": 20},
            "md_icon": {"type": ["string", "null"], "default": "share", "maxLength": 50},
        },
        "additionalProperties": False,
        "required": ["name", "engine_name"],
    }
