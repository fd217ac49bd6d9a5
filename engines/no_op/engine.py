"""The no_op engine's runtime (reference §10 item 8, §12.1): sleep, then succeed or fail as the action type
says. dart's own tests drive every workflow path with it, so it must behave exactly and predictably.

`handle` is the SDK handler; `run` runs one action from the environment; `register` registers the engine.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from engines.no_op.definition import NAME, no_op_engine, subgraph_definitions
from engines.sdk import ActionContext, DartClient, EngineEnvironment, run_action

log = logging.getLogger("dart.engine.no_op")

DEFAULT_SLEEP_SECONDS = 5.0  # the options schema's default for action_sleep_time_in_seconds
SLEEP_OVERRIDE_VARIABLE = "DART_NO_OP_SLEEP_OVERRIDE"  # lets tests run without waiting out datastore args
VISIBLE_SLEEP_SECONDS = 1.0  # a sleep at least this long reports its halfway progress

SUCCEEDING = frozenset({"fake_action_that_succeeds", "fake_copy_hdfs_to_s3", "fake_load_dataset"})


class ExpectedFailure(Exception):
    """Raised by fake_action_that_fails: the failure is the point of that action type."""


def sleep_seconds(context: ActionContext, override: float | None = None) -> float:
    """How long to sleep: the override if given, else the datastore's arg, else the schema default."""
    if override is not None:
        return override
    value = context.datastore_args.get("action_sleep_time_in_seconds")
    return DEFAULT_SLEEP_SECONDS if value is None else float(value)


def sleep_override_from_env(env: Mapping[str, str] | None = None) -> float | None:
    env = os.environ if env is None else env
    raw = env.get(SLEEP_OVERRIDE_VARIABLE)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{SLEEP_OVERRIDE_VARIABLE} must be a number of seconds, not {raw!r}") from None
    if value < 0:
        raise ValueError(f"{SLEEP_OVERRIDE_VARIABLE} must not be negative, not {raw!r}")
    return value


def make_handler(override: float | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> Callable[[ActionContext, DartClient], None]:
    """The handler, with its sleep injectable so it can be tested without waiting."""

    def handle(context: ActionContext, client: DartClient) -> None:
        action_type = context.action_type_name
        total = sleep_seconds(context, override)
        # Half the sleep, a progress report, the other half: a UI watching the action sees it move. Not for a
        # sleep too short to watch: the report would be two more requests and writes for nothing.
        if total >= VISIBLE_SLEEP_SECONDS:
            sleep(total / 2)
            client.report_progress(context.action_id, progress=0.5)
            sleep(total / 2)
        elif total > 0:
            sleep(total)
        extra_data: dict[str, Any] | None = None
        if action_type == "fake_action_that_fails":
            raise ExpectedFailure(f"{context.action['data'].get('name')} failed as expected")
        if action_type == "consume_subscription":
            # Reading the elements is all the original did; their state changes at check-in.
            count = sum(1 for _ in client.subscription_elements(context.action_id))
            log.info("action %s read %d subscription element(s)", context.action_id, count)
            extra_data = {"subscription_elements_read": count}
        elif action_type not in SUCCEEDING:
            raise ValueError(f"{NAME} does not support action type {action_type!r}")
        if extra_data is not None:  # progress 1 comes with the completion itself (reference §4.1)
            client.report_progress(context.action_id, progress=1.0, extra_data=extra_data)

    return handle


def run(env: Mapping[str, str] | None = None) -> int:
    """Run the one action named by the environment; returns the process exit code (see engines.sdk)."""
    environment = EngineEnvironment.from_env(env)
    return run_action(make_handler(sleep_override_from_env(env)), environment)


def register(api_url: str, token: str, **task_definition_settings: Any) -> dict[str, Any]:
    """Register the no_op engine, or update it if it is already registered; returns its envelope."""
    client = DartClient(api_url, token)
    engine = client.register_engine(no_op_engine(**task_definition_settings))
    register_subgraph_definitions(client, engine["id"])
    return engine


def register_subgraph_definitions(client: DartClient, engine_id: str) -> None:
    """The engine's UI recipes (the workflow chaining demo), each stored once by name, as the original's
    ``add_sub_graphs.py`` posted them after the engine."""
    path = f"/engine/{engine_id}/subgraph_definition"
    stored = {d["data"]["name"] for d in client.get(path) or []}
    for definition in subgraph_definitions():
        if definition["name"] not in stored:
            client.request("POST", path, {"data": definition})
