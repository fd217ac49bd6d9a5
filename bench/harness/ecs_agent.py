"""A small ECS agent for tests and benchmarks: moto speaks the ECS wire protocol but runs no containers, so
this agent does what the real one would. It polls moto's ECS API (``list_tasks``/``describe_tasks`` on one
cluster) for new tasks, starts a local process for each container of each task with the container's
environment plus the task's container overrides, and reports the task's end through moto: ``stop_task`` when
the process exits (moto then answers lastStatus and desiredStatus STOPPED).

moto 5.2.1 creates FARGATE tasks already RUNNING (its PROVISIONING/PENDING transitions are commented out)
and, by default, moves a task one step towards STOPPED (RUNNING -> DEACTIVATING -> ... -> STOPPED) every
time it is described (``ecs::task`` progression "manual", times 1). ``start`` therefore sets that model's
transition to manual with a huge ``times`` through ``POST /moto-api/state-manager/set-transition``, so a task
changes state only when this agent (or a test) says so.

A task whose container overrides name a held action (``hold``) is left alone until ``release``: a task
that exists but whose engine never starts. ``kill(action_id)`` SIGKILLs an engine (a lost container). A task
stopped from outside (``stop_task`` by dart) has its processes killed. A container whose task definition logs
with the ``awslogs`` driver has its output put, line by line, into moto's CloudWatch Logs at the group and
stream the driver would use (``<prefix>/<container>/<task id>``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import boto3

from bench.harness.moto import AWS_ENV

REPO = Path(__file__).resolve().parents[2]
IMAGE_COMMANDS = {"dart/no_op_engine:latest": [sys.executable, "-m", "engines.no_op"]}
NEVER = 10**9  # describe calls before moto would move a task on by itself


def set_manual_transitions(endpoint: str, model_name: str = "ecs::task", times: int = NEVER) -> None:
    body = json.dumps({"model_name": model_name, "transition": {"progression": "manual", "times": times}})
    request = urllib.request.Request(f"{endpoint}/moto-api/state-manager/set-transition", data=body.encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()


def awslogs_target(container: dict[str, Any], task_arn: str) -> tuple[str, str] | None:
    """(group, stream) the awslogs driver would write the container's output to, or None."""
    config = container.get("logConfiguration") or {}
    options = config.get("options") or {}
    if config.get("logDriver") != "awslogs" or not options.get("awslogs-group"):
        return None
    prefix, task_id = options.get("awslogs-stream-prefix"), task_arn.rsplit("/", 1)[-1]
    return options["awslogs-group"], f"{prefix}/{container['name']}/{task_id}" if prefix else task_id


def ecs_client(endpoint: str, region: str = "us-east-1") -> Any:
    return boto3.client("ecs", region_name=region, endpoint_url=endpoint,
                        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"])


@dataclass
class AgentTask:
    arn: str
    action_id: str | None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)
    stopped: bool = False
    stopped_outside: bool = False  # stop_task by dart, not by the agent after its containers exited


