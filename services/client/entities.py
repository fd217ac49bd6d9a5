"""One entity kind over the REST API: create, get (``as_of``), list as an iterator over pages (``filters``,
``order_by``), replace, JSON Patch, delete and history, each answer typed (services/client/models.py)."""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Generic

from services.client.entity import D, Entity, LoggedEvent
from services.client.transport import Transport, quote

# entity -> its collection path under /api/1
PATHS = {"engine": "engine", "dataset": "dataset", "datastore": "datastore", "workflow": "workflow",
         "action": "action", "trigger": "trigger", "subscription": "subscription", "event": "event",
         "workflow_instance": "workflow/instance"}
# entity -> the field naming the parent its create is nested under (POST /<parent>/{id}/<entity>)
PARENTS = {"workflow": ("datastore", "datastore_id"), "subscription": ("dataset", "dataset_id")}
PAGE_SIZE = 100

Data = Mapping[str, Any] | Any  # a dict or a generated data class


def as_json(data: Data) -> dict[str, Any]:
    return dict(data) if isinstance(data, Mapping) else dict(data.to_json())


class Entities(Generic[D]):
    """The REST calls of one entity kind, answering ``Entity[<Kind>Data]``."""

    def __init__(self, transport: Transport, entity: str, data_class: type[D]) -> None:
        self.transport = transport
        self.entity = entity
        self.path = PATHS[entity]
        self.data_class = data_class

    def _typed(self, raw: Mapping[str, Any]) -> Entity[D]:
        return Entity.from_json(raw, self.data_class)

    def _results(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None, idempotency_key: str | bool = True) -> Any:
        answer = self.transport.request(method, path, body, params, headers, idempotency_key)
        return answer.get("results") if isinstance(answer, dict) else answer

    # -- create --------------------------------------------------------------------------------------

    def create(self, data: Data, *, idempotency_key: str | bool = True) -> Entity[D]:
        """Create one; the request carries an ``Idempotency-Key`` (a fresh one unless given; False: none), so
        a retry after a lost answer does not create twice."""
        body = as_json(data)
        if self.entity == "action":
            created = self.create_many([body], idempotency_key=idempotency_key)
            return created[0]
        return self._typed(self._results("POST", self._create_path(body), {"data": body},
                                         idempotency_key=idempotency_key))

    def _create_path(self, body: Mapping[str, Any]) -> str:
        if self.entity in PARENTS:
            parent, field = PARENTS[self.entity]
            if not body.get(field):
                raise ValueError(f"{self.entity}: data.{field} is required to create one")
            return f"/{parent}/{quote(body[field])}/{self.entity}"
        return f"/{self.path}"

    # -- read ----------------------------------------------------------------------------------------

    def get(self, entity_id: str, *, as_of: int | str | None = None) -> Entity[D]:
        """The entity now, or as of a global position or ISO time (``as_of``)."""
        params = {"as_of": as_of} if as_of is not None else None
        return self._typed(self._results("GET", f"/{self.path}/{quote(entity_id)}", params=params))

    def list(self, *, filters: Sequence[str] | None = None, order_by: Sequence[str] | None = None,
             page_size: int = PAGE_SIZE, limit: int | None = None, **query: Any) -> Iterator[Entity[D]]:
        """Every matching entity, fetched ``page_size`` at a time as the iterator goes (at most ``limit``).
        ``filters`` are the API's ``"key op value"`` strings; ``order_by`` (actions) ``"key ASC|DESC"``."""
        return self._pages(f"/{self.path}", filters, order_by, page_size, limit, query)

    def _pages(self, path: str, filters: Sequence[str] | None, order_by: Sequence[str] | None, page_size: int,
               limit: int | None, query: Mapping[str, Any]) -> Iterator[Entity[D]]:
        offset, seen = 0, 0
        while limit is None or seen < limit:
            size = page_size if limit is None else min(page_size, limit - seen)
            params = {**query, "filters": list(filters) if filters else None,
                      "order_by": list(order_by) if order_by else None, "limit": size, "offset": offset}
            answer = self.transport.request("GET", path, params=params)
            page = answer.get("results") or []
            for raw in page:
                yield self._typed(raw)
            seen += len(page)
            offset += len(page)
            total = answer.get("total")
            if not page or (isinstance(total, int) and offset >= total):
                return

    def find(self, name: str) -> Entity[D] | None:
        """The entity of this name, or None."""
        for found in self.list(filters=[f"name = {name}"], limit=1):
            return found
        return None

    def history(self, entity_id: str, *, page_size: int = PAGE_SIZE) -> Iterator[LoggedEvent]:
        """The entity's events, oldest first."""
        offset = 0
        while True:
            page = self._results("GET", f"/{self.path}/{quote(entity_id)}/history",
                                 params={"limit": page_size, "offset": offset}) or []
            yield from (LoggedEvent.from_json(raw) for raw in page)
            if len(page) < page_size:
                return
            offset += len(page)

    # -- change --------------------------------------------------------------------------------------

    def update(self, entity_id: str, data: Data, *, version_id: int | None = None) -> Entity[D]:
        """Replace the entity's data (PUT); ``version_id``: 409 unless the entity is still at that version."""
        headers = {"If-Match": str(version_id)} if version_id is not None else None
        return self._typed(self._results("PUT", f"/{self.path}/{quote(entity_id)}", {"data": as_json(data)},
                                         headers=headers))

    def patch(self, entity_id: str, operations: Sequence[Mapping[str, Any]], *,
              version_id: int | None = None) -> Entity[D]:
        """Apply an RFC 6902 JSON Patch over the whole entity (paths like ``/data/state``)."""
        headers = {"If-Match": str(version_id)} if version_id is not None else None
        return self._typed(self._results("PATCH", f"/{self.path}/{quote(entity_id)}", list(operations),
                                         headers=headers))

    def set(self, entity_id: str, **fields: Any) -> Entity[D]:
        """Patch these data fields (``set(id, state="ACTIVE")``)."""
        if not fields:
            raise ValueError("set needs at least one field")
        return self.patch(entity_id, [{"op": "add", "path": f"/data/{_pointer(k)}", "value": v}
                                      for k, v in fields.items()])

    def delete(self, entity_id: str) -> None:
        self._results("DELETE", f"/{self.path}/{quote(entity_id)}")

    def create_many(self, items: Sequence[Data], *, idempotency_key: str | bool = True) -> builtins.list[Entity[D]]:
        """Actions only: several in one append, under their workflow (templates) or datastore (ad hoc)."""
        if self.entity != "action":
            raise ValueError("create_many is for actions")
        bodies = [as_json(item) for item in items]
        if not bodies:
            return []
        first = bodies[0]
        parent = ("workflow", first["workflow_id"]) if first.get("workflow_id") else \
            ("datastore", first.get("datastore_id"))
        if not parent[1]:
            raise ValueError("action: data.workflow_id (a template) or data.datastore_id (ad hoc) is required")
        created = self._results("POST", f"/{parent[0]}/{quote(parent[1])}/action",
                                [{"data": body} for body in bodies], idempotency_key=idempotency_key)
        return [self._typed(raw) for raw in created]


def _pointer(segment: str) -> str:
    """One RFC 6901 reference token: ``~`` and ``/`` inside a field name must be escaped."""
    return segment.replace("~", "~0").replace("/", "~1")
