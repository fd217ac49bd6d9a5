"""Subscription element endpoints (reference §5.7, §9.3): element stats, the elements of a subscription, the
elements assigned to a consume_subscription action, and one element's whole life from the log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import falcon

from events.streams.subscription import ELEMENT_EVENTS, files_stream
from projections.reads import iso
from services.api.listing import int_param
from services.commands import elements
from services.commands.entities import EntityService
from services.domain.errors import BadRequest, NotFound

PAGE_LIMIT = 10000
_ELEMENT_TYPES = {cls.type_name: cls for cls in ELEMENT_EVENTS}
_STATE_AFTER = {"SubscriptionElementsAdded": "UNCONSUMED", "SubscriptionBatchReserved": "RESERVED",
                "SubscriptionElementsAssigned": "ASSIGNED", "SubscriptionElementsConsumed": "CONSUMED",
                "SubscriptionElementsReleased": "UNCONSUMED"}


def _paged(req: falcon.Request) -> tuple[int, int]:
    return int_param(req, "limit", PAGE_LIMIT, 0, PAGE_LIMIT), int_param(req, "offset", 0)


class ElementStats:
    """``GET /subscription/{id}/element_stats``: ``[{state, count, file_size_sum}]`` per state present."""

    def __init__(self, service: EntityService) -> None:
        self.service = service

    def on_get(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        self.service.reader.get("subscription", entity_id)
        resp.media = {"results": elements.stats(self.service.store, entity_id)}


class SubscriptionElements:
    """``GET /subscription/{id}/elements?state=&processed_after_s3_path=&limit=&offset=``, by s3_path."""

    def __init__(self, service: EntityService) -> None:
        self.service = service

    def on_get(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        self.service.reader.get("subscription", entity_id)
        t = elements.ELEMENTS
        where = [t.c.subscription_id == entity_id]
        state = req.get_param("state")
        if state:
            if state not in elements.STATES:
                raise BadRequest(f"state: must be one of {', '.join(elements.STATES)}, not {state!r}")
            where.append(t.c.state == state)
        after = req.get_param("processed_after_s3_path")
        if after:
            marker = elements.element(self.service.store, entity_id, after)
            if marker is None:
                raise BadRequest(f"processed_after_s3_path: {after!r} is not an element of subscription {entity_id}")
            if marker.processed is None:
                raise BadRequest(f"processed_after_s3_path: {after!r} has not been processed")
            where += [t.c.processed >= marker.processed, t.c.s3_path > after]
        limit, offset = _paged(req)
        rows = elements.page(self.service.store, where, limit, offset)
        resp.media = {"results": [elements.element_envelope(r) for r in rows], "limit": limit, "offset": offset}


class ActionElements:
    """``GET /action/{id}/subscription/elements``: what a consume_subscription action was given."""

    def __init__(self, service: EntityService) -> None:
        self.service = service

    def on_get(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        self.service.reader.get("action", entity_id)
        limit, offset = _paged(req)
        rows = elements.page(self.service.store, [elements.ELEMENTS.c.action_id == entity_id], limit, offset)
        resp.media = {"results": [elements.element_envelope(r) for r in rows], "limit": limit, "offset": offset}


class ElementHistory:
    """``GET /subscription/{id}/element_history?s3_path=``: every event that changed one element, from the
    log: added, reserved (batch), assigned (action), consumed or released."""

    def __init__(self, service: EntityService) -> None:
        self.service = service

    def on_get(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        self.service.reader.get("subscription", entity_id)
        path = req.get_param("s3_path")
        if not path:
            raise BadRequest("s3_path: required")
        if elements.element(self.service.store, entity_id, path) is None:
            raise NotFound(f"subscription {entity_id} element", path)
        found: list[dict[str, Any]] = []
        for event in self._element_events(entity_id):
            cls = _ELEMENT_TYPES[event.type]
            if not path.startswith(event.data.get("prefix", "")):
                continue
            decoded: Any = cls(**event.data)
            if path not in decoded.paths():
                continue
            entry: dict[str, Any] = {"type": event.type, "state": _STATE_AFTER[event.type],
                                     "stream_version": event.stream_version,
                                     "global_position": event.global_position,
                                     "recorded_at": iso(event.recorded_at), "actor": event.metadata.get("actor")}
            for name in ("source", "batch_id", "trigger_id", "action_id"):
                if name in event.data:
                    entry[name] = event.data[name]
            found.append(entry)
        resp.media = {"results": found}

    def _element_events(self, subscription_id: str) -> Iterator[Any]:
        """The subscription's element events (its own stream and its files stream), in log order, a page at a
        time so memory stays bounded however long the subscription has run."""
        store = self.service.store
        streams = [f"subscription-{subscription_id}", files_stream(subscription_id)]
        after = 0
        while True:
            page = store.read_all(after, 500, types=list(_ELEMENT_TYPES), streams=streams)
            yield from page
            if len(page) < 500:
                return
            after = page[-1].global_position
