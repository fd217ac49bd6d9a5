"""`dart engine-worker --engine NAME` (issue 16): a long-lived process that takes its engine's launch messages
from the broker (``<prefix>-engine-<name>``, sent by services/adapters/warm_launcher.py) and forks each
action's engine from a warm parent (the local launcher's machinery: the same environment, log and supervision).

A message stays unacknowledged while its engine runs and is acknowledged once the engine has exited (its
action checked in, or failed as a lost engine here). So a worker that dies takes no action with it: the broker
gives its messages to another worker (a replica, or the restarted one), which decides per action:

- the action is no longer PENDING or RUNNING, or the message's intent is not its latest: nothing to do;
- PENDING with no engine recorded: start one (the first delivery);
- an engine recorded on this host that still runs (found by pid and its DART_ACTION_ID): adopt it, and
  fail its action if it exits without checking in;
- otherwise the engine is gone (a worker's engines die with its container): PENDING (it never checked out) is
  started again, once, under the action's version; RUNNING is failed as a lost engine.

The worker also stops the engines of actions that ended elsewhere (a cancel, a timeout). Replicas share the
queue; each message goes to one of them at a time."""

from __future__ import annotations

import json
import logging
import os
import queue as queue_module
import socket
import threading
import time
from typing import Any

from kombu import Consumer, Message, Producer

from services.adapters.engine_processes import engine_alive, engine_pids
from services.adapters.local_engines import LocalLauncher, local_launcher_from_settings
from services.adapters.warm_engines import WarmChild
from services.adapters.warm_launcher import WARM_TASK, WarmWorkerLauncher
from services.commands.context import Orchestration
from services.commands.launcher import Launcher
from services.commands.tracing import launching
from services.delivery.kombu_consumer import ConsumerLoop, message_text
from services.delivery.queues import QueueNames, connect, declare, queue
from services.runtime.settings import Settings

log = logging.getLogger("dart.engine_worker")
LIVE = ("PENDING", "RUNNING")


def engine_queue(prefix: str, engine: str) -> str:
    return QueueNames(prefix).group(f"engine-{engine}")


def warm_worker_engines(settings: Settings) -> list[str]:
    return [name.strip() for name in settings.warm_worker_engines.split(",") if name.strip()]


class BrokerPublisher:
    """Publishes launch messages to engine worker queues on a connection of its own (thread-safe)."""

    def __init__(self, url: str, options: dict[str, Any], prefix: str) -> None:
        self.url, self.options, self.prefix = url, options, prefix
        self._conn: Any = None
        self._declared: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, engine: str, message: dict[str, Any]) -> None:
        name = engine_queue(self.prefix, engine)
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = connect(self.url, self.options)
                    self._conn.ensure_connection(max_retries=3)
                    self._declared.clear()
                channel = self._conn.default_channel
                if name not in self._declared:
                    declare(channel, [name])
                    self._declared.add(name)
                Producer(channel).publish(json.dumps(message), exchange="", routing_key=name, delivery_mode=2,
                                          content_type="application/json", retry=True,
                                          retry_policy={"max_retries": 3})
            except Exception:
                conn, self._conn = self._conn, None
                if conn is not None:
                    conn.release()
                raise


def production_launcher(orch: Orchestration, api_url: str, settings: Settings) -> Launcher:
    """The ECS launcher, or, when ``warm_worker_engines`` names engines, the one that sends theirs to workers."""
    from services.adapters.ecs_launcher import ecs_launcher_from_settings
    from services.runtime.composition import broker_of

    engines = warm_worker_engines(settings)
    if not engines:
        return ecs_launcher_from_settings(orch, api_url, settings)
    url, options = broker_of(settings)
    return ecs_launcher_from_settings(orch, api_url, settings, launcher_class=WarmWorkerLauncher,
                                      publish=BrokerPublisher(url, options, settings.queue_prefix),
                                      warm_engines=engines)


