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


@dataclass(frozen=True)
class TriggerFireBuffered(EntityUpdated):
    """A scheduled fire met its workflow's concurrency under the buffer_one overlap policy: its run starts when
    a run of the workflow ends (changes: last_buffered, per workflow {fired_event_id, scheduled_time, user_id})."""

    type_name = "TriggerFireBuffered"
    category = CATEGORY


@dataclass(frozen=True)
class TriggerPaused(EntityUpdated):
    """An operator paused a scheduled trigger (changes: paused, pause_note); ``at``: the time on dart's clock."""

    type_name = "TriggerPaused"
    category = CATEGORY
    at: str = ""


@dataclass(frozen=True)
class TriggerUnpaused(EntityUpdated):
    """An operator resumed a scheduled trigger; it fires again from its first scheduled time after ``at``."""

    type_name = "TriggerUnpaused"
    category = CATEGORY
    at: str = ""


@dataclass(frozen=True)
class TriggerBackfilled(EntityNoted):
    """An operator backfilled a scheduled trigger (note: start, end, overlap_policy, scheduled_times); the fires
    follow, each keyed by (trigger, scheduled time) as the schedule's own."""

    type_name = "TriggerBackfilled"
    category = CATEGORY


EVENTS = (
    TriggerCreated,
    TriggerUpdated,
    TriggerDeleted,
    TriggerFired,
    TriggerFireSkipped,
    TriggerInputRecorded,
    TriggerFireBuffered,
    TriggerPaused,
    TriggerUnpaused,
    TriggerBackfilled,
)
