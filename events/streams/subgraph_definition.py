"""Events of subgraph definition streams (`subgraph_definition-<id>`): an engine's stored UI recipes
(reference §3.11), created with the engine they belong to, replaced when the engine registers them again,
deleted with the engine or on their own."""

from __future__ import annotations

from dataclasses import dataclass

from events.streams.entity import EntityCreated, EntityDeleted, EntityUpdated

CATEGORY = "subgraph_definition"


@dataclass(frozen=True)
class SubgraphDefinitionCreated(EntityCreated):
    type_name = "SubgraphDefinitionCreated"
    category = CATEGORY


@dataclass(frozen=True)
class SubgraphDefinitionUpdated(EntityUpdated):
    type_name = "SubgraphDefinitionUpdated"
    category = CATEGORY


@dataclass(frozen=True)
class SubgraphDefinitionDeleted(EntityDeleted):
    type_name = "SubgraphDefinitionDeleted"
    category = CATEGORY


EVENTS = (SubgraphDefinitionCreated, SubgraphDefinitionUpdated, SubgraphDefinitionDeleted)