class EngineWorker:
    """Decides what each launch message needs (see the module's docstring) and runs the engines, through a
    LocalLauncher whose launches are recorded as ``warm:<host>:<this pid>:<engine pid>``."""

    def __init__(self, launcher: LocalLauncher, done: queue_module.Queue[str]) -> None:
        self.launcher = launcher
        self.orch = launcher.orch
        self.host = socket.gethostname()
        launcher.task_prefix = f"{WARM_TASK}{self.host}:{os.getpid()}:"
        launcher.on_engine_exit = done.put
        self.done = done

    def take(self, request: dict[str, Any], redelivered: bool = False) -> bool:
        """Act on one launch message; True when an engine now runs for it (ack when ``done`` names it).
        ``redelivered``: the broker gave it out before (to a worker now gone, which may have started an engine
        without living to record it)."""
        action_id = str(request["action_id"])
        with self.launcher._lock:
            if action_id in self.launcher.children:  # its exit acknowledges this copy too
                log.warning("action %s: its launch message came back while its engine runs here", action_id)
                return True
        row = self.orch.reader.row("action", action_id)
        if row is None or row.data.get("state") not in LIVE:
            return False
        if self.launcher_pending_version(action_id, row.version) != request.get("pending_version"):
            log.info("action %s: a launch message for an earlier intent, dropped", action_id)
            return False
        task = row.data.get("ecs_task_arn")
        state = row.data.get("state")
        if task is None and state == "PENDING" and not (redelivered and engine_pids(action_id)):
            return self._start(row, request)
        pid = self._live_engine_here(action_id, task)
        if pid is not None:
            log.info("action %s: adopting its engine (pid %d) from a worker that is gone", action_id, pid)
            if task is None:
                self.launcher._record_launched(action_id, pid)
            threading.Thread(target=self._watch, args=(action_id, pid), daemon=True,
                             name=f"adopted:{action_id}").start()
            return True
        if state == "PENDING":
            log.warning("action %s: its worker is gone and its engine never checked out: starting it again",
                        action_id)
            return self._start(row, request)
        self.launcher.fail_if(action_id, ("RUNNING",), "its engine's worker is gone and the engine process with "
                                                       "it, without checking in")
        return False

    def launcher_pending_version(self, action_id: str, current: int) -> int:
        for event in reversed(self.orch.store.read_stream(f"action-{action_id}")):
            if event.type == "ActionPending":
                return event.stream_version
        return current

    def _start(self, row: Any, request: dict[str, Any]) -> bool:
        datastore = self.orch.reader.row("datastore", str(row.data.get("datastore_id")))
        action = {**row.data, "id": row.id, "_version": row.version, "_token": request.get("token")}
        with launching(self.orch.store, action):
            self.launcher.launch(action, datastore.data if datastore is not None else {})
        with self.launcher._lock:
            return row.id in self.launcher.children

    def _live_engine_here(self, action_id: str, task: Any) -> int | None:
        text = str(task or "")
        if text.startswith(WARM_TASK):
            host, _, pid = text[len(WARM_TASK):].rsplit(":", 2)
            if host == self.host and pid.isdigit() and engine_alive(int(pid), action_id):
                return int(pid)
            if host != self.host:
                return None
        pids = engine_pids(action_id)  # started here but never recorded (the worker died in between)
        return pids[0] if pids else None

    def _watch(self, action_id: str, pid: int) -> None:
        self.launcher.adopted[action_id] = pid  # where stop_engine finds it on a cancel
        try:
            WarmChild(pid, action_id, None).wait()
            self.launcher.fail_if(action_id, LIVE, f"its engine process (pid {pid}) exited without checking in")
        finally:
            self.launcher.adopted.pop(action_id, None)
            self.done.put(action_id)

    def stop_ended(self) -> None:
        """Stop the engines whose action ended elsewhere (cancelled, timed out, failed as stale)."""
        with self.launcher._lock:
            running = list(self.launcher.children) + list(self.launcher.adopted)
        for action_id in running:
            row = self.orch.reader.row("action", action_id)
            if row is not None and row.data.get("state") not in LIVE:
                reason = str(row.data.get("error_message") or "the action ended")
                self.launcher.stop_engine(action_id, row.data.get("ecs_task_arn"), reason)


