"""The command side of entity CRUD: create, update (PUT semantics and JSON Patch), delete, each one append.

A command decides from the inline read model and appends with that row's version as the expected version.
If another writer got there first, the command reloads and decides again (bounded), unless the client
stated the version it expects, in which case it gets a 409.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from typing import Any

import jsonpatch

from events.errors import ConcurrencyError
from events.store import EventStore
from events.streams.name_claim import NameClaimed, NameReleased
from events.types import ExpectedVersion, Metadata, NewEvent, StreamAppend
from projections.entities import with_nulls
from projections.reads import EntityReader
from services.commands.auth import Principal
from services.commands.kind_base import EntityContext, Kind
from services.commands.kinds import KINDS
from services.commands.retry import retry_on_conflict
from services.commands.tokens import refuse_ended_token
from services.domain.errors import BadRequest, Conflict, Forbidden, NotFound, Unprocessable
from services.domain.ids import id_from_uuid, random_id
from services.domain.roles import refused_change

ENVELOPE_FIELDS = {"id", "version_id", "created", "updated", "data"}
Decide = Callable[[dict[str, Any]], dict[str, Any] | None]


def check_envelope(body: Any) -> dict[str, Any]:
    """The original's base schema: only id, version_id, created, updated and data; data an object."""
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object")
    unknown = sorted(set(body) - ENVELOPE_FIELDS)
    if unknown:
        raise BadRequest(f"body: unknown field(s): {', '.join(unknown)}")
    data = body.get("data")
    if not isinstance(data, dict):
        raise BadRequest("data: required, and must be a JSON object")
    _refuse_nul(data, "data")
    return data


def _refuse_nul(value: Any, path: str) -> None:
    """PostgreSQL cannot store NUL in text or jsonb: name the field instead of failing later."""
    if isinstance(value, str):
        if "\x00" in value:
            raise BadRequest(f"{path}: must not contain a NUL character")
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                raise BadRequest(f"{path}: a key must not contain a NUL character")
            _refuse_nul(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_nul(item, f"{path}[{index}]")


def expected_from(body: Any, if_match: str | None) -> int | None:
    """The version a client says it expects: an If-Match header, else version_id in the body."""
    raw: Any = if_match.strip('"W/ ') if if_match else None
    if raw is None and isinstance(body, dict):
        raw = body.get("version_id")
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"version_id: {raw!r} is not an integer version") from exc


