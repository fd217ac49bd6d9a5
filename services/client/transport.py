"""The one HTTP transport of dart's Python clients (the script client in this package and the engine SDK,
engines/sdk.py): Basic auth with ``key:secret``, JSON in and out, retries with backoff and jitter on outages,
an ``Idempotency-Key`` on every POST, and Server-Sent Events read line by line.

It uses only the standard library (urllib): an engine image needs nothing beyond Python to talk to dart, and
the scripts' client needs nothing the server does not already install. A connection is opened per request,
which costs a loopback round trip (~0.1 ms) and nothing else at the request rates a script or engine makes.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import random
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Collection, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from services.client.errors import DartApiError, error_for

log = logging.getLogger("dart.client")

# What scripts retry by default: an outage (no answer) and 503 (overloaded, not ready, at its stream limit).
# Any other answer is a decision of the server, which a retry would only repeat.
SCRIPT_RETRY_STATUSES: frozenset[int] = frozenset({503})
ALL_SERVER_ERRORS: frozenset[int] = frozenset(range(500, 600))


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying when dart is unreachable or answers a retryable status.

    The original client retried check-out and check-in for about two minutes, which rides out a restart
    of the web tier.
    """

    total_seconds: float = 120.0
    initial_delay: float = 0.5
    max_delay: float = 10.0
    multiplier: float = 2.0

    def delays(self) -> Iterator[float]:
        """Successive waits, with jitter so a fleet of clients does not hammer a recovering server in step."""
        delay = self.initial_delay
        while True:
            yield delay * random.uniform(0.5, 1.0)
            delay = min(self.max_delay, delay * self.multiplier)


NO_RETRIES = RetryPolicy(total_seconds=0.0)


def basic_auth(token: str) -> str:
    """The Authorization header for ``key:secret`` (ValueError naming the form otherwise)."""
    key, sep, secret = token.partition(":")
    if not sep or not key or not secret:
        raise ValueError("the API token must be key:secret")
    return "Basic " + base64.b64encode(token.encode()).decode()


def quote(segment: Any) -> str:
    """One path segment, escaped (ids are opaque to clients)."""
    return urllib.parse.quote(str(segment), safe="")


def query_string(params: Mapping[str, Any] | None) -> str:
    """``?a=1&filters=[...]``: lists and objects as JSON (the API's filters and order_by); None left out."""
    if not params:
        return ""
    pairs = {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in params.items() if v is not None}
    return "?" + urllib.parse.urlencode(pairs) if pairs else ""


@dataclass(frozen=True)
class ServerSentEvent:
    """One Server-Sent Events message: ``id`` (dart: the global position), ``event`` (the type) and ``data``."""

    id: str | None
    event: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


