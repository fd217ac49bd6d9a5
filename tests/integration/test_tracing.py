"""Traces across the log (issue 15), in process with the SDK's in-memory exporter: a cron fire is the root of its
run's trace, the events it appends carry its traceparent and its cause as correlation id, the orchestrator's
handling of them continues the trace and logs their ids; tracing off, events carry no traceparent and no span
is made."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.commands import tracing
from services.commands.orchestrator import Orchestrator
from services.commands.scheduler import fire_cause, fire_scheduled
from services.runtime.logs import JsonFormatter
from tests.support.world import SUCCEEDS, World

SCHEDULED = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def world(db_url: str, make_world: Callable[..., World]) -> World:
    return make_world(db_url, World)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    try:
        yield exporter
    finally:
        tracing.disable()


def _scheduled_run(world: World) -> tuple[str, int]:
    """A scheduled trigger fired for SCHEDULED: (its id, the log's head before the fire)."""
    flow = world.workflow(world.datastore(), [{"name": "a0", "action_type_name": SUCCEEDS}])
    trigger_id = world.trigger("scheduled", {"cron_pattern": "0 12 * * ? *"}, [flow])
    head = world.store.head_position()
    assert fire_scheduled(world.orch, trigger_id, SCHEDULED)
    return trigger_id, head


def test_a_cron_fire_roots_its_run_s_trace_and_the_orchestrator_continues_it(
        world: World, spans: InMemorySpanExporter) -> None:
    trigger_id, head = _scheduled_run(world)
    [fire] = spans.get_finished_spans()
    assert fire.name == "fire scheduled trigger" and fire.parent is None
    assert fire.attributes is not None and fire.attributes["dart.trigger_id"] == trigger_id
    appended = world.store.read_all(head, 100)
    cause = str(fire_cause(trigger_id, SCHEDULED))
    trace_id = f"{fire.context.trace_id:032x}"
    assert {e.type for e in appended} >= {"TriggerFired", "WorkflowInstanceCreated", "ActionCreated"}
    assert all(e.metadata["correlation_id"] == cause for e in appended), [(e.type, e.metadata) for e in appended]
    assert all(e.metadata["traceparent"].split("-")[1:3] == [trace_id, f"{fire.context.span_id:016x}"]
               for e in appended)

    created = next(e for e in appended if e.type == "WorkflowInstanceCreated")
    Orchestrator(world.orch).handle([created])
    handled = [s for s in spans.get_finished_spans() if s.name == "orchestrator WorkflowInstanceCreated"]
    assert len(handled) == 1 and handled[0].parent is not None
    assert (handled[0].context.trace_id, handled[0].parent.span_id) == (fire.context.trace_id, fire.context.span_id)
    queued = [e for e in world.store.read_all(created.global_position, 100) if e.type == "ActionQueued"]
    assert queued and all(e.metadata["correlation_id"] == cause and
                          e.metadata["traceparent"].split("-")[2] == f"{handled[0].context.span_id:016x}"
                          for e in queued)


def test_tracing_off_makes_no_span_and_records_no_traceparent(world: World) -> None:
    assert not tracing.enabled()
    trigger_id, head = _scheduled_run(world)
    appended = world.store.read_all(head, 100)
    assert appended and all("traceparent" not in e.metadata for e in appended)
    assert all(e.metadata["correlation_id"] == str(fire_cause(trigger_id, SCHEDULED)) for e in appended)


def test_a_consumer_s_log_lines_name_the_event_even_the_line_of_its_failure(world: World) -> None:
    trigger_id, head = _scheduled_run(world)
    event = world.store.read_all(head, 1)[0]
    expected = {"event_id": str(event.event_id), "stream_id": f"trigger-{trigger_id}",
                "correlation_id": str(fire_cause(trigger_id, SCHEDULED))}
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(JsonFormatter().format(record))  # type: ignore[method-assign]
    logger = logging.getLogger("dart.test_tracing")
    logger.addHandler(handler)
    try:
        with tracing.handling("test", event):
            logger.warning("handling it")
        with pytest.raises(RuntimeError), tracing.handling("test", event):
            raise RuntimeError("boom")
        try:
            with tracing.handling("test", event):
                raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("the batch failed")  # logged by the subscription, outside the handling
        logger.warning("after")
    finally:
        logger.removeHandler(handler)
    formatted = [json.loads(line) for line in lines]
    assert [{k: line.get(k) for k in expected} for line in formatted] == [expected, expected, dict.fromkeys(expected)]