class EntityService:
    def __init__(self, store: EventStore, context: EntityContext) -> None:
        self.store = store
        self.reader = EntityReader(store)
        self.context = context  # what kinds need beyond the store: secrets, ECS, the S3 root, limits

    def kind(self, category: str) -> Kind:
        return KINDS[category]

    # ------------------------------------------------------------------------------------- create
    def create_many(
        self, category: str, items: list[dict[str, Any]], who: Principal, parent: Any = None,
        idempotency_key: str | None = None,
    ) -> list[dict[str, Any]]:
        """Create several entities of one kind in one append (all or none)."""
        kind = self.kind(category)
        if idempotency_key:
            # A retried request (same caller, same Idempotency-Key) lands on the same entity ids, and on the same
            # event ids when its body is the same: a replay answers what the first recorded. Another caller's
            # key names other entities; the same caller's key with another body is a 422.
            scope = f"{who.key}/{idempotency_key}"
            digest = _body_digest(items, parent, who.salt)
            ids = [_stable_id(scope, category, i) for i in range(len(items))]
            event_ids = [uuid.uuid5(uuid.NAMESPACE_URL, f"{scope}/{category}/{i}/{digest}") for i in range(len(ids))]
            replayed = self._replayed(category, ids, event_ids)
            if replayed is not None:
                return replayed
        else:
            ids = [random_id() for _ in items]
            event_ids = [uuid.uuid4() for _ in items]
        prepared = kind.prepare_batch(self, [copy.deepcopy(i) for i in items], who, parent, ids)
        meta = Metadata(actor=who.user_id)
        validated = [kind.validate(self, data, None) for data in prepared]
        for entity_id, data in zip(ids, validated):
            kind.check_links(self, entity_id, data)
        # Secret args leave the data here, after validation; their values reach the store after the append.
        held = [kind.hold_secrets(self, i, None, d, meta, e) for d, i, e in zip(validated, ids, event_ids)]
        validated = [data for data, _ in held]
        secret_writes = [write for _, write in held if write is not None]
        appends: list[StreamAppend] = []
        if kind.unique_name:
            appends += [self._claim(kind, d["name"], i, meta, e) for d, i, e in zip(validated, ids, event_ids)]
        written: list[dict[str, Any]] = []  # every check passed: only now touch anything outside the log
        try:
            for data in validated:
                written.append(kind.before_write(self, None, data))
        except BaseException:
            for data in written:
                kind.undo(self, None, data)
            raise
        appends += [
            StreamAppend(f"{category}-{entity_id}", ExpectedVersion.NO_STREAM, [
                NewEvent(kind.created(data), meta, event_id)])
            for entity_id, data, event_id in zip(ids, written, event_ids)
        ]
        appends += [write.append for write in secret_writes]
        try:
            recorded = self.store.append(*appends)
        except BaseException as exc:
            for data in written:
                kind.undo(self, None, data)
            if idempotency_key and isinstance(exc, ConcurrencyError):  # the same key's concurrent request won
                replayed = self._replayed(category, ids, event_ids)
                if replayed is not None:
                    return replayed
            raise
        for write in secret_writes:
            write.commit(self.context.secrets)
        # Answer with what this request recorded: a worker may already be moving the entity on.
        created = {e.entity_id: e for e in recorded if e.category == category}
        return [_as_created(created[i]) for i in ids]

    def create(self, category: str, body: Any, who: Principal, parent: Any = None,
               idempotency_key: str | None = None) -> dict[str, Any]:
        data = check_envelope(body)
        return self.create_many(category, [data], who, parent, idempotency_key)[0]

    def _replayed(self, category: str, ids: list[str], event_ids: list[uuid.UUID]) -> list[dict[str, Any]] | None:
        """What an earlier request with this Idempotency-Key created, or None if there was none; a 422 when
        it had another body (its created events have other ids)."""
        first = [self.store.read_stream(f"{category}-{i}", to_version=1) for i in ids]
        if not any(first):
            return None
        if any(not events or events[0].event_id != e for events, e in zip(first, event_ids)):
            raise Unprocessable("Idempotency-Key: this key already sent a different request with it; "
                                "use a new Idempotency-Key for a new request")
        return [_as_created(events[0]) for events in first]

    def _claim(self, kind: Kind, name: str, entity_id: str, meta: Metadata,
               cause: uuid.UUID | None = None) -> StreamAppend:
        stream = f"{kind.category}_name-{name}"
        history = self.store.read_stream(stream)
        event_id = uuid.uuid5(cause, "claim") if cause else uuid.uuid4()
        if history and history[-1].type == NameClaimed.type_name:
            if history[-1].event_id == event_id:  # the same request again: append it again, idempotently
                return StreamAppend(stream, len(history) - 1, [NewEvent(NameClaimed(entity_id), meta, event_id)])
            raise BadRequest(f"name: {kind.category} name {name!r} already exists")
        return StreamAppend(stream, len(history), [NewEvent(NameClaimed(entity_id), meta, event_id)])

    def _release(self, kind: Kind, name: str, entity_id: str, meta: Metadata) -> StreamAppend:
        stream = f"{kind.category}_name-{name}"
        return StreamAppend(stream, ExpectedVersion.ANY, [NewEvent(NameReleased(entity_id), meta)])

    # ------------------------------------------------------------------------------------- update
    def replace(self, category: str, entity_id: str, body: Any, who: Principal,
                if_match: str | None = None) -> dict[str, Any]:
        """PUT: the editable fields of body.data replace the current ones; others are ignored."""
        new_data = check_envelope(body)
        expected = expected_from(body, if_match)
        kind = self.kind(category)
        return self.update(category, entity_id, lambda current: kind.merge(self, current, new_data, who),
                           who, expected)

    def patch(self, category: str, entity_id: str, operations: Any, who: Principal,
              if_match: str | None = None) -> dict[str, Any]:
        """PATCH: an RFC 6902 JSON Patch applied to the whole entity (envelope and data)."""
        if not isinstance(operations, list):
            raise BadRequest("body: a JSON Patch must be an array of operations")
        expected = expected_from(None, if_match)
        kind = self.kind(category)

        def decide(current: dict[str, Any]) -> dict[str, Any] | None:
            whole = {"id": entity_id, "data": with_nulls(category, copy.deepcopy(current))}  # a row folded earlier
            try:
                patched = jsonpatch.apply_patch(whole, operations)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as exc:
                raise BadRequest(f"body: the JSON Patch cannot be applied: {exc}") from exc
            return kind.merge(self, current, check_envelope(patched), who)

        return self.update(category, entity_id, decide, who, expected)

    def update(self, category: str, entity_id: str, decide: Decide, who: Principal,
               expected: int | None = None, extra: Callable[[dict[str, Any]], list[StreamAppend]] | None = None,
               ) -> dict[str, Any]:
        kind = self.kind(category)

        def attempt() -> dict[str, Any]:
            refuse_ended_token(self.reader, who)  # read where the write decides: none after a check-in
            row = self.reader.row(category, entity_id)
            if row is None:
                raise NotFound(category, entity_id)
            if expected is not None and row.version != expected:
                raise Conflict(f"version_id: {category} {entity_id} is at version {row.version}, not {expected}")
            merged = decide(copy.deepcopy(row.data))
            if merged is None:
                return self.reader.get(category, entity_id)
            merged = kind.validate_update(self, entity_id, merged, row.data)
            meta = Metadata(actor=who.user_id)
            merged, secret_write = kind.hold_secrets(self, entity_id, row.data, merged, meta, None)
            changes = {k: v for k, v in merged.items() if row.data.get(k, _MISSING) != v}
            if not changes and secret_write is None:
                return self.reader.get(category, entity_id)
            refused = refused_change(who.role, category, {**changes, **({"args": 1} if secret_write else {})})
            if refused:
                raise Forbidden(refused)
            if not changes and secret_write is not None:  # only secrets rotated: their stream's version guards it
                self.store.append(secret_write.append)
                secret_write.commit(self.context.secrets)
                return self.reader.get(category, entity_id)
            kind.check_links(self, entity_id, merged)
            appends = [StreamAppend(f"{category}-{entity_id}", row.version, [NewEvent(kind.updated(changes), meta)])]
            if secret_write is not None:
                appends.append(secret_write.append)
            if kind.unique_name and "name" in changes:
                appends.append(self._claim(kind, changes["name"], entity_id, meta))
                appends.append(self._release(kind, row.data["name"], entity_id, meta))
            if extra is not None:
                appends.extend(extra(merged))
            recorded = kind.before_write(self, row.data, merged)
            if recorded is not merged:
                appends[0] = StreamAppend(appends[0].stream_id, row.version, [NewEvent(kind.updated(
                    {k: v for k, v in recorded.items() if row.data.get(k, _MISSING) != v}), meta)])
            try:
                self.store.append(*appends)
            except BaseException as exc:
                kind.undo(self, row.data, recorded)
                if isinstance(exc, ConcurrencyError) and expected is not None:
                    raise Conflict(f"version_id: {category} {entity_id} changed concurrently") from None
                raise  # a ConcurrencyError: decided again on fresh state
            if secret_write is not None:
                secret_write.commit(self.context.secrets)
            kind.after_write(self, row.data, recorded)
            return self.reader.get(category, entity_id)

        return retry_on_conflict(attempt, what=f"{category} {entity_id}")

    # ------------------------------------------------------------------------------------- delete
    def delete(self, category: str, entity_id: str, who: Principal) -> None:
        kind = self.kind(category)
        row = self.reader.row(category, entity_id)
        if row is None:
            raise NotFound(category, entity_id)
        meta = Metadata(actor=who.user_id)
        appends = [StreamAppend(f"{category}-{entity_id}", ExpectedVersion.ANY, [NewEvent(kind.deleted(), meta)])]
        if kind.unique_name:
            appends.append(self._release(kind, row.data["name"], entity_id, meta))
        for child_category, child_id in kind.cascade(self, entity_id):
            child = self.kind(child_category)
            appends.append(StreamAppend(f"{child_category}-{child_id}", ExpectedVersion.ANY,
                                        [NewEvent(child.deleted(), meta)]))
        self.store.append(*appends)
        kind.after_write(self, row.data, None)

    def delete_children(self, pairs: list[tuple[str, str]], who: Principal) -> None:
        meta = Metadata(actor=who.user_id)
        appends = [
            StreamAppend(f"{c}-{i}", ExpectedVersion.ANY, [NewEvent(self.kind(c).deleted(), meta)]) for c, i in pairs
        ]
        if appends:
            self.store.append(*appends)


_MISSING = object()


def _as_created(event: Any) -> dict[str, Any]:
    at = event.recorded_at.isoformat()
    return {"id": event.entity_id, "version_id": event.stream_version, "created": at, "updated": at,
            "data": with_nulls(event.category, event.data["data"])}


def _body_digest(items: list[dict[str, Any]], parent: Any, salt: str) -> str:
    """A create request's body, keyed with the caller's key salt: the digest goes into event ids, which any
    reader sees, and a body may hold a secret (a datastore's password) a bare hash would let them guess."""
    text = json.dumps([items, parent], sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(salt.encode(), text.encode(), hashlib.sha256).hexdigest()


def _stable_id(key: str, category: str, index: int) -> str:
    return id_from_uuid(uuid.uuid5(uuid.NAMESPACE_URL, f"{key}/{category}/{index}"))
