"""Events of trigger streams (`trigger-<id>`)."""

from __future__ import annotations

from dataclasses import dataclass

from events.streams.entity import EntityCreated, EntityDeleted, EntityNoted, EntityUpdated

CATEGORY = "trigger"


@dataclass(frozen=True)
class TriggerCreated(EntityCreated):
    type_name = "TriggerCreated"
    category = CATEGORY


@dataclass(frozen=True)
class TriggerUpdated(EntityUpdated):
    type_name = "TriggerUpdated"
    category = CATEGORY


@dataclass(frozen=True)
class TriggerDeleted(EntityDeleted):
    type_name = "TriggerDeleted"
    category = CATEGORY


@dataclass(frozen=True)
class TriggerFired(EntityNoted):
    """The trigger fired (note: fire key, workflows started)."""

    type_name = "TriggerFired"
    category = CATEGORY


@dataclass(frozen=True)
class TriggerFireSkipped(EntityNoted):
    """A fire met a workflow's concurrency limit or an inactive workflow, and started nothing for it."""

    type_name = "TriggerFireSkipped"
    category = CATEGORY


@dataclass(frozen=True)
class TriggerInputRecorded(EntityUpdated):
    """A super ALL trigger recorded one of its inputs (extra_data.completed_trigger_id_times)."""

    type_name = "TriggerInputRecorded"
    category = CATEGORY


EVENTS = (
    TriggerCreated,
    TriggerUpdated,
    TriggerDeleted,
    TriggerFired,
    TriggerFireSkipped,
    TriggerInputRecorded,
)
