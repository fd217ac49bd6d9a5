"""Defaulting and validation of entity data against JSON schemas (reference §2.2, design §5), the check of
schemas that engines declare, and the separation of `x-dart-secret` datastore args (design §3)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from typing import Any, overload

from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from services.domain.errors import BadRequest

Schema = dict[str, Any]
SECRET_KEYWORD = "x-dart-secret"
MAX_DESCRIPTION_CHARS = 16384
MAX_FREE_FORM_BYTES = 64 * 1024  # args, extra_data
MAX_DATA_BYTES = 512 * 1024  # an entity's whole data (a dataset's columns are the big legitimate case)
# jsonschema's messages repeat the offending value; a whole dict or a long string makes a useless error line.
MAX_MESSAGE_CHARS = 400


class SchemaValidationError(BadRequest, ValueError):
    """Data (or a declared schema) that a JSON schema refuses. `field` is the dot path of the failing field,
    e.g. `data.args.destination_s3_path` or `data.columns[0].name`, or None when no field can be named.

    It is a BadRequest so the API maps it to a 400 without a special case, and a ValueError for code that
    validates outside a request.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def default_and_validate(data: dict[str, Any], schema: Schema, root: str = "data") -> dict[str, Any]:
    """Return a new dict: `data` with the schema's defaults filled in, checked against the schema.

    Defaults go wherever the value is missing or null, recursively through `properties` and `items`. (The
    original filled only nulls, but its models serialised every absent field as null, so the two agree.) The
    validator is Draft 4 unless the schema declares another `$schema`; of several errors the most relevant
    one (jsonschema's best_match) is raised, naming its field as `root.path`.
    """
    filled: dict[str, Any] = apply_defaults(copy.deepcopy(data), schema)
    validator = validator_class(schema)(schema)
    error = best_match(validator.iter_errors(filled))
    if error is not None:
        raise _describe(error, schema, root)
    check_sizes(filled, root)
    return filled


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode())


def check_sizes(data: dict[str, Any], root: str = "data") -> None:
    """The caps on free-form fields, so no entity makes every list of its kind heavy (a 50 MB extra_data
    did): ``description`` at most 16,384 characters, ``args`` and ``extra_data`` 64 KiB of JSON each, and the
    whole of ``data`` 512 KiB."""
    description = data.get("description")
    if isinstance(description, str) and len(description) > MAX_DESCRIPTION_CHARS:
        raise SchemaValidationError(f"{root}.description: {len(description)} characters, at most "
                                    f"{MAX_DESCRIPTION_CHARS}", f"{root}.description")
    for name in ("args", "extra_data"):
        if data.get(name) is not None and (size := _json_bytes(data[name])) > MAX_FREE_FORM_BYTES:
            raise SchemaValidationError(f"{root}.{name}: {size} bytes of JSON, at most {MAX_FREE_FORM_BYTES}",
                                        f"{root}.{name}")
    if (size := _json_bytes(data)) > MAX_DATA_BYTES:
        raise SchemaValidationError(f"{root}: {size} bytes of JSON, at most {MAX_DATA_BYTES}", root)