class EcsAgent:
    def __init__(self, endpoint: str, cluster: str, region: str = "us-east-1",
                 commands: dict[str, list[str]] | None = None, poll_interval: float = 0.05,
                 log_dir: Path | None = None) -> None:
        self.endpoint = endpoint
        self.region = region
        self.cluster = cluster
        self.client = ecs_client(endpoint, region)
        self.commands = {**IMAGE_COMMANDS, **(commands or {})}
        self.poll_interval = poll_interval
        self.log_dir = log_dir
        self.tasks: dict[str, AgentTask] = {}  # every task seen, by ARN
        self.held: set[str] = set()
        self.errors: list[str] = []
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._definitions: dict[str, dict[str, Any]] = {}
        self._watchers: list[threading.Thread] = []

    # ------------------------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        set_manual_transitions(self.endpoint)
        self.client.create_cluster(clusterName=self.cluster)  # idempotent in moto
        self._thread = threading.Thread(target=self._run, name="ecs-agent", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        with self._lock:
            processes = [p for t in self.tasks.values() for p in t.processes]
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        for watcher in list(self._watchers):
            watcher.join(10)  # their stop_task calls land before moto goes away

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------------------------- test hooks
    def hold(self, action_id: str) -> None:
        """Leave tasks for this action without a process until ``release``."""
        with self._lock:
            self.held.add(action_id)

    def release(self, action_id: str) -> None:
        with self._lock:
            self.held.discard(action_id)
            for arn, task in list(self.tasks.items()):
                if task.action_id == action_id and not task.processes and not task.stopped:
                    del self.tasks[arn]  # forget it: the next poll starts it

    def kill(self, action_id: str) -> int:
        """SIGKILL the engine process(es) of the action's task (a lost container); returns how many."""
        with self._lock:
            processes = [p for t in self.tasks.values() if t.action_id == action_id for p in t.processes
                         if p.poll() is None]
        for process in processes:
            os.kill(process.pid, signal.SIGKILL)
        return len(processes)

    def task_of(self, action_id: str) -> AgentTask | None:
        with self._lock:
            return next((t for t in self.tasks.values() if t.action_id == action_id), None)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
        """Wait until ``predicate`` (evaluated under the agent's lock) holds, woken by the agent's changes."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    # ------------------------------------------------------------------------------------- polling
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll()
            except Exception as exc:  # noqa: BLE001 - keep polling; the test sees the error list
                self.errors.append(repr(exc))
            self._stop.wait(self.poll_interval)

    def _poll(self) -> None:
        arns = self.client.list_tasks(cluster=self.cluster, desiredStatus="RUNNING")["taskArns"]
        with self._lock:
            new = [a for a in arns if a not in self.tasks]
            running = [a for a, t in self.tasks.items() if t.processes and not t.stopped]
        if new:
            for task in self.client.describe_tasks(cluster=self.cluster, tasks=new)["tasks"]:
                self._start_task(task)
        if running:
            # Stopped from outside (dart's stop_task): the containers go too.
            for task in self.client.describe_tasks(cluster=self.cluster, tasks=running)["tasks"]:
                if task.get("desiredStatus") == "STOPPED":
                    with self._lock:
                        known = self.tasks.get(task["taskArn"])
                        processes = list(known.processes) if known else []
                        if known is not None:
                            known.stopped_outside = True  # its stoppedReason is dart's: not overwritten
                    for process in processes:
                        if process.poll() is None:
                            process.kill()

    def _definition(self, arn: str) -> dict[str, Any]:
        if arn not in self._definitions:
            described = self.client.describe_task_definition(taskDefinition=arn)
            self._definitions[arn] = described["taskDefinition"]
        return self._definitions[arn]

    def _start_task(self, task: dict[str, Any]) -> None:
        arn = task["taskArn"]
        overrides = {o["name"]: o for o in (task.get("overrides") or {}).get("containerOverrides") or []}
        action_id = next((e["value"] for o in overrides.values() for e in o.get("environment") or []
                          if e["name"] == "DART_ACTION_ID"), None)
        with self._lock:
            if arn in self.tasks:
                return
            agent_task = AgentTask(arn, action_id)
            self.tasks[arn] = agent_task
            if action_id in self.held:
                self._changed.notify_all()
                return
        definition = self._definition(task["taskDefinitionArn"])
        base = {k: v for k, v in os.environ.items() if not k.startswith("DART_")}
        for container in definition.get("containerDefinitions") or []:
            command = container.get("command") or self.commands.get(str(container.get("image")))
            if not command:
                self.errors.append(f"no command for image {container.get('image')!r} of task {arn}")
                continue
            env = dict(base)
            env.update({e["name"]: e["value"] for e in container.get("environment") or []})
            override = overrides.get(container["name"]) or {}
            env.update({e["name"]: e["value"] for e in override.get("environment") or []})
            out: Any = subprocess.DEVNULL
            if self.log_dir is not None:
                # handed to the child, closed here right after Popen
                out = open(self.log_dir / f"engine-{action_id or arn.rsplit('/', 1)[-1]}.log", "ab")  # noqa: SIM115
            shipped = awslogs_target(container, arn)
            process = subprocess.Popen(command, env=env, cwd=REPO, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE if shipped else out, stderr=subprocess.STDOUT)
            if shipped:  # the awslogs driver: each line to CloudWatch Logs (and the log file)
                shipper = threading.Thread(target=self._ship, args=(process, shipped, out), daemon=True)
                self._watchers.append(shipper)
                shipper.start()
            elif out is not subprocess.DEVNULL:
                out.close()
            with self._lock:
                agent_task.processes.append(process)
            watcher = threading.Thread(target=self._watch, args=(agent_task, process), daemon=True,
                                       name=f"ecs-agent:{action_id}")
            self._watchers.append(watcher)
            watcher.start()
        with self._lock:
            self._changed.notify_all()

    def _ship(self, process: subprocess.Popen[bytes], target: tuple[str, str], copy: Any) -> None:
        group, stream = target
        logs = boto3.client("logs", region_name=self.region, endpoint_url=self.endpoint,
                            aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"])
        for create in (lambda: logs.create_log_group(logGroupName=group),
                       lambda: logs.create_log_stream(logGroupName=group, logStreamName=stream)):
            try:
                create()
            except logs.exceptions.ResourceAlreadyExistsException:
                pass
        assert process.stdout is not None
        for line in process.stdout:
            if copy is not subprocess.DEVNULL:
                copy.write(line)
                copy.flush()
            message = line.decode(errors="replace").rstrip("\n")
            if message:  # CloudWatch refuses an empty message; the awslogs driver skips blank lines too
                logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
                    {"timestamp": int(time.time() * 1000), "message": message}])
        if copy is not subprocess.DEVNULL:
            copy.close()

    def _watch(self, task: AgentTask, process: subprocess.Popen[bytes]) -> None:
        code = process.wait()
        with self._lock:
            task.exit_codes.append(code)
            done = len(task.exit_codes) == len(task.processes)
        if done and not task.stopped_outside:
            try:
                self.client.stop_task(cluster=self.cluster, task=task.arn,
                                      reason=f"Essential container in task exited (code {code})")
            except Exception as exc:  # noqa: BLE001 - recorded; the test sees the error list
                self.errors.append(f"stop_task {task.arn}: {exc!r}")
        with self._lock:
            task.stopped = task.stopped or done
            self._changed.notify_all()
