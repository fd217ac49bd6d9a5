"""The engine SDK: what an engine process needs to run one action against dart over its REST API.

An engine learns everything from its environment (design.md §4): ``DART_ACTION_ID``, ``DART_ACTION_USER_ID``,
``DART_API_URL`` (e.g. ``http://127.0.0.1:5000/api/1``) and ``DART_API_TOKEN`` (``key:secret``). It then
follows the protocol of reference §10: check out the PENDING action, optionally report progress and patch its
datastore, and always check in a result.

Typical use::

    from engines.sdk import run_action

    def handle(context, client):
        ...  # raise to fail the action; the exception text and traceback become its error_message

    raise SystemExit(run_action(handle))

Only the standard library is used, so an engine image needs nothing beyond Python to talk to dart.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import random
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("dart.engine")

# Process exit codes of `run_action`, so a supervisor (the local launcher, ECS) can tell outcomes apart.
EXIT_SUCCEEDED = 0
EXIT_ACTION_FAILED = 1
EXIT_CHECKOUT_FAILED = 2
# Check-in itself failed: dart never heard the result, so whoever supervises the process must fail the action.
EXIT_CHECKIN_FAILED = 3

SUBSCRIPTION_PAGE_SIZE = 10000  # the page size the original engines used for subscription elements


class DartApiError(Exception):
    """dart answered with an error, or could not be reached at all.

    ``status`` is the HTTP status, or None when no response arrived (connection refused, reset, timeout).
    ``message`` is the server's ``error_message`` when it sent one.
    """

    def __init__(self, status: int | None, message: str, body: Any = None) -> None:
        self.status = status
        self.message = message
        self.body = body
        super().__init__(f"HTTP {status}: {message}" if status is not None else message)


class ActionFailure(Exception):
    """A failure whose message is the whole story for the user (one line a data engineer can act on): it is
    checked in without a traceback, which goes to the engine's log instead."""


class MissingEnvironment(RuntimeError):
    """A required ``DART_*`` variable is not set; the message names it."""


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying when dart is unreachable or answers 5xx.

    The original client retried check-out and check-in for about two minutes, which rides out a restart
    of the web tier. 4xx answers are decisions, not outages, and are never retried.
    """

    total_seconds: float = 120.0
    initial_delay: float = 0.5
    max_delay: float = 10.0
    multiplier: float = 2.0

    def delays(self) -> Iterator[float]:
        """Successive waits, with jitter so a fleet of engines does not hammer a recovering server in step."""
        delay = self.initial_delay
        while True:
            yield delay * random.uniform(0.5, 1.0)
            delay = min(self.max_delay, delay * self.multiplier)


NO_RETRIES = RetryPolicy(total_seconds=0.0)


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


class DartClient:
    """A small client of dart's REST API, speaking as an engine (Basic auth with ``key:secret``)."""

    def __init__(self, api_url: str, token: str, timeout: float = 30.0,
                 retries: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        key, sep, secret = token.partition(":")
        if not sep or not key or not secret:
            raise ValueError("the API token must be key:secret")
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.retries = RetryPolicy() if retries is None else retries
        # Basic is what the original engines sent; dart also accepts it from every other client.
        self._auth = "Basic " + base64.b64encode(token.encode()).decode()
        self._sleep = sleep
        self._clock = clock

    # -- transport -------------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None,
                params: Mapping[str, Any] | None = None) -> Any:
        """Send one request (retrying outages per the policy) and return the decoded JSON body."""
        url = self.api_url + "/" + path.lstrip("/")
        if params:
            url += "?" + urllib.parse.urlencode(
                {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in params.items()}
            )
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": self._auth, "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if method == "POST":
            # A POST retried after the server committed it but before we heard back must not create twice;
            # dart treats a repeated Idempotency-Key as the same request.
            headers["Idempotency-Key"] = str(uuid.uuid4())
        deadline = self._clock() + self.retries.total_seconds
        delays = self.retries.delays()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._send(method, url, data, headers)
            except DartApiError as exc:
                retryable = exc.status is None or exc.status >= 500
                if not retryable:
                    raise
                delay = next(delays)
                if self._clock() + delay > deadline:
                    raise
                log.warning("%s %s failed (attempt %d: %s); retrying in %.1f s", method, path, attempt, exc, delay)
                self._sleep(delay)

    def _send(self, method: str, url: str, data: bytes | None, headers: dict[str, str]) -> Any:
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            try:
                raw = exc.read()
            except (OSError, http.client.HTTPException):
                raw = b""
            finally:
                exc.close()
            parsed = _decode(raw)
            message = parsed.get("error_message") if isinstance(parsed, dict) else None
            raise DartApiError(exc.code, str(message or exc.reason or f"HTTP {exc.code}"), parsed) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            # No (complete) response: refused, reset, timed out, or the connection dropped mid-answer.
            reason = getattr(exc, "reason", None) or exc
            raise DartApiError(None, f"cannot reach dart at {url}: {reason}") from exc
        parsed = _decode(raw)
        if raw and parsed is None:
            raise DartApiError(status, f"dart answered {status} with a body that is not JSON: {raw[:200]!r}")
        return parsed

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
        results = self._results("PUT", f"/engine/action/{_quote(action_id)}/checkout")
        if not isinstance(results, dict) or not {"engine", "action", "datastore"} <= set(results):
            raise DartApiError(200, f"check-out answered without engine, action and datastore: {results!r}")
        return ActionContext(results["engine"], results["action"], results["datastore"])

    def checkin(self, action_id: str, succeeded: bool, error_message: str | None = None,
                consume_subscription_state: str | None = None) -> None:
        """Report the result: the action becomes FINISHING and the orchestrator completes it."""
        if consume_subscription_state not in (None, "SUCCESS", "FAILURE"):
            raise ValueError("consume_subscription_state must be SUCCESS, FAILURE or None")
        self._results("PUT", f"/engine/action/{_quote(action_id)}/checkin", {
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
        result: dict[str, Any] = self._results("PATCH", f"/action/{_quote(action_id)}", operations)
        return result

    def patch_datastore(self, datastore_id: str, **fields: Any) -> dict[str, Any]:
        """Publish datastore fields (host, port, connection_url, extra_data, state ...); returns the datastore."""
        if not fields:
            raise ValueError("patch_datastore needs at least one field")
        operations = [{"op": "add", "path": f"/data/{_pointer(name)}", "value": value}
                      for name, value in fields.items()]
        result: dict[str, Any] = self._results("PATCH", f"/datastore/{_quote(datastore_id)}", operations)
        return result

    def subscription_elements(self, action_id: str) -> Iterator[dict[str, Any]]:
        """Every subscription element assigned to a ``consume_subscription`` action, page by page."""
        offset = 0
        while True:
            page = self._results("GET", f"/action/{_quote(action_id)}/subscription/elements",
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
        replaced: dict[str, Any] = self._results("PUT", f"/engine/{_quote(existing['id'])}", {"data": body})
        return replaced


def _quote(segment: str) -> str:
    return urllib.parse.quote(str(segment), safe="")


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


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
