"""The engine SDK: what an engine process needs to run one action against dart over its REST API.

An engine learns everything from its environment (design.md §4): ``DART_ACTION_ID``, ``DART_ACTION_USER_ID``,
``DART_API_URL`` (e.g. ``http://127.0.0.1:5000/api/1``) and ``DART_API_TOKEN`` (``key:secret``); for a run a
schedule started, ``DART_SCHEDULED_TIME`` (``scheduled_time()``: what date tokens stand for). It then
follows the protocol of reference §10: check out the PENDING action, optionally report progress and patch its
datastore, and always check in a result.

Typical use::

    from engines.sdk import run_action

    def handle(context, client):
        ...  # raise to fail the action; the exception text and traceback become its error_message

    raise SystemExit(run_action(handle))

The HTTP transport is the scripts' client's (services/client/transport.py, standard library only), so an
engine image needs nothing beyond Python to talk to dart, and retries, errors and idempotency keys behave
the same for engines and scripts.
"""

from __future__ import annotations

import logging
import os
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.client.errors import DartApiError
from services.client.transport import ALL_SERVER_ERRORS, NO_RETRIES, RetryPolicy, Transport, quote

log = logging.getLogger("dart.engine")

# Process exit codes of `run_action`, so a supervisor (the local launcher, ECS) can tell outcomes apart.
EXIT_SUCCEEDED = 0
EXIT_ACTION_FAILED = 1
EXIT_CHECKOUT_FAILED = 2
# Check-in itself failed: dart never heard the result, so whoever supervises the process must fail the action.
EXIT_CHECKIN_FAILED = 3

SUBSCRIPTION_PAGE_SIZE = 10000  # the page size the original engines used for subscription elements


def scheduled_time(env: Mapping[str, str] | None = None) -> datetime | None:
    """The time the schedule's fire that started this run was for (``DART_SCHEDULED_TIME``, UTC), or None for
    a run no schedule started. A backfilled run gets its own time, so its date tokens name its own day."""
    value = (os.environ if env is None else env).get("DART_SCHEDULED_TIME")
    if not value:
        return None
    t = datetime.fromisoformat(value)
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


class ActionFailure(Exception):
    """A failure whose message is the whole story for the user (one line a data engineer can act on): it is
    checked in without a traceback, which goes to the engine's log instead."""


class MissingEnvironment(RuntimeError):
    """A required ``DART_*`` variable is not set; the message names it."""




@dataclass
class ActionContext:
    """What check-out returned: the engine, action and datastore envelopes (``{id, version_id, data, ...}``).

    A ``consume_subscription`` handler may set ``consume_subscription_state`` ("SUCCESS" or "FAILURE") to
    decide the fate of its subscription elements independently of the action's own result (reference §9.3).
    """

    engine: dict[str, Any]
    action: dict[str, Any]
    datastore: dict[str, Any]
    consume_subscription_state: str | None = None

    @property
    def action_id(self) -> str:
        return str(self.action["id"])

    @property
    def action_type_name(self) -> str:
        return str(self.action["data"].get("action_type_name"))

    @property
    def action_args(self) -> dict[str, Any]:
        return dict(self.action["data"].get("args") or {})

    @property
    def datastore_id(self) -> str:
        return str(self.datastore["id"])

    @property
    def datastore_args(self) -> dict[str, Any]:
        return dict(self.datastore["data"].get("args") or {})


@dataclass(frozen=True)
class EngineEnvironment:
    """The per-run input an engine receives from whoever launched it."""

    action_id: str
    user_id: str
    api_url: str
    api_token: str

    VARIABLES = ("DART_ACTION_ID", "DART_ACTION_USER_ID", "DART_API_URL", "DART_API_TOKEN")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EngineEnvironment:
        env = os.environ if env is None else env
        missing = [name for name in cls.VARIABLES if not env.get(name)]
        if missing:
            raise MissingEnvironment(
                f"the engine needs {', '.join(missing)} in its environment (set by the launcher)"
            )
        return cls(env["DART_ACTION_ID"], env["DART_ACTION_USER_ID"], env["DART_API_URL"], env["DART_API_TOKEN"])

    def client(self, **kwargs: Any) -> DartClient:
        return DartClient(self.api_url, self.api_token, **kwargs)


def _pointer(segment: str) -> str:
    """One RFC 6901 reference token: `~` and `/` inside a field name must be escaped."""
    return segment.replace("~", "~0").replace("/", "~1")