class EngineWorkerConsumer(ConsumerLoop):
    """The engine queue's consumer: a message is acknowledged (from the consuming thread, as kombu needs)
    once its engine has exited, or at once when no engine runs for it."""

    def __init__(self, worker: EngineWorker, url: str, options: dict[str, Any], queue_name: str,
                 concurrency: int, check_every: float) -> None:
        super().__init__(url, options, queue_name, prefetch_count=concurrency)
        self.worker = worker
        self.held: dict[str, list[Message]] = {}
        self.check_every = check_every
        self._last_check = 0.0
        # SQS gives a message to another consumer once its visibility timeout has passed: a held message's is
        # extended every third of it while its engine runs (AMQP keeps it for as long as the connection).
        self.visibility = int(self.transport_options.get("visibility_timeout") or 60)
        self._last_extended = time.monotonic()

    def get_consumers(self, Consumer_: Any, channel: Any) -> list[Consumer]:
        declare(channel, [self.queue_name])
        return [Consumer_(queues=[queue(self.queue_name)], on_message=self._on_message,
                          prefetch_count=self.prefetch_count)]

    def released(self) -> None:
        self.held.clear()  # unacknowledged on a connection that is gone: the broker delivers them again

    def _on_message(self, message: Message) -> None:
        try:
            request = json.loads(message_text(message))
            action_id = str(request["action_id"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            log.error("%s: not a launch message (%s): dropped", self.queue_name, exc)
            message.ack()
            return
        try:
            running = self.worker.take(request, self._redelivered(message))
        except Exception:
            log.exception("action %s: the launch message failed; it comes back", action_id)
            message.requeue()
            return
        if running:
            self.held.setdefault(action_id, []).append(message)
            self._ack_finished()  # an engine quicker than this
        else:
            message.ack()

    def _redelivered(self, message: Message) -> bool:
        info = message.delivery_info or {}
        if info.get("redelivered"):  # AMQP
            return True
        receive_count = ((info.get("sqs_message") or {}).get("Attributes") or {}).get("ApproximateReceiveCount")
        return receive_count is not None and int(receive_count) > 1

    def on_iteration(self) -> None:
        self._ack_finished()
        now = time.monotonic()
        if now - self._last_check >= self.check_every:
            self._last_check = now
            try:
                self.worker.stop_ended()
            except Exception:
                log.exception("checking the running engines' actions failed")
        if self._sqs and now - self._last_extended >= self.visibility / 3:
            self._last_extended = now
            self._extend_visibility()

    def _extend_visibility(self) -> None:
        for action_id, messages in list(self.held.items()):
            for message in messages:
                info = message.delivery_info or {}
                receipt = (info.get("sqs_message") or {}).get("ReceiptHandle")
                if not receipt or not info.get("sqs_queue"):
                    continue
                try:
                    message.channel.sqs(queue=self.queue_name).change_message_visibility(
                        QueueUrl=info["sqs_queue"], ReceiptHandle=receipt, VisibilityTimeout=self.visibility)
                except Exception as exc:  # noqa: BLE001 - logged; the message may come back to a replica
                    log.warning("action %s: could not keep its launch message invisible: %s", action_id, exc)

    def _ack_finished(self) -> None:
        while True:
            try:
                action_id = self.worker.done.get_nowait()
            except queue_module.Empty:
                return
            for message in self.held.pop(action_id, []):
                message.ack()


def run_engine_worker(settings: Settings, engine: str, concurrency: int) -> int:
    from services.delivery import run_until_signalled
    from services.runtime.composition import action_logs, broker_of, build
    from services.runtime.logs import add_log_file

    container = build(settings, migrate=False)
    add_log_file(settings.home / "logs", f"engine-worker-{engine}")
    orch = Orchestration(container.store, settings.s3_datastores_root)
    launcher = local_launcher_from_settings(orch, settings.api_url or f"http://{settings.host}:{settings.port}/api/1",
                                            settings, action_logs(container))
    if launcher.warm_argv(engine) is None:
        raise ValueError(f"engine {engine!r} is not a built-in engine a warm parent can fork "
                         "(or DART_LOCAL_ENGINES_WARM is off)")
    done: queue_module.Queue[str] = queue_module.Queue()
    worker = EngineWorker(launcher, done)
    url, options = broker_of(settings)
    consumer = EngineWorkerConsumer(worker, url, options, engine_queue(settings.queue_prefix, engine),
                                    concurrency, settings.poll_interval)
    log.info("engine worker for %s on %s (host %s, pid %d)", engine, consumer.queue_name, worker.host, os.getpid())
    try:
        run_until_signalled(consumer)
        # Stopped (SIGTERM): the running engines get the stop grace to finish. Their messages, unacknowledged,
        # come back to a replica, which finds their actions ended and drops them, or adopts what still runs.
        deadline = time.monotonic() + settings.engine_stop_grace_seconds
        while launcher.children and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        if launcher.warm is not None:
            launcher.warm.close()  # the engines still running go on in their own sessions
    return 0
