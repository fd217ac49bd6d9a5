"""``Dart``: the way a script talks to dart (docs/client.md). Every entity kind as a typed attribute
(``dart.workflows.create(...)``), runs (manual trigger, cancel, waiting), events, backfill, API keys, the log
and its live stream; over the public REST API only, importing nothing of the server."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from services.client.entities import Entities
from services.client.entity import Entity, LoggedEvent
from services.client.errors import DartApiError, WaitTimeout
from services.client.graph import Graph
from services.client.keys import Keys
from services.client.models import (
    ActionData,
    DatasetData,
    DatastoreData,
    EngineData,
    EventData,
    SubscriptionData,
    TriggerData,
    WorkflowData,
    WorkflowInstanceData,
)
from services.client.transport import RetryPolicy, ServerSentEvent, Transport, quote

DEFAULT_API_URL = "http://127.0.0.1:5000/api/1"
ENDED = ("COMPLETED", "FAILED")
Instance = Entity[WorkflowInstanceData]
Action = Entity[ActionData]
Progress = Callable[[Instance, list[Action]], None]


class Dart:
    """A client of one dart server, as one API key.

    >>> dart = Dart("http://127.0.0.1:5000/api/1", "KEY:SECRET")
    >>> run = dart.run_and_wait(dart.workflows.find("nightly").id, timeout=600)

    ``source`` (e.g. ``"file=flows/nightly.yaml commit=3f2a…"``) is sent as ``X-Dart-Source`` with every
    request, and every event the server appends in answer records it in its metadata.
    """

    def __init__(self, api_url: str = DEFAULT_API_URL, token: str | None = None, *, timeout: float = 30.0,
                 retries: RetryPolicy | None = None, source: str | None = None,
                 transport: Transport | None = None) -> None:
        if transport is None:
            if token is None:
                raise ValueError("an API token (key:secret) is required")
            headers = {"X-Dart-Source": source} if source else None
            transport = Transport(api_url, token, timeout=timeout, retries=retries, headers=headers)
        self.transport = transport
        self.engines = Entities(transport, "engine", EngineData)
        self.datasets = Entities(transport, "dataset", DatasetData)
        self.datastores = Entities(transport, "datastore", DatastoreData)
        self.workflows = Entities(transport, "workflow", WorkflowData)
        self.actions = Entities(transport, "action", ActionData)
        self.triggers = Entities(transport, "trigger", TriggerData)
        self.subscriptions = Entities(transport, "subscription", SubscriptionData)
        self.events = Entities(transport, "event", EventData)
        self.instances = Entities(transport, "workflow_instance", WorkflowInstanceData)
        self.keys = Keys(transport)
        self.graph = Graph(transport)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> Dart:
        """``DART_API_URL`` (default the local ``dart up``) and ``DART_API_TOKEN`` (``key:secret``; else
        ``DART_BOOTSTRAP_API_KEY``, else the key ``dart up`` saved in ``$DART_HOME/credentials``)."""
        env = os.environ if env is None else env
        token = env.get("DART_API_TOKEN") or env.get("DART_BOOTSTRAP_API_KEY")
        if not token:
            credentials = Path(env.get("DART_HOME") or Path.home() / ".dart") / "credentials"
            if credentials.is_file():
                token = credentials.read_text().strip()
        if not token:
            raise ValueError("no API key: set DART_API_TOKEN=key:secret (or start `dart up` once: it saves one "
                             "to $DART_HOME/credentials)")
        return cls(env.get("DART_API_URL") or DEFAULT_API_URL, token, **kwargs)

    def entities(self, entity: str) -> Entities[Any]:
        """The calls of an entity kind by its REST name (``"workflow"``, ``"workflow_instance"`` …)."""
        found = {e.entity: e for e in (self.engines, self.datasets, self.datastores, self.workflows, self.actions,
                                       self.triggers, self.subscriptions, self.events, self.instances)}
        return found[entity]

    def request(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None,
                **kwargs: Any) -> Any:
        """Any call under the API prefix, answering the decoded JSON (for what has no method here)."""
        return self.transport.request(method, path, body, params, **kwargs)

    # -- runs ----------------------------------------------------------------------------------------

    def trigger_workflow(self, workflow_id: str, *, idempotency_key: str | bool = True) -> str:
        """Start an instance now (``do-manual-trigger``); its id. A 400 (BadRequest) names why not."""
        answer = self.request("POST", f"/workflow/{quote(workflow_id)}/do-manual-trigger",
                              idempotency_key=idempotency_key)
        return str(answer["workflow_instance_id"])

    def workflow_instances(self, workflow_id: str, *, filters: Sequence[str] | None = None) -> Iterator[Instance]:
        """A workflow's instances, newest first."""
        return self.instances._pages(f"/workflow/{quote(workflow_id)}/instance", filters, None, 100, None, {})

    def delete_workflow_instances(self, workflow_id: str) -> None:
        self.request("DELETE", f"/workflow/{quote(workflow_id)}/instance")

    def instance_actions(self, instance_id: str) -> list[Action]:
        """A run's actions in their order."""
        return list(self.actions.list(filters=[f"workflow_instance_id = {instance_id}"],
                                      order_by=["order_idx ASC"]))

    def cancel_instance(self, instance_id: str, reason: str | None = None) -> dict[str, Any]:
        """Stop a QUEUED or RUNNING instance (operator): its engines are stopped and its actions fail
        "cancelled by <you>"; ``{workflow_instance_id, state, ...}``. A 400 names the state of an ended one."""
        body = {"reason": reason} if reason is not None else None
        return dict(self.request("POST", f"/workflow/instance/{quote(instance_id)}/cancel", body))

    def backfill(self, trigger_id: str, start: str, end: str, *, dry_run: bool = False) -> Any:
        """Fire a scheduled trigger for its times from ``start`` to ``end`` (ISO 8601) not fired yet;
        ``dry_run`` only lists them."""
        return self.request("POST", f"/trigger/{quote(trigger_id)}/backfill",
                            {"start": start, "end": end, "dry_run": dry_run}).get("results")

    def pause_trigger(self, trigger_id: str, reason: str | None = None) -> Any:
        return self.request("POST", f"/trigger/{quote(trigger_id)}/pause",
                            {"reason": reason} if reason is not None else None).get("results")

    def unpause_trigger(self, trigger_id: str, reason: str | None = None) -> Any:
        return self.request("POST", f"/trigger/{quote(trigger_id)}/unpause",
                            {"reason": reason} if reason is not None else None).get("results")

    def trigger_types(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/trigger_type", params={"limit": 1000}).get("results") or [])

    def action_logs(self, action_id: str, *, offset: int = 0) -> dict[str, Any]:
        """The engine's output for an action from ``offset``: ``{text, offset, next_offset, finished, ...}``."""
        return dict(self.request("GET", f"/action/{quote(action_id)}/logs", params={"offset": offset})["results"])

    def follow_action_logs(self, action_id: str, *, offset: int = 0, timeout: float = 60.0) -> Iterator[str]:
        """The action's output as it is written, line by line, until the action ends."""
        yield from self.transport.lines(f"/action/{quote(action_id)}/logs",
                                        params={"offset": offset, "follow": "true"}, timeout=timeout)

    def guess_dataset(self, s3_path: str, max_lines: int | None = None) -> Any:
        """A dataset guessed from the first object under an S3 prefix (editor)."""
        return self.request("GET", "/dataset/guess", params={"s3_path": s3_path, "max_lines": max_lines})["results"]

    def fire_event(self, event_id: str, *, idempotency_key: str | bool = True) -> list[str]:
        """Fire every ACTIVE event trigger on the event; the ids of the triggers that fired."""
        answer = self.request("POST", f"/event/{quote(event_id)}/fire", idempotency_key=idempotency_key)
        return list(answer.get("trigger_ids") or [])

    def wait_for_instance(self, instance_id: str, *, timeout: float = 3600.0, poll: float = 0.5,
                          progress: Progress | None = None) -> Instance:
        """Wait until the instance is COMPLETED or FAILED and return it; ``progress(instance, actions)`` is
        called whenever its state or an action's state or progress changes. WaitTimeout past ``timeout``."""
        deadline = time.monotonic() + timeout
        seen: Any = None
        while True:
            instance = self.instances.get(instance_id)
            if progress is not None:
                actions = self.instance_actions(instance_id)
                now = (instance.data.state, [(a.id, a.data.state, a.data.progress) for a in actions])
                if now != seen:
                    seen = now
                    progress(instance, actions)
            if instance.data.state in ENDED:
                return instance
            if time.monotonic() + poll > deadline:
                raise WaitTimeout(f"workflow instance {instance_id} is still {instance.data.state} after "
                                  f"{timeout:g} s", instance)
            time.sleep(poll)

    def run_and_wait(self, workflow_id: str, *, timeout: float = 3600.0, poll: float = 0.5,
                     progress: Progress | None = None) -> Instance:
        """``trigger_workflow`` then ``wait_for_instance``: the ended instance (check ``data.state``)."""
        instance_id = self.trigger_workflow(workflow_id)
        return self.wait_for_instance(instance_id, timeout=timeout, poll=poll, progress=progress)

    # -- subscriptions, schemas, probes ---------------------------------------------------------------

    def subscription_elements(self, subscription_id: str, *, state: str | None = None,
                              page_size: int = 1000) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page = self.request("GET", f"/subscription/{quote(subscription_id)}/elements",
                                params={"state": state, "limit": page_size, "offset": offset}).get("results") or []
            yield from page
            if len(page) < page_size:
                return
            offset += len(page)

    def subscription_element_stats(self, subscription_id: str) -> Any:
        return self.request("GET", f"/subscription/{quote(subscription_id)}/element_stats").get("results")

    def subscription_element_history(self, subscription_id: str, s3_path: str) -> list[dict[str, Any]]:
        """Every event that changed one element of a subscription."""
        return list(self.request("GET", f"/subscription/{quote(subscription_id)}/element_history",
                                 params={"s3_path": s3_path}).get("results") or [])

    def health(self) -> bool:
        """``/health`` and ``/ready`` answer 200 (they sit outside /api/1)."""
        root = self.transport.api_url.rsplit("/api/", 1)[0]
        probe = Transport(root, "probe:probe", retries=self.transport.retries, timeout=self.transport.timeout)
        try:
            probe.request("GET", "/health")
            probe.request("GET", "/ready")
        except DartApiError:
            return False
        return True

    def schema(self, path: str, **params: Any) -> Any:
        """A JSON schema the API validates with (``schema("workflow")``, ``schema("engine/x/datastore")``)."""
        return self.request("GET", f"/schema/{path.lstrip('/')}", params=params or None).get("results")

    def whoami(self) -> dict[str, Any]:
        """The calling key: ``{key, user_id, role}``."""
        return dict(self.request("GET", "/whoami")["results"])

    def openapi(self) -> dict[str, Any]:
        return dict(self.request("GET", "/openapi.json"))

    # -- the log -------------------------------------------------------------------------------------

    def log(self, *, after: int = 0, types: Sequence[str] | None = None, streams: Sequence[str] | None = None,
            page_size: int = 500, follow: bool = False) -> Iterator[LoggedEvent]:
        """The global log after a position (admin), page by page; with ``follow``, then the live stream."""
        position = after
        params = {"type": ",".join(types) if types else None, "stream": ",".join(streams) if streams else None}
        while True:
            answer = self.request("GET", "/log", params={**params, "after": position, "limit": page_size})
            page = answer.get("results") or []
            for raw in page:
                yield LoggedEvent.from_json(raw)
            position = int(answer.get("next_after") or (page[-1]["global_position"] if page else position))
            if not page:
                break
        if follow:
            yield from self.stream(after=position, types=types, streams=streams)

    def stream(self, *, after: int = 0, types: Sequence[str] | None = None,
               streams: Sequence[str] | None = None, idle_timeout: float = 60.0) -> Iterator[LoggedEvent]:
        """The log as it grows (``GET /log/stream``, Server-Sent Events), for ever: when the server ends a
        stream (its lifetime, a restart) it reconnects after the last event seen, so none is lost or repeated.
        A server that stays unreachable past the retry policy raises Unreachable."""
        position = after
        params = {"type": ",".join(types) if types else None, "stream": ",".join(streams) if streams else None}
        while True:
            messages = self.transport.stream("/log/stream", params={**params, "after": position},
                                             headers={"Last-Event-ID": str(position)}, timeout=idle_timeout)
            try:
                for message in messages:
                    event = _logged(message)
                    if event is not None:
                        position = event.global_position
                        yield event
            finally:
                messages.close()


def _logged(message: ServerSentEvent) -> LoggedEvent | None:
    if not message.data:
        return None
    raw = message.json()
    return LoggedEvent.from_json(raw) if isinstance(raw, dict) and "global_position" in raw else None
