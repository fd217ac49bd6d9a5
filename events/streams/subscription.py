"""Events of subscription streams (`subscription-<id>`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from events.streams.entity import EntityCreated, EntityDeleted, EntityUpdated, State
from events.types import Event

CATEGORY = "subscription"
# New files are recorded on their own stream, ``subscription_files-<id>``: a subscription receiving files all the
# time must not move the version that guards the decisions on its elements (reserve, assign, settle) and on the
# subscription itself (a user's PUT with version_id), or those decisions would lose every race to a new file.
FILES_CATEGORY = "subscription_files"


@dataclass(frozen=True)
class SubscriptionCreated(EntityCreated):
    type_name = "SubscriptionCreated"
    category = CATEGORY


@dataclass(frozen=True)
class SubscriptionUpdated(EntityUpdated):
    type_name = "SubscriptionUpdated"
    category = CATEGORY


@dataclass(frozen=True)
class SubscriptionDeleted(EntityDeleted):
    type_name = "SubscriptionDeleted"
    category = CATEGORY


@dataclass(frozen=True)
class SubscriptionGenerationStarted(Event):
    """QUEUED -> GENERATING: the subscriptions worker began listing the dataset's S3 location. ``range`` is the
    resolved range (root, start, end, regex, date tokens replaced) that the listing and every later S3
    notification are matched against."""

    type_name = "SubscriptionGenerationStarted"
    category = CATEGORY
    changes: dict[str, Any]
    range: dict[str, Any]

    def evolve(self, state: State) -> State:
        return None if state is None else {**state, **self.changes}


@dataclass(frozen=True)
class SubscriptionActivated(EntityUpdated):
    """GENERATING -> ACTIVE: the full listing is recorded (``initial_active_time``)."""

    type_name = "SubscriptionActivated"
    category = CATEGORY


@dataclass(frozen=True)
class SubscriptionGenerationFailed(Event):
    """GENERATING -> FAILED, with the reason (kept out of the subscription's data, which has no such field)."""

    type_name = "SubscriptionGenerationFailed"
    category = CATEGORY
    changes: dict[str, Any]
    reason: str

    def evolve(self, state: State) -> State:
        return None if state is None else {**state, **self.changes}


# Element events. An element is a file of the subscription, (subscription, s3_path); its life is
# UNCONSUMED -> RESERVED (a batch) -> ASSIGNED (an action) -> CONSUMED, or back to UNCONSUMED when its action
# fails. Each event names its files as suffixes of one ``prefix`` and holds at most ~1,000 of them, so events
# stay small however large the listing or batch (design.md §3). They change no field of the subscription's
# data but do move its stream's version, which guards every decision about its elements.


@dataclass(frozen=True)
class _ElementEvent(Event):
    def evolve(self, state: State) -> State:
        return state

    def paths(self) -> list[str]:
        raise NotImplementedError


@dataclass(frozen=True)
class SubscriptionElementsAdded(_ElementEvent):
    """New UNCONSUMED files: ``elements`` are ``[suffix, size]``. ``source`` is ``listing`` (generation, with
    ``listed_through``, the last key S3 returned, where a resumed listing continues, and ``more``),
    ``gap`` (the listing again after activation) or ``notification`` (an S3 ObjectCreated event)."""

    type_name = "SubscriptionElementsAdded"
    category = FILES_CATEGORY
    prefix: str
    elements: list[list[Any]]
    source: str
    listed_through: str | None = None
    more: bool = False

    def paths(self) -> list[str]:
        return [self.prefix + e[0] for e in self.elements]


@dataclass(frozen=True)
class _NamedFiles(_ElementEvent):
    """Files named as suffixes of one prefix."""

    prefix: str
    suffixes: list[str]

    def paths(self) -> list[str]:
        return [self.prefix + s for s in self.suffixes]


@dataclass(frozen=True, kw_only=True)
class SubscriptionBatchReserved(_NamedFiles):
    """A subscription_batch trigger reserved these UNCONSUMED files as (part of) batch ``batch_id``."""

    type_name = "SubscriptionBatchReserved"
    category = CATEGORY
    trigger_id: str
    batch_id: str


@dataclass(frozen=True, kw_only=True)
class SubscriptionElementsAssigned(_NamedFiles):
    """These files were handed to a consume_subscription action (a batch's RESERVED files, or every
    unbatched UNCONSUMED file when the subscription has no batch trigger)."""

    type_name = "SubscriptionElementsAssigned"
    category = CATEGORY
    action_id: str
    batch_id: str | None


@dataclass(frozen=True, kw_only=True)
class SubscriptionElementsConsumed(_NamedFiles):
    """The action's files are CONSUMED (its engine checked in SUCCESS, or consume_subscription_state SUCCESS)."""

    type_name = "SubscriptionElementsConsumed"
    category = CATEGORY
    action_id: str


@dataclass(frozen=True, kw_only=True)
class SubscriptionElementsReleased(_NamedFiles):
    """The action failed: its files are UNCONSUMED again (keeping their batch and action, as the original)."""

    type_name = "SubscriptionElementsReleased"
    category = CATEGORY
    action_id: str


ELEMENT_EVENTS = (SubscriptionElementsAdded, SubscriptionBatchReserved, SubscriptionElementsAssigned,
                  SubscriptionElementsConsumed, SubscriptionElementsReleased)

EVENTS = (SubscriptionCreated, SubscriptionUpdated, SubscriptionDeleted, SubscriptionGenerationStarted,
          SubscriptionActivated, SubscriptionGenerationFailed, *ELEMENT_EVENTS[1:])
FILE_EVENTS = (SubscriptionElementsAdded,)  # the subscription_files-<id> streams: no entity read model of their own


def files_stream(subscription_id: str) -> str:
    return f"{FILES_CATEGORY}-{subscription_id}"