def apply_defaults(instance: Any, schema: Any) -> Any:
    """Fill `default`s into `instance` in place where a value is missing or null; returns `instance`."""
    if not isinstance(schema, dict):
        return instance
    if isinstance(instance, dict):
        properties = schema.get("properties")
        if isinstance(properties, dict):
            for name, sub in properties.items():
                if not isinstance(sub, dict):
                    continue
                if instance.get(name) is None and "default" in sub:
                    instance[name] = copy.deepcopy(sub["default"])
                if name in instance:
                    instance[name] = apply_defaults(instance[name], sub)
    elif isinstance(instance, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for index, element in enumerate(instance):
                instance[index] = apply_defaults(element, items)
        elif isinstance(items, list):  # tuple form: one schema per position
            for index, sub in enumerate(items[: len(instance)]):
                instance[index] = apply_defaults(instance[index], sub)
    return instance


def validator_class(schema: Any) -> type[Validator]:
    """Draft 4 (the original's, so engines written for it behave the same) unless `$schema` names another
    draft. An unknown `$schema` is refused rather than guessed at: jsonschema would silently use its latest."""
    if not isinstance(schema, dict) or "$schema" not in schema:
        return Draft4Validator
    found: type[Validator] | None = validator_for(schema, default=None)  # type: ignore[arg-type]
    if found is None:
        raise SchemaValidationError(f"unknown $schema {schema['$schema']!r}", None)
    return found


def check_schema(schema: Any, field: str | None = None) -> None:
    """Check that a schema an engine (or trigger type) declares is itself a valid JSON schema for its draft,
    including that its regular expressions compile. `field` names it in the error, e.g.
    `data.options_json_schema`; without it the message is only the problem."""
    prefix = f"{field}: not a valid JSON schema: " if field else ""
    if not isinstance(schema, dict):
        raise SchemaValidationError(f"{prefix}expected an object, got {type(schema).__name__}", field)
    try:
        cls = validator_class(schema)
    except SchemaValidationError as exc:
        raise SchemaValidationError(f"{prefix}{exc.message}", field) from exc
    meta = _LENIENT_DRAFT4_META_SCHEMA if cls is Draft4Validator else cls.META_SCHEMA
    checker = validator_for(meta, default=cls)(meta, format_checker=cls.FORMAT_CHECKER)
    error = best_match(checker.iter_errors(schema))
    if error is not None:
        where = _dot_path(error.absolute_path, "")
        at = f" (at {where})" if where else ""
        raise SchemaValidationError(f"{prefix}{_clip(error.message)}{at}", field)
    _check_patterns(schema, prefix, field)


def _lenient_draft4_meta_schema() -> Schema:
    """Draft 4's metaschema without `minItems: 1` on string arrays. The original's own engines declare
    `"required": []`, which Draft 4 forbids on paper but its validators accept (later drafts allow it), and
    engines written for the original must still register."""
    meta: Schema = copy.deepcopy(dict(Draft4Validator.META_SCHEMA))
    meta["definitions"]["stringArray"].pop("minItems", None)
    return meta


_LENIENT_DRAFT4_META_SCHEMA = _lenient_draft4_meta_schema()


def secret_properties(options_schema: Schema | None) -> set[str]:
    """The top-level properties of an engine's options schema marked `x-dart-secret: true`."""
    properties = (options_schema or {}).get("properties")
    if not isinstance(properties, dict):
        return set()
    return {
        name for name, sub in properties.items() if isinstance(sub, dict) and sub.get(SECRET_KEYWORD) is True
    }


@overload
def split_secrets(
    args: dict[str, Any], options_schema: Schema | None
) -> tuple[dict[str, Any], dict[str, Any]]: ...
@overload
def split_secrets(args: None, options_schema: Schema | None) -> tuple[None, dict[str, Any]]: ...
def split_secrets(
    args: dict[str, Any] | None, options_schema: Schema | None
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Split datastore `args` into (args without secrets, {secret property: value}); `args` is left as is.

    Every secret property leaves the args, so nothing secret is ever appended to the log (design §3); a null
    secret has nothing to keep and is not returned.
    """
    if args is None:
        return None, {}
    names = secret_properties(options_schema)
    kept = {k: v for k, v in args.items() if k not in names}
    secrets = {k: v for k, v in args.items() if k in names and v is not None}
    return kept, secrets


# --------------------------------------------------------------------------------------------- describing


def _describe(error: ValidationError, schema: Schema, root: str) -> SchemaValidationError:
    field = _dot_path(error.absolute_path, root)
    if error.validator == "additionalProperties" and error.validator_value is False:
        unknown = _unknown_properties(error.instance, error.schema)
        if unknown:
            return SchemaValidationError(f"{field}: unknown field(s): {', '.join(unknown)}", field)
    if error.validator == "required":
        missing = _missing_property(error)
        if missing is not None:
            field = _join(field, missing)
            return SchemaValidationError(f"{field}: {missing!r} is a required property", field)
    if _is_secret(schema, error):
        # The message would quote the secret value; say only which rule failed.
        return SchemaValidationError(f"{field}: the value does not satisfy {error.validator!r}", field)
    return SchemaValidationError(f"{field}: {_clip(error.message)}", field)


def _unknown_properties(instance: Any, schema: Any) -> list[str]:
    if not isinstance(instance, dict) or not isinstance(schema, dict):
        return []
    known = schema.get("properties") or {}
    patterns = list((schema.get("patternProperties") or {}).keys())
    return [
        name
        for name in instance
        if name not in known and not any(re.search(pattern, name) for pattern in patterns)
    ]


def _missing_property(error: ValidationError) -> str | None:
    # jsonschema yields one `required` error per missing name but keeps the name only in its message.
    if not isinstance(error.instance, dict) or not isinstance(error.validator_value, list):
        return None
    for name in error.validator_value:
        if name not in error.instance and error.message == f"{name!r} is a required property":
            return str(name)
    return None


def _is_secret(schema: Schema, error: ValidationError) -> bool:
    """Whether the failing value is, or sits inside, a property marked `x-dart-secret`."""
    if isinstance(error.schema, dict) and error.schema.get(SECRET_KEYWORD):
        return True
    current: Any = schema
    for step in error.absolute_path:
        if not isinstance(current, dict):
            return False
        if isinstance(step, int):
            items = current.get("items")
            current = items[step] if isinstance(items, list) and step < len(items) else items
        else:
            properties = current.get("properties") or {}
            current = properties.get(step, current.get("additionalProperties"))
        if isinstance(current, dict) and current.get(SECRET_KEYWORD):
            return True
    return False


def _dot_path(path: Iterable[Any], root: str) -> str:
    text = root
    for step in path:
        text = f"{text}[{step}]" if isinstance(step, int) else _join(text, str(step))
    return text


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _clip(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE_CHARS else message[: MAX_MESSAGE_CHARS - 1] + "…"


def _check_patterns(schema: Any, prefix: str, field: str | None, where: str = "") -> None:
    """Compile every `pattern` and `patternProperties` key: a bad one would otherwise surface only later, as
    a crash while validating some entity, instead of as a refusal of the engine that declared it."""
    if isinstance(schema, list):
        for index, item in enumerate(schema):
            _check_patterns(item, prefix, field, f"{where}[{index}]")
        return
    if not isinstance(schema, dict):
        return
    regexes: list[tuple[str, Any]] = []
    if isinstance(schema.get("pattern"), str):
        regexes.append((_join(where, "pattern"), schema["pattern"]))
    if isinstance(schema.get("patternProperties"), dict):
        regexes += [(_join(where, "patternProperties"), key) for key in schema["patternProperties"]]
    for location, regex in regexes:
        try:
            re.compile(regex)
        except re.error as exc:
            raise SchemaValidationError(
                f"{prefix}{regex!r} is not a valid regex: {exc} (at {location})", field
            ) from exc
    for key, value in schema.items():
        # Values under these keywords are data, not schemas, and may hold keys named "pattern".
        if key not in ("enum", "const", "default", "examples") and isinstance(value, dict | list):
            _check_patterns(value, prefix, field, _join(where, key))
