"""Precise shapes for the OpenAPI document's free-form query values: ``filters`` and ``order_by`` as JSON
arrays whose items follow the filter grammar typed by each kind's schema, ``as_of`` and ISO times as
patterns. Whatever these patterns match, the server accepts (schemathesis checks it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from projections.filters import COLUMN_KEYS, path_type
from services.domain import schemas

# An ISO 8601 time with an offset that every parser on the way reads and that stays in range once moved to
# UTC: years 1000 to 8999, days up to 28 (so every month has them). The server reads more (29-31, other
# years, no seconds); the pattern promises what it matches.
_DATE = r"(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
_CLOCK = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?(?:Z|[+-](?:0[0-9]|1[0-3]):[0-5][0-9])"
ISO_TIME = rf"[1-8][0-9]{{3}}-{_DATE}T{_CLOCK}"
AS_OF = rf"^(?:0|[1-9][0-9]{{0,17}}|{ISO_TIME})$"
_NUMBER = r"-?(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,6})?"
# A text value: printable ASCII without spaces (the grammar ends a value at whitespace) nor the two
# characters a JSON string would need to escape.
_TEXT = r"[!#-\[\]-~]{1,40}"
_TEXT_OPS = ("=", "!=", "<", "<=", ">", ">=", "IN", "LIKE", "NOT_LIKE", "~")
_ORDERED_OPS = ("=", "!=", "<", "<=", ">", ">=", "IN")
MAX_DOCUMENTED_FILTERS = 5
_SCALARS = {"string", "integer", "number", "boolean", "null"}


def future_time_pattern(now: datetime | None = None) -> str:
    """An ISO time from next year on (an expiry must be in the future; the pattern is fixed when the
    document is built, so a year's margin keeps it true while the server runs)."""
    year = (now or datetime.now(UTC)).year + 1
    later = "|".join(_years_from(year))
    return rf"^(?:{later})-{_DATE}T{_CLOCK}$"


def _years_from(year: int) -> list[str]:
    """Regex alternatives matching the four-digit years from ``year`` to 8999."""
    out = [str(year)]
    text = str(year)
    # the same century and decade, later years; then later decades; then later centuries and millennia
    if text[3] != "9":
        out.append(f"{text[:3]}[{int(text[3]) + 1}-9]")
    if text[2] != "9":
        out.append(f"{text[:2]}[{int(text[2]) + 1}-9][0-9]")
    if text[1] != "9":
        out.append(f"{text[0]}[{int(text[1]) + 1}-9][0-9]{{2}}")
    if text[0] < "8":
        out.append(f"[{int(text[0]) + 1}-8][0-9]{{3}}")
    return out


def _kind_schemas(category: str) -> list[dict[str, Any]]:
    """The schemas the server types this kind's filters with, as far as the top-level keys go (an engine's
    options and action params only add keys under ``args``)."""
    if category == "datastore":
        return [schemas.datastore_schema(None)]
    if category == "action":
        return [schemas.action_schema(None)]
    if category == "trigger":
        return [schemas.trigger_schema(None)]
    return [schemas.schema_for(category)]


def _scalar_types(node: dict[str, Any]) -> set[str]:
    declared = node.get("type")
    types = {declared} if isinstance(declared, str) else set(declared or [])
    if not types and isinstance(node.get("enum"), list):
        types = {"string"}
    if "array" in types and isinstance(node.get("items"), dict):
        types = (types - {"array"}) | _scalar_types(node["items"])
    return types


def filter_keys(category: str) -> dict[str, list[str]]:
    """The top-level keys a filter on this kind may name, by how the server compares them: ``text``,
    ``numeric``, ``boolean`` or ``timestamp`` (objects, and arrays of objects, are left out)."""
    found = _kind_schemas(category)
    keys: dict[str, list[str]] = {
        "text": ["id"],
        "numeric": [],
        "boolean": [],
        "timestamp": ["created", "updated"],
        "arrays": [],
    }
    for name, node in sorted((found[0].get("properties") or {}).items()):
        types = _scalar_types(node)
        if name in COLUMN_KEYS or not types or not types <= _SCALARS or types == {"null"}:
            continue
        typed = path_type(found, name)
        keys[typed.kind].append(name)
        if typed.through_array:
            keys["arrays"].append(name)  # filtered element by element; never an order_by key
    return keys


def _alternatives(names: list[str]) -> str:
    return "(?:" + "|".join(names) + ")"  # plain names and operators: nothing to escape


def _item(keys: list[str], ops: tuple[str, ...], value: str) -> str:
    ops_re = "(?:" + "|".join(sorted(ops, key=len, reverse=True)) + ")"
    return f"{_alternatives(keys)} {ops_re} {value}"


def _array(item: str, most: int) -> str:
    return rf'^\[(?:"(?:{item})"(?:,"(?:{item})"){{0,{most - 1}}})?\]$'


def filters_parameter(category: str) -> dict[str, Any]:
    keys = filter_keys(category)
    number_list = rf"{_NUMBER}(?:,{_NUMBER}){{0,4}}"
    items = [_item(keys["text"], _TEXT_OPS, _TEXT)]
    if keys["numeric"]:
        items += [
            _item(keys["numeric"], _ORDERED_OPS[:-1], _NUMBER),
            _item(keys["numeric"], ("IN",), number_list),
        ]
    if keys["boolean"]:
        items.append(_item(keys["boolean"], ("=", "!=", "IN"), "(?:true|false)"))
    items.append(_item(keys["timestamp"], _ORDERED_OPS[:-1], ISO_TIME))
    typed = "; ".join(
        f"{kind} keys {', '.join(names)}" for kind, names in keys.items() if names and kind != "arrays"
    )
    return {
        "type": "string",
        "pattern": _array("|".join(items), MAX_DOCUMENTED_FILTERS),
        "description": f'a JSON array of "key op value" strings (reference §6): {typed}. Dot-paths into '
        "objects (args.x) and other values the grammar reads work too.",
    }


def order_by_parameter(category: str) -> dict[str, Any]:
    keys = filter_keys(category)
    names = [k for kind in ("text", "numeric", "timestamp") for k in keys[kind] if k not in keys["arrays"]]
    item = f"{_alternatives(names)}(?: (?:ASC|DESC))?"
    return {
        "type": "string",
        "pattern": _array(item, 3),
        "description": 'a JSON array of "key ASC|DESC" strings',
    }


# PostgreSQL cannot store NUL in text or jsonb, so the server refuses it anywhere in a body, key or value, and
# in ids (a 400 naming the field): the document's strings say so.
NO_NUL = r"^[^\x00]*$"
JSON_VALUE_REF = {"$ref": "#/components/schemas/JsonValue"}
JSON_VALUE = {
    "anyOf": [
        {"type": ["null", "boolean", "number"]},
        {"type": "string", "pattern": NO_NUL},
        {"type": "array", "items": JSON_VALUE_REF},
        {"type": "object", "propertyNames": {"pattern": NO_NUL}, "additionalProperties": JSON_VALUE_REF},
    ]
}
# A subset of the cron syntax the server reads (standard five fields, days of the month up to 28, a day of
# the month or of the week but not both), so whatever the document's pattern matches fires some day.
_MONTH = r"(?:\*|[1-9]|1[0-2])"
CRON = (
    r"^(?:\*|[1-5]?[0-9]) (?:\*|1?[0-9]|2[0-3]) "
    rf"(?:(?:\*|[1-9]|1[0-9]|2[0-8]) {_MONTH} \*|\* {_MONTH} [0-6])$"
)


def without_nul(node: Any) -> Any:
    """A request schema whose strings, object keys and free-form values hold no NUL (a copy)."""
    if isinstance(node, list):
        return [without_nul(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: without_nul(v) if k in ("items", "anyOf", "oneOf", "allOf", "additionalProperties") else v
        for k, v in node.items()
    }
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: without_nul(v) for k, v in node["properties"].items()}
    declared = out.get("type")
    types = {declared} if isinstance(declared, str) else set(declared or [])
    if "cron_pattern" in (out.get("properties") or {}):
        out["properties"]["cron_pattern"] = {**out["properties"]["cron_pattern"], "pattern": CRON}
    if "string" in types and "pattern" not in out and "enum" not in out and "const" not in out:
        out["pattern"] = NO_NUL
    elif "string" in types and "pattern" in out:
        out["not"] = {"type": "string", "pattern": "\\x00"}  # its own pattern may let NUL through
    if "object" in types or "properties" in out:
        out.setdefault("propertyNames", {"pattern": NO_NUL})
        if out.get("additionalProperties", True) is True:
            out["additionalProperties"] = JSON_VALUE_REF
    if "array" in types and "items" not in out:
        out["items"] = JSON_VALUE_REF
    return out
