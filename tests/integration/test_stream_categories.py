"""An entity event can only be appended to a stream of its own category: read models pick events by type
and rebuilds by stream, so a misfiled event would make them disagree."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from events.errors import EventSchemaError
from events.store import EventStore
from events.streams import default_registry
from events.streams.action import ActionCreated
from events.streams.workflow import WorkflowCreated
from events.types import ExpectedVersion, StreamAppend


def test_an_event_in_another_categorys_stream_is_refused_and_nothing_is_stored(
        db_url: str, make_store: Callable[..., EventStore]) -> None:
    store = make_store(db_url, default_registry())
    with pytest.raises(EventSchemaError, match="action"):
        store.append(
            StreamAppend("workflow-AAAAAAAAAA", ExpectedVersion.NO_STREAM, [WorkflowCreated({"name": "w"})]),
            StreamAppend("workflow-BBBBBBBBBB", ExpectedVersion.NO_STREAM, [ActionCreated({"name": "a"})]),
        )
    assert store.head_position() == 0
    store.append(StreamAppend("action-CCCCCCCCCC", ExpectedVersion.NO_STREAM, [ActionCreated({"name": "a"})]))
    assert store.stream_version("action-CCCCCCCCCC") == 1
