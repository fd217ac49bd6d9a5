"""Entity resources, by noun: a collection (list, create) and an item (get, replace, patch, delete) for each
entity kind, the nested creates of the original (`/datastore/{id}/action` ...), the log and the dataset guess."""

from __future__ import annotations

from typing import Any

import falcon

from projections.entities import with_nulls
from services.api.listing import SchemaCache, int_param, list_entities
from services.api.route import GuessDataset
from services.commands.entities import EntityService, check_envelope
from services.domain.dataset_guess import DEFAULT_MAX_LINES, MAX_MAX_LINES, parse_s3_path
from services.domain.errors import BadRequest, NotFound
from services.domain.roles import redact_key_event


def body(req: falcon.Request) -> Any:
    return whole_numbers(req.get_media(default_when_empty=None))


def whole_numbers(value: Any) -> Any:
    """JSON has one number type: ``2.0`` is the integer 2 (JSON Schema 2020-12, the OpenAPI document's,
    says so too), but the entity schemas are Draft 4, which refuses it for an integer field. Read as 2."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {k: whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [whole_numbers(v) for v in value]
    return value


def who(req: falcon.Request) -> Any:
    return req.context.principal


class EntityList:
    """``GET /<entity>`` (paged, filtered)."""

    def __init__(self, service: EntityService, category: str, schema_cache: SchemaCache) -> None:
        self.service = service
        self.category = category
        self.schema_cache = schema_cache

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = list_entities(self.service, self.category, req, self.schema_cache).as_dict()


class EntityCollection(EntityList):
    """``GET /<entity>`` and ``POST /<entity>``."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        created = self.service.create(self.category, body(req), who(req),
                                      idempotency_key=req.get_header("Idempotency-Key"))
        resp.media = {"results": created}


class EntityItem:
    """``GET /<entity>/{id}``; GET takes ``as_of`` (a global position or ISO time). The mixins below add
    the methods a kind allows, so falcon's 405 and Allow header list exactly those."""

    def __init__(self, service: EntityService, category: str) -> None:
        self.service = service
        self.category = category

    def on_get(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        as_of = req.get_param("as_of")
        reader = self.service.reader
        result = reader.as_of(self.category, entity_id, as_of) if as_of else reader.get(self.category, entity_id)
        resp.media = {"results": result}


class _Put:
    def on_put(self: Any, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        resp.media = {"results": self.service.replace(self.category, entity_id, body(req), who(req),
                                                      req.get_header("If-Match"))}


class _Patch:
    def on_patch(self: Any, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        resp.media = {"results": self.service.patch(self.category, entity_id, body(req), who(req),
                                                    req.get_header("If-Match"))}


class _Delete:
    def on_delete(self: Any, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        self.service.delete(self.category, entity_id, who(req))
        resp.media = {"results": "OK"}


_MIXINS = {"PUT": _Put, "PATCH": _Patch, "DELETE": _Delete}


def entity_item(service: EntityService, category: str, methods: set[str]) -> EntityItem:
    """An item resource answering GET plus exactly ``methods``."""
    bases = tuple(_MIXINS[m] for m in ("PUT", "PATCH", "DELETE") if m in methods)
    cls = type(f"{category.title().replace('_', '')}Item", (*bases, EntityItem), {})
    return cls(service, category)


class EntityHistory:
    """``GET /<entity>/{id}/history``: the entity's events, paged."""

    def __init__(self, service: EntityService, category: str) -> None:
        self.service = service
        self.category = category

    def on_get(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        page = self.service.reader.history(
            self.category, entity_id, int_param(req, "limit", 100, 0, 10000), int_param(req, "offset", 0)
        )
        resp.media = page.as_dict()


class NestedCreate:
    """``POST /<parent>/{id}/<child>``: one child, or an array of them for actions (one append)."""

    def __init__(self, service: EntityService, parent: str, child: str, many: bool = False) -> None:
        self.service = service
        self.parent = parent
        self.child = child
        self.many = many

    def on_post(self, req: falcon.Request, resp: falcon.Response, entity_id: str) -> None:
        if self.service.reader.row(self.parent, entity_id) is None:
            raise NotFound(self.parent, entity_id)
        payload = body(req)

        if self.many:
            items = payload if isinstance(payload, list) else [payload]
            if not items:
                raise BadRequest("body: expected an action or a non-empty array of actions")
            datas = [check_envelope(item) for item in items]
            parent = (self.parent, entity_id)
            many = self.service.create_many(self.child, datas, who(req), parent, req.get_header("Idempotency-Key"))
            resp.media = {"results": many}
            return
        created = self.service.create(self.child, payload, who(req), entity_id, req.get_header("Idempotency-Key"))
        resp.media = {"results": created}


class Log:
    """``GET /log?after=&limit=&type=&stream=``: the global log, for audit and outside readers."""

    def __init__(self, service: EntityService) -> None:
        self.service = service

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        after = int_param(req, "after", 0)
        limit = int_param(req, "limit", 100, 0, 10000)
        types = _csv(req.get_param("type"))
        streams = _csv(req.get_param("stream"))
        events = self.service.store.read_all(after, limit, types=types, streams=streams)
        resp.media = {
            "results": [redact_key_event(e.as_dict()) for e in events],  # never a key's salt or secret hash
            "after": after,
            "limit": limit,
            "next_after": events[-1].global_position if events else after,
        }


def _csv(raw: str | None) -> list[str] | None:
    """A comma-separated query value (falcon 4 no longer splits them)."""
    values = [v.strip() for v in (raw or "").split(",") if v.strip()]
    return values or None


class DatasetGuess:
    """``GET /dataset/guess?s3_path=&max_lines=``: a DatasetData guessed from the first object under an S3
    prefix (services/domain/dataset_guess.py), as ``{"results": {"data": ...}}``, ready to POST; nothing is
    recorded."""

    def __init__(self, guess: GuessDataset) -> None:
        self.guess = guess

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        s3_path = req.get_param("s3_path")
        parse_s3_path(s3_path)  # a malformed path is a 400 before any S3 client is built
        max_lines = int_param(req, "max_lines", DEFAULT_MAX_LINES, 1, MAX_MAX_LINES)
        # Shaped as a stored dataset is served: its unset nullable fields present as null.
        resp.media = {"results": {"data": with_nulls("dataset", self.guess(s3_path, max_lines, who(req).user_id))}}
