"""The event registry: one class per type name, payload checks that name every bad field, and upcasting of
old schema versions on read (stored rows never change)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from events.errors import DuplicateEventType, EventSchemaError, UnknownEventType
from events.registry import EventRegistry
from events.types import Event, ExpectedVersion, RawEvent, StreamAppend
from tests.support.sample_events import ItemAdded, NeverRegistered, make_registry
from tests.support.stores import raw_rows

# ------------------------------------------------------------------------------------------- registration


def test_a_second_class_under_the_same_type_name_is_refused() -> None:
    registry = make_registry()

    @dataclass(frozen=True)
    class ImpostorItemAdded(Event):
        type_name = "ItemAdded"
        item_id: str

    with pytest.raises(DuplicateEventType, match="ItemAdded"):
        registry.register(ImpostorItemAdded)
    assert registry.class_for("ItemAdded") is ItemAdded


def test_registering_the_same_class_again_is_harmless() -> None:
    registry = make_registry()

    assert registry.register(ItemAdded) is ItemAdded
    assert registry.class_for("ItemAdded") is ItemAdded
    assert registry.names() == ["CartCheckedOut", "ItemAdded", "ItemRemoved"]


def test_a_class_without_a_type_name_is_refused() -> None:
    @dataclass(frozen=True)
    class Nameless(Event):
        value: int

    with pytest.raises(DuplicateEventType):
        EventRegistry().register(Nameless)


def test_a_second_upcaster_for_the_same_version_is_refused() -> None:
    registry = EventRegistry()
    registry.register_upcaster("OrderPlaced", 1, lambda d: d)

    with pytest.raises(DuplicateEventType):
        registry.register_upcaster("OrderPlaced", 1, lambda d: d)


def test_unknown_type_raises_unknown_event_type_everywhere() -> None:
    registry = make_registry()

    for call in (
        lambda: registry.class_for("ItemTeleported"),
        lambda: registry.current_version("ItemTeleported"),
        lambda: registry.validate("ItemTeleported", {}),
        lambda: registry.serialize(RawEvent("ItemTeleported", {})),
        lambda: registry.decode("ItemTeleported", {}),
    ):
        with pytest.raises(UnknownEventType) as caught:
            call()
        assert caught.value.type_name == "ItemTeleported"
    with pytest.raises(UnknownEventType) as caught:
        registry.serialize(NeverRegistered(value=1))
    assert caught.value.type_name == "NeverRegistered"
    assert "ItemTeleported" not in registry


# ------------------------------------------------------------------------------------------- validation


def test_validate_names_every_bad_field_at_once() -> None:
    registry = make_registry()
    payload = {"item_id": 5, "price": "cheap", "tags": ["a", None], "colour": "red", "size": 3}

    with pytest.raises(EventSchemaError) as caught:
        registry.validate("ItemAdded", payload)

    problems = caught.value.problems
    assert set(problems) == {"item_id", "quantity", "price", "tags", "colour", "size"}
    assert problems["quantity"] == "missing"
    assert problems["colour"] == problems["size"] == "unknown field"
    assert "item 1" in problems["tags"]
    message = str(caught.value)
    assert "ItemAdded" in message
    assert all(name in message for name in problems)


@pytest.mark.parametrize(
    "payload",
    [
        {"item_id": "a", "quantity": 1},
        {"item_id": "a", "quantity": 1, "price": 2, "tags": [], "note": None},
        {"item_id": "a", "quantity": -4, "price": 2.5, "tags": ["x", "y"], "note": "n"},
    ],
)
def test_validate_accepts_payloads_that_fit(payload: dict[str, Any]) -> None:
    make_registry().validate("ItemAdded", payload)  # raises if the check is wrong


@pytest.mark.parametrize(
    "type_name, payload, field_name",
    [
        ("ItemAdded", {"item_id": "a", "quantity": False}, "quantity"),
        ("ItemAdded", {"item_id": "a", "quantity": 1.5}, "quantity"),
        ("ItemAdded", {"item_id": "a", "quantity": 1, "price": True}, "price"),
        ("ItemAdded", {"item_id": "a", "quantity": 1, "tags": "x"}, "tags"),
        ("ItemAdded", {"item_id": None, "quantity": 1}, "item_id"),
        ("CartCheckedOut", {"total": 1.0, "express": 1}, "express"),
        ("CartCheckedOut", {"total": 1.0, "details": []}, "details"),
        ("CartCheckedOut", {"total": 1.0, "details": {1: "x"}}, "details"),
    ],
)
def test_validate_refuses_values_of_the_wrong_json_type(
    type_name: str, payload: dict[str, Any], field_name: str
) -> None:
    with pytest.raises(EventSchemaError) as caught:
        make_registry().validate(type_name, payload)
    assert set(caught.value.problems) == {field_name}


def test_validate_refuses_a_payload_that_is_not_an_object() -> None:
    with pytest.raises(EventSchemaError) as caught:
        make_registry().validate("ItemAdded", ["item_id", "quantity"])
    assert "<payload>" in caught.value.problems


def test_a_class_with_a_field_that_is_not_json_native_cannot_be_registered() -> None:
    @dataclass(frozen=True)
    class HasASet(Event):
        type_name = "HasASet"
        members: set[str] = field(default_factory=set)

    with pytest.raises(TypeError):
        EventRegistry().register(HasASet)
    assert "HasASet" not in EventRegistry()


# -------------------------------------------------------------------------------------------- upcasting
# One event type, OrderPlaced, at three schema versions:
#   v1 {customer, amount}                       amount in whole euros
#   v2 {customer_name, amount, currency}        customer renamed, currency added
#   v3 {customer_name, amount_cents, currency}  amount in cents


@dataclass(frozen=True)
class OrderPlacedV1(Event):
    type_name = "OrderPlaced"
    schema_version = 1
    customer: str
    amount: int


@dataclass(frozen=True)
class OrderPlacedV2(Event):
    type_name = "OrderPlaced"
    schema_version = 2
    customer_name: str
    amount: int
    currency: str


@dataclass(frozen=True)
class OrderPlacedV3(Event):
    type_name = "OrderPlaced"
    schema_version = 3
    customer_name: str
    amount_cents: int
    currency: str


def v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    data["customer_name"] = data.pop("customer")
    data["currency"] = "EUR"
    return data


def v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    data["amount_cents"] = data.pop("amount") * 100
    return data


def registry_at(version: int, upcasters: bool = True) -> EventRegistry:
    registry = EventRegistry()
    registry.register({1: OrderPlacedV1, 2: OrderPlacedV2, 3: OrderPlacedV3}[version])
    if upcasters:
        for from_version, step in ((1, v1_to_v2), (2, v2_to_v3))[: version - 1]:
            registry.register_upcaster("OrderPlaced", from_version, step)
    return registry


def stored_rows(store) -> list[tuple[int, dict[str, Any]]]:
    rows = raw_rows(store, "SELECT schema_version, data FROM events ORDER BY global_position")
    return [(sv, json.loads(data) if isinstance(data, str) else data) for sv, data in rows]


def test_v1_events_read_through_a_v2_registry_come_back_upcast_while_the_stored_rows_stay_v1(
    sqlite_url: str, make_store
) -> None:
    old = make_store(sqlite_url, registry_at(1))
    written = old.append(
        StreamAppend("order-1", ExpectedVersion.NO_STREAM, [OrderPlacedV1(customer="ada", amount=12)]),
        StreamAppend("order-2", ExpectedVersion.NO_STREAM, [OrderPlacedV1(customer="bob", amount=3)]),
    )
    assert [e.schema_version for e in written] == [1, 1]

    new = make_store(sqlite_url, registry_at(2))
    read = new.read_all()

    assert [(e.schema_version, e.data) for e in read] == [
        (2, {"customer_name": "ada", "amount": 12, "currency": "EUR"}),
        (2, {"customer_name": "bob", "amount": 3, "currency": "EUR"}),
    ]
    assert new.registry.decode("OrderPlaced", read[0].data) == OrderPlacedV2("ada", 12, "EUR")
    assert [e.event_id for e in read] == [e.event_id for e in written]
    assert new.read_stream("order-1") == read[:1]
    assert new.read_by_ids([written[1].event_id]) == read[1:]
    assert list(new.iter_category("order", new.head_position())) == read
    # The log itself is untouched: still v1 rows, and the old registry still reads them as v1.
    assert stored_rows(new) == [(1, {"customer": "ada", "amount": 12}), (1, {"customer": "bob", "amount": 3})]
    assert old.read_all() == written


def test_a_v1_to_v2_to_v3_chain_upcasts_each_stored_version_the_right_number_of_steps(
    sqlite_url: str, make_store
) -> None:
    make_store(sqlite_url, registry_at(1)).append(
        StreamAppend("order-1", ExpectedVersion.NO_STREAM, [OrderPlacedV1(customer="ada", amount=12)])
    )
    make_store(sqlite_url, registry_at(2)).append(
        StreamAppend("order-1", 1, [OrderPlacedV2(customer_name="ada", amount=5, currency="USD")])
    )
    v3 = make_store(sqlite_url, registry_at(3))
    v3.append(
        StreamAppend("order-1", 2, [OrderPlacedV3(customer_name="ada", amount_cents=99, currency="GBP")])
    )

    read = v3.read_stream("order-1")

    assert [(e.schema_version, e.data) for e in read] == [
        (3, {"customer_name": "ada", "amount_cents": 1200, "currency": "EUR"}),
        (3, {"customer_name": "ada", "amount_cents": 500, "currency": "USD"}),
        (3, {"customer_name": "ada", "amount_cents": 99, "currency": "GBP"}),
    ]
    assert [v3.registry.decode(e.type, e.data) for e in read][0] == OrderPlacedV3("ada", 1200, "EUR")
    assert stored_rows(v3) == [
        (1, {"customer": "ada", "amount": 12}),
        (2, {"customer_name": "ada", "amount": 5, "currency": "USD"}),
        (3, {"customer_name": "ada", "amount_cents": 99, "currency": "GBP"}),
    ]


def test_a_missing_upcaster_raises_event_schema_error_on_read(sqlite_url: str, make_store) -> None:
    make_store(sqlite_url, registry_at(1)).append(
        StreamAppend("order-1", ExpectedVersion.NO_STREAM, [OrderPlacedV1(customer="ada", amount=12)])
    )
    no_steps = make_store(sqlite_url, registry_at(2, upcasters=False))

    with pytest.raises(EventSchemaError) as caught:
        no_steps.read_stream("order-1")

    assert caught.value.type_name == "OrderPlaced"
    assert "schema_version" in caught.value.problems
    assert "v1" in caught.value.problems["schema_version"]


def test_a_gap_in_the_upcaster_chain_raises_event_schema_error_naming_the_missing_step() -> None:
    registry = EventRegistry()
    registry.register(OrderPlacedV3)
    registry.register_upcaster("OrderPlaced", 1, v1_to_v2)  # no v2 -> v3

    with pytest.raises(EventSchemaError) as caught:
        registry.upcast("OrderPlaced", 1, {"customer": "ada", "amount": 1})

    assert "v2" in caught.value.problems["schema_version"]


def test_upcast_leaves_the_given_payload_and_current_versions_alone() -> None:
    registry = registry_at(2)
    stored = {"customer": "ada", "amount": 12}

    upcast = registry.upcast("OrderPlaced", 1, stored)
    assert upcast == (2, {"customer_name": "ada", "amount": 12, "currency": "EUR"})
    assert stored == {"customer": "ada", "amount": 12}
    current = {"customer_name": "ada", "amount": 1, "currency": "EUR"}
    assert registry.upcast("OrderPlaced", 2, current) == (2, current)
