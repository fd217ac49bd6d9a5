"""The open probes: ``/health`` (the process answers) and ``/ready`` (the store answers; projection lag)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import falcon

from events.checkpoints import all_checkpoints
from events.store import EventStore
from projections.base import Projection


class Health:
    """Liveness: the process answers."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


class Readiness:
    """Readiness: the store answers, and how far each async projection lags behind the head."""

    def __init__(self, store: EventStore, projections: Sequence[Projection]) -> None:
        self.store = store
        self.projections = projections

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            head = self.store.head_position()
            with self.store.engine.connect() as conn:
                checkpoints = all_checkpoints(conn)
        except Exception as exc:  # noqa: BLE001 - whatever the store's failure, a probe reports it, never raises
            resp.status = falcon.HTTP_503
            resp.media = {"ready": False, "store": f"unreachable: {type(exc).__name__}"}
            return
        lag: dict[str, Any] = {
            p.name: head - checkpoints.get(p.name, 0) for p in self.projections if p.mode == "async"
        }
        resp.media = {"ready": True, "store": "ok", "head_position": head, "projection_lag": lag}