class Transport:
    """Send requests to ``api_url`` (e.g. ``http://127.0.0.1:5000/api/1``) as the key ``token``."""

    def __init__(self, api_url: str, token: str, *, timeout: float = 30.0, retries: RetryPolicy | None = None,
                 retry_statuses: Collection[int] = SCRIPT_RETRY_STATUSES, headers: Mapping[str, str] | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.retries = RetryPolicy() if retries is None else retries
        self.retry_statuses = frozenset(retry_statuses)
        self.headers = {"Authorization": basic_auth(token), "Accept": "application/json", **(headers or {})}
        self._sleep = sleep
        self._clock = clock

    def request(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None, idempotency_key: str | bool = True) -> Any:
        """Send one request (retrying outages per the policy) and return the decoded JSON body.

        A POST carries an ``Idempotency-Key`` (a fresh one unless given; ``False`` for none), the same on every
        retry: a POST the server committed but whose answer was lost is not done twice.
        """
        url = self.api_url + "/" + path.lstrip("/") + query_string(params)
        data = None if body is None else json.dumps(body).encode()
        sent = {**self.headers, **(headers or {})}
        if data is not None:
            sent["Content-Type"] = "application/json"
        if method == "POST" and idempotency_key is not False:
            sent["Idempotency-Key"] = idempotency_key if isinstance(idempotency_key, str) else str(uuid.uuid4())
        return self._retrying(method, path, lambda: self._send(method, url, data, sent))

    def stream(self, path: str, params: Mapping[str, Any] | None = None,
               headers: Mapping[str, str] | None = None, timeout: float | None = None) -> Generator[ServerSentEvent, None, None]:
        """``GET`` a Server-Sent Events path and yield its messages until the stream ends (the server ended it,
        or the connection dropped; closed when the iterator is). ``timeout``: the longest silence tolerated."""
        url = self.api_url + "/" + path.lstrip("/") + query_string(params)
        sent = {**self.headers, "Accept": "text/event-stream", **(headers or {})}
        response = self._retrying("GET", path, lambda: self._open(url, sent, timeout))
        try:
            yield from _messages(response)
        except (OSError, http.client.HTTPException) as exc:
            # The connection dropped mid-stream: the stream ends here; a reader resumes after what it saw.
            log.info("the stream %s ended: %s", path, exc)
        finally:
            response.close()

    def lines(self, path: str, params: Mapping[str, Any] | None = None,
              timeout: float | None = None) -> Generator[str, None, None]:
        """``GET`` a streamed text path and yield its lines as they arrive."""
        url = self.api_url + "/" + path.lstrip("/") + query_string(params)
        response = self._retrying("GET", path, lambda: self._open(url, {**self.headers, "Accept": "text/plain"},
                                                                  timeout))
        try:
            for raw in response:
                yield raw.decode("utf-8", errors="replace").rstrip("\n")
        finally:
            response.close()

    # -- internals -------------------------------------------------------------------------------------

    def _retrying(self, method: str, path: str, send: Callable[[], Any]) -> Any:
        deadline = self._clock() + self.retries.total_seconds
        delays = self.retries.delays()
        attempt = 0
        while True:
            attempt += 1
            try:
                return send()
            except DartApiError as exc:
                if exc.status is not None and exc.status not in self.retry_statuses:
                    raise
                delay = next(delays)
                if self._clock() + delay > deadline:
                    raise
                log.warning("%s %s failed (attempt %d: %s); retrying in %.1f s", method, path, attempt, exc, delay)
                self._sleep(delay)

    def _open(self, url: str, headers: Mapping[str, str], timeout: float | None) -> Any:
        req = urllib.request.Request(url, method="GET", headers=dict(headers))
        try:
            return urllib.request.urlopen(req, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as exc:
            raise _answer_error(exc) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise error_for(None, f"cannot reach dart at {url}: {reason}") from exc

    def _send(self, method: str, url: str, data: bytes | None, headers: Mapping[str, str]) -> Any:
        req = urllib.request.Request(url, data=data, method=method, headers=dict(headers))
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            raise _answer_error(exc) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            # No (complete) response: refused, reset, timed out, or the connection dropped mid-answer.
            reason = getattr(exc, "reason", None) or exc
            raise error_for(None, f"cannot reach dart at {url}: {reason}") from exc
        parsed = _decode(raw)
        if raw and parsed is None:
            raise error_for(status, f"dart answered {status} with a body that is not JSON: {raw[:200]!r}")
        return parsed


def _answer_error(exc: urllib.error.HTTPError) -> DartApiError:
    try:
        raw = exc.read()
    except (OSError, http.client.HTTPException):
        raw = b""
    finally:
        exc.close()
    parsed = _decode(raw)
    message = parsed.get("error_message") or parsed.get("description") if isinstance(parsed, dict) else None
    return error_for(exc.code, str(message or exc.reason or f"HTTP {exc.code}"), parsed)


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _messages(response: Any) -> Iterator[ServerSentEvent]:
    """The SSE wire format (WHATWG): fields until a blank line; comments (``:``) and ``retry:`` skipped."""
    event_id: str | None = None
    event, data = "message", list[str]()
    for raw in response:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield ServerSentEvent(event_id, event, "\n".join(data))
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id":
            event_id = value
