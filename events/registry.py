"""The event type registry: maps stable type names to event classes, checks payloads, upcasts old versions.

A payload check is compiled once per class from its dataclass annotations, so checking an event costs a few
microseconds on the append path (marshmallow, tried first, cost a tenth of a single append's budget).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any

from events.errors import DuplicateEventType, EventSchemaError, UnknownEventType
from events.types import Event, RawEvent

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
Check = Callable[[Any], str | None]

_MISSING = dataclasses.MISSING


def _check_for(annotation: Any) -> Check:
    """A function returning None when a value fits ``annotation``, else a short reason."""
    if annotation is Any:
        return lambda v: None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [_check_for(a) for a in typing.get_args(annotation)]

        def check_union(v: Any) -> str | None:
            reasons = [c(v) for c in options]
            return None if any(r is None for r in reasons) else f"expected {_name(annotation)}"

        return check_union
    if annotation is type(None):
        return lambda v: None if v is None else "expected null"
    if origin is list or annotation is list:
        args = typing.get_args(annotation)
        item = _check_for(args[0]) if args else (lambda v: None)

        def check_list(v: Any) -> str | None:
            if not isinstance(v, list):
                return "expected a list"
            for i, x in enumerate(v):
                reason = item(x)
                if reason:
                    return f"item {i}: {reason}"
            return None

        return check_list
    if origin is dict or annotation is dict:
        args = typing.get_args(annotation)
        value = _check_for(args[1]) if args else (lambda v: None)

        def check_dict(v: Any) -> str | None:
            if not isinstance(v, dict):
                return "expected an object"
            for k, x in v.items():
                if not isinstance(k, str):
                    return "keys must be strings"
                reason = value(x)
                if reason:
                    return f"{k}: {reason}"
            return None

        def check_dict_of_any(v: Any) -> str | None:
            if not isinstance(v, dict):
                return "expected an object"
            for k in v:
                if not isinstance(k, str):
                    return "keys must be strings"
            return None

        return check_dict_of_any if args and args[1] is Any else check_dict
    if annotation is bool:
        return lambda v: None if isinstance(v, bool) else "expected a boolean"
    if annotation is int:
        return lambda v: None if isinstance(v, int) and not isinstance(v, bool) else "expected an integer"
    if annotation is float:
        return (
            lambda v: None
            if isinstance(v, (int, float)) and not isinstance(v, bool)
            else "expected a number"
        )
    if annotation is str:
        return lambda v: None if isinstance(v, str) else "expected a string"
    raise TypeError(f"event payload fields must be JSON-native, not {annotation!r}")


# Exact-type tests for the fast path of typed events: an instance of a subclass (a str enum, say) fails them and
# takes the slow path, which accepts it as the full check always has.
_EXACT = {
    str: "type({v}) is str",
    int: "type({v}) is int",
    bool: "type({v}) is bool",
    float: "(type({v}) is float or type({v}) is int)",
    type(None): "{v} is None",
}


def _scalar_test(annotation: Any, var: str) -> str | None:
    """An expression true only if ``var`` is exactly of a JSON scalar annotation (or a union of them)."""
    if annotation in _EXACT:
        return _EXACT[annotation].format(v=var)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if all(a in _EXACT for a in options):
            return "(" + " or ".join(_EXACT[a].format(v=var) for a in options) + ")"
    return None


def _fast_lines(annotation: Any, var: str, check: Check, helpers: dict[str, Any]) -> list[str]:
    """Statements that return None unless ``var`` fits ``annotation``: inline type tests for scalars and
    lists or string-keyed objects of scalars, the compiled check for anything else."""
    if annotation is Any:
        return []
    test = _scalar_test(annotation, var)
    if test is not None:
        return [f"if not {test}: return None"]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list and args:
        item = "x_" + var
        if args[0] is Any:
            return [f"if type({var}) is not list: return None"]
        if (test := _scalar_test(args[0], item)) is not None:
            return [f"if type({var}) is not list: return None",
                    f"for {item} in {var}:",
                    f"    if not {test}: return None"]
    if origin is dict and len(args) == 2 and args[0] is str:
        key, item = "k_" + var, "x_" + var
        if args[1] is Any:
            return [f"if type({var}) is not dict: return None",
                    f"for {key} in {var}:",
                    f"    if type({key}) is not str: return None"]
        if (test := _scalar_test(args[1], item)) is not None:
            return [f"if type({var}) is not dict: return None",
                    f"for {key}, {item} in {var}.items():",
                    f"    if type({key}) is not str or not {test}: return None"]
    name = f"_check_{var}"
    helpers[name] = check
    return [f"if {name}({var}) is not None: return None"]


def _compile_payload(
    cls: type, names: list[str], hints: dict[str, Any], checks: dict[str, Check]
) -> Callable[[Any], dict[str, Any] | None]:
    """``f(event)``: the event's payload if every field fits its annotation, else None.

    One generated function per class reads the fields and tests them in one pass: a typed event cannot lack a
    field or carry an unknown one (its constructor refuses both), so only the value types need testing, and
    for the common annotations that is an inline ``type(x) is ...``.
    """
    helpers: dict[str, Any] = {}
    variables = [f"v{i}" for i in range(len(names))]
    body = ["def payload_if_valid(event):"]
    for name, var in zip(names, variables):
        body.append(f"    {var} = event.{name}")
        body += ["    " + line for line in _fast_lines(hints[name], var, checks[name], helpers)]
    body.append("    return {" + ", ".join(f"{n!r}: {v}" for n, v in zip(names, variables)) + "}")
    namespace = dict(helpers)
    exec("\n".join(body), namespace)  # noqa: S102 - source built from the class's own field names
    fn = namespace["payload_if_valid"]
    fn.__qualname__ = f"{cls.__qualname__}.payload_if_valid"
    return fn


def _name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


class _TypeEntry:
    __slots__ = ("checks", "cls", "known", "payload_if_valid", "required")

    def __init__(self, cls: type[Event]) -> None:
        hints = typing.get_type_hints(cls)
        fields = dataclasses.fields(cls)
        self.cls = cls
        self.checks = {f.name: _check_for(hints[f.name]) for f in fields}
        self.required = {
            f.name for f in fields if f.default is _MISSING and f.default_factory is _MISSING
        }
        self.known = set(self.checks)
        self.payload_if_valid = _compile_payload(cls, [f.name for f in fields], hints, self.checks)


class EventRegistry:
    """Type name -> current event class, plus upcasters from each older schema version to the next."""

    def __init__(self) -> None:
        self._types: dict[str, _TypeEntry] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, cls: type[Event]) -> type[Event]:
        if not cls.type_name:
            raise DuplicateEventType(f"{cls.__name__} has no type_name")
        existing = self._types.get(cls.type_name)
        if existing is not None and existing.cls is not cls:
            raise DuplicateEventType(
                f"event type {cls.type_name!r} is already registered to {existing.cls.__qualname__}"
            )
        self._types[cls.type_name] = _TypeEntry(cls)
        return cls

    def register_upcaster(self, type_name: str, from_version: int, upcaster: Upcaster) -> None:
        """Register the step that turns a ``from_version`` payload into a ``from_version + 1`` payload."""
        key = (type_name, from_version)
        if key in self._upcasters:
            raise DuplicateEventType(f"an upcaster for {type_name} v{from_version} already exists")
        self._upcasters[key] = upcaster

    def upcaster(self, type_name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        def decorate(fn: Upcaster) -> Upcaster:
            self.register_upcaster(type_name, from_version, fn)
            return fn

        return decorate

    def __contains__(self, type_name: str) -> bool:
        return type_name in self._types

    def names(self) -> list[str]:
        return sorted(self._types)

    def class_for(self, type_name: str) -> type[Event]:
        entry = self._types.get(type_name)
        if entry is None:
            raise UnknownEventType(type_name)
        return entry.cls

    def current_version(self, type_name: str) -> int:
        return self.class_for(type_name).schema_version

    def current_version_or(self, type_name: str, default: int) -> int:
        entry = self._types.get(type_name)
        return default if entry is None else entry.cls.schema_version

    def validate(self, type_name: str, data: Any) -> None:
        """Raise EventSchemaError naming every field of ``data`` that does not fit the type."""
        entry = self._types.get(type_name)
        if entry is None:
            raise UnknownEventType(type_name)
        if not isinstance(data, dict):
            raise EventSchemaError(type_name, {"<payload>": "expected an object"})
        problems: dict[str, str] = {}
        for name in entry.required - data.keys():
            problems[name] = "missing"
        for name, value in data.items():
            check = entry.checks.get(name)
            if check is None:
                problems[name] = "unknown field"
                continue
            reason = check(value)
            if reason:
                problems[name] = reason
        if problems:
            raise EventSchemaError(type_name, problems)

    def serialize(self, event: Event | RawEvent) -> tuple[str, int, dict[str, Any]]:
        """The stored form of an event: (type name, schema version, checked payload)."""
        if isinstance(event, RawEvent):
            self.validate(event.type_name, event.data)
            return event.type_name, self._types[event.type_name].cls.schema_version, event.data
        cls = type(event)
        entry = self._types.get(cls.type_name)
        if entry is None or entry.cls is not cls:
            raise UnknownEventType(cls.type_name or cls.__name__)
        data = entry.payload_if_valid(event)
        if data is None:  # some field failed the quick test: the full check names every problem (or accepts it)
            data = event.payload()
            self.validate(cls.type_name, data)
        return cls.type_name, cls.schema_version, data

    def upcast(self, type_name: str, schema_version: int, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Bring a stored payload up to the current schema version of its type; stored rows never change."""
        entry = self._types.get(type_name)
        if entry is None:
            return schema_version, data
        target = entry.cls.schema_version
        while schema_version < target:
            step = self._upcasters.get((type_name, schema_version))
            if step is None:
                raise EventSchemaError(
                    type_name, {"schema_version": f"no upcaster from v{schema_version}"}
                )
            data = step(dict(data))
            schema_version += 1
        return schema_version, data

    def decode(self, type_name: str, data: dict[str, Any]) -> Event:
        """The typed event for an already-upcast payload."""
        return self.class_for(type_name)(**data)
