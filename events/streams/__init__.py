"""Event types, one module per stream category; ``default_registry()`` registers every one of them."""

from __future__ import annotations

from events.registry import EventRegistry
from events.streams import (
    action,
    api_key,
    dataset,
    datastore,
    datastore_secrets,
    engine,
    event,
    name_claim,
    subgraph_definition,
    subscription,
    trigger,
    workflow,
    workflow_instance,
)

CATEGORY_MODULES = (
    engine, dataset, datastore, action, workflow, workflow_instance, trigger, subscription, event, api_key,
    subgraph_definition,
)
CATEGORIES = tuple(m.CATEGORY for m in CATEGORY_MODULES)


def default_registry() -> EventRegistry:
    registry = EventRegistry()
    for module in CATEGORY_MODULES:
        for cls in module.EVENTS:
            registry.register(cls)
    for cls in (*name_claim.EVENTS, *subscription.FILE_EVENTS, *datastore_secrets.EVENTS):
        registry.register(cls)
    return registry
