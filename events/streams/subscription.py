"""Events of subscription streams (`subscription-<id>`)."""

from __future__ import annotations

from dataclasses import dataclass

from events.streams.entity import EntityCreated, EntityDeleted, EntityUpdated

CATEGORY = "subscription"


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


EVENTS = (SubscriptionCreated, SubscriptionUpdated, SubscriptionDeleted)