def run_headers(env: Mapping[str, str]) -> dict[str, str]:
    """The run's trace and correlation the launcher handed the engine (``TRACEPARENT``, ``DART_CORRELATION_ID``),
    sent back on every request so the engine's check-out, progress and check-in join the run's trace."""
    headers = {}
    if env.get("TRACEPARENT"):
        headers["traceparent"] = env["TRACEPARENT"]
    if env.get("DART_CORRELATION_ID"):
        headers["X-Dart-Correlation-Id"] = env["DART_CORRELATION_ID"]
    return headers


class DartClient:
    """A small client of dart's REST API, speaking as an engine (Basic auth with ``key:secret``)."""

    def __init__(self, api_url: str, token: str, timeout: float = 30.0,
                 retries: RetryPolicy | None = None,
                 sleep: Callable[[float], None] | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        # The scripts' transport (services/client/transport.py), retrying every 5xx as engines always have:
        # an engine that cannot check in loses its action's result, so it rides out any server error.
        timing = {k: v for k, v in (("sleep", sleep), ("clock", clock)) if v is not None}
        self.transport = Transport(api_url, token, timeout=timeout, retries=retries,
                                   retry_statuses=ALL_SERVER_ERRORS, headers=run_headers(os.environ),
                                   **timing)  # type: ignore[arg-type]
        self.api_url = self.transport.api_url
        self.timeout = timeout
        self.retries = self.transport.retries

    # -- transport -------------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None,
                params: Mapping[str, Any] | None = None) -> Any:
        """Send one request (retrying outages per the policy) and return the decoded JSON body."""
        return self.transport.request(method, path, body, params)

    def _results(self, method: str, path: str, body: Any = None,
                 params: Mapping[str, Any] | None = None) -> Any:
        answer = self.request(method, path, body, params)
        return answer.get("results") if isinstance(answer, dict) else answer

    # -- generic reads ---------------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """``GET`` any path under the API prefix and return its ``results`` (e.g. ``get("/dataset/ID")``)."""
        return self._results("GET", path, params=params)

    # -- the engine protocol (reference §10) -----------------------------------------------------------

    def checkout(self, action_id: str) -> ActionContext:
        """Take a PENDING action: it becomes RUNNING and the answer holds everything the engine needs."""
        # One Idempotency-Key for every retry of this check-out: a check-out dart committed but whose answer was
        # lost (dart killed mid-answer) is answered again on the retry, instead of "no longer PENDING".
        answer = self.transport.request("PUT", f"/engine/action/{quote(action_id)}/checkout",
                                        headers={"Idempotency-Key": str(uuid.uuid4())})
        results = answer.get("results") if isinstance(answer, dict) else answer
        if not isinstance(results, dict) or not {"engine", "action", "datastore"} <= set(results):
            raise DartApiError(200, f"check-out answered without engine, action and datastore: {results!r}")
        return ActionContext(results["engine"], results["action"], results["datastore"])

    def checkin(self, action_id: str, succeeded: bool, error_message: str | None = None,
                consume_subscription_state: str | None = None) -> None:
        """Report the result: the action becomes FINISHING and the orchestrator completes it."""
        if consume_subscription_state not in (None, "SUCCESS", "FAILURE"):
            raise ValueError("consume_subscription_state must be SUCCESS, FAILURE or None")
        self._results("PUT", f"/engine/action/{quote(action_id)}/checkin", {
            "state": "SUCCESS" if succeeded else "FAILURE",
            "error_message": error_message,
            "consume_subscription_state": consume_subscription_state,
        })

    def report_progress(self, action_id: str, progress: float | None = None,
                        extra_data: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Set the action's ``progress`` (0..1) and/or ``extra_data``; returns the updated action."""
        if progress is not None and not 0 <= progress <= 1:
            raise ValueError(f"progress must be between 0 and 1, not {progress}")
        operations = []
        # `add` replaces a member that exists and creates one that does not (RFC 6902 §4.1), so it works
        # whether or not the action ever had progress.
        if progress is not None:
            operations.append({"op": "add", "path": "/data/progress", "value": progress})
        if extra_data is not None:
            operations.append({"op": "add", "path": "/data/extra_data", "value": extra_data})
        if not operations:
            return None
        result: dict[str, Any] = self._results("PATCH", f"/action/{quote(action_id)}", operations)
        return result

    def patch_datastore(self, datastore_id: str, **fields: Any) -> dict[str, Any]:
        """Publish datastore fields (host, port, connection_url, extra_data, state ...); returns the datastore."""
        if not fields:
            raise ValueError("patch_datastore needs at least one field")
        operations = [{"op": "add", "path": f"/data/{_pointer(name)}", "value": value}
                      for name, value in fields.items()]
        result: dict[str, Any] = self._results("PATCH", f"/datastore/{quote(datastore_id)}", operations)
        return result

    def subscription_elements(self, action_id: str) -> Iterator[dict[str, Any]]:
        """Every subscription element assigned to a ``consume_subscription`` action, page by page."""
        offset = 0
        while True:
            page = self._results("GET", f"/action/{quote(action_id)}/subscription/elements",
                                 params={"limit": SUBSCRIPTION_PAGE_SIZE, "offset": offset})
            if not page:
                return
            yield from page
            offset += len(page)

    # -- registration ----------------------------------------------------------------------------------

    def find_engine(self, name: str) -> dict[str, Any] | None:
        """The engine envelope registered under ``name``, or None."""
        found = self._results("GET", "/engine", params={"filters": [f"name = {name}"], "limit": 1})
        return found[0] if found else None

    def register_engine(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create the engine, or replace the one of the same name (so re-registering is safe)."""
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("an engine registration needs a name")
        existing = self.find_engine(name)
        if existing is None:
            try:
                created: dict[str, Any] = self._results("POST", "/engine", {"data": body})
                return created
            except DartApiError as exc:
                # Another process registered the same name between our lookup and our POST: update theirs.
                existing = self.find_engine(name) if exc.status == 400 else None
                if existing is None:
                    raise
        replaced: dict[str, Any] = self._results("PUT", f"/engine/{quote(existing['id'])}", {"data": body})
        return replaced


def run_action(handler: Callable[[ActionContext, DartClient], Any], env: EngineEnvironment | None = None,
               client: DartClient | None = None) -> int:
    """Run one action: check out, call ``handler(context, client)``, check in; return a process exit code.

    A handler that returns succeeds the action; one that raises fails it, with the exception text and
    traceback as the error_message. The check-in happens in ``finally``, so even an interrupt (SystemExit,
    KeyboardInterrupt) still reports FAILURE before propagating.
    """
    env = EngineEnvironment.from_env() if env is None else env
    client = env.client() if client is None else client
    try:
        context = client.checkout(env.action_id)
    except DartApiError as exc:
        # Typically a 400: the action is no longer PENDING (another engine took it, or it was cancelled).
        log.error("could not check out action %s: %s", env.action_id, exc)
        return EXIT_CHECKOUT_FAILED
    except Exception:
        log.exception("could not check out action %s", env.action_id)
        return EXIT_CHECKOUT_FAILED
    log.info("checked out action %s (%s)", env.action_id, context.action_type_name)
    error: str | None = None
    try:
        handler(context, client)
    except ActionFailure as exc:
        error = str(exc)
        log.exception("action %s failed", env.action_id)
    except Exception as exc:  # noqa: BLE001 - any failure of the handler is the action's failure
        # The original's format: the message, then the traceback, so the UI shows the cause first.
        error = f"{exc}\n\n\n{traceback.format_exc()}"
        log.error("action %s failed: %s", env.action_id, exc)
    except BaseException as exc:
        # Interrupted (SIGINT, sys.exit): still tell dart, then let the interruption go on.
        error = f"the engine was interrupted: {exc!r}\n\n\n{traceback.format_exc()}"
        raise
    finally:
        try:
            client.checkin(env.action_id, succeeded=error is None, error_message=error,
                           consume_subscription_state=context.consume_subscription_state)
            checked_in = True
        except Exception:
            log.exception("could not check in action %s", env.action_id)
            checked_in = False
    if not checked_in:
        return EXIT_CHECKIN_FAILED
    log.info("checked in action %s: %s", env.action_id, "SUCCESS" if error is None else "FAILURE")
    return EXIT_SUCCEEDED if error is None else EXIT_ACTION_FAILED


__all__ = [
    "EXIT_ACTION_FAILED",
    "EXIT_CHECKIN_FAILED",
    "EXIT_CHECKOUT_FAILED",
    "EXIT_SUCCEEDED",
    "NO_RETRIES",
    "ActionContext",
    "ActionFailure",
    "DartApiError",
    "DartClient",
    "EngineEnvironment",
    "MissingEnvironment",
    "RetryPolicy",
    "run_action",
]
