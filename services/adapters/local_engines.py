"""Engines as supervised local processes (`dart up`'s default launcher): each launch records ``local:<pid>``
as the action's task; a process that exits without checking in fails its action; a PENDING action whose
launch never happened is put back in the queue after ``stale_after``; and a restarted process adopts the
engines the previous one left running."""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from engines.catalog import BUILT_IN_ENGINES
from engines.sdk import EXIT_CHECKOUT_FAILED
from events.errors import ConcurrencyError
from events.streams.action import ActionLaunched, ActionRequeued
from events.types import NewEvent, StreamAppend
from services.adapters.action_logs import ActionLogs
from services.adapters.engine_processes import engine_alive, engine_pids
from services.adapters.warm_engines import EngineProcess, WarmPool, WarmStartFailed
from services.commands.actions import complete_action
from services.commands.context import Orchestration
from services.commands.launcher import META, Clock, Launcher, TokenFactory
from services.commands.retry import StillConflicting, retry_on_conflict

log = logging.getLogger("dart.launcher")
# Every built-in engine (engines/catalog.py) runs as ``python -m <its module>`` of this interpreter.
BUILT_IN = {engine.name: [sys.executable, "-m", engine.module] for engine in BUILT_IN_ENGINES}
# The engines a warm parent can fork (issue 16): the SDK-based built-ins, by module; a DART_LOCAL_ENGINES
# command (any program) starts cold, a DART_LOCAL_ENGINES module entry may be forked warm.
WARM_MODULES = {engine.name: engine.module for engine in BUILT_IN_ENGINES}

__all__ = ["BUILT_IN", "LocalLauncher", "engine_alive", "engine_pids", "local_engine_commands", "warm_engine_argvs"]


def local_engine_entries(raw: str) -> dict[str, list[str] | dict[str, Any]]:
    """DART_LOCAL_ENGINES: a JSON object of engine name -> an argv list (any program, started cold), or
    ``{"module": "pkg.engine", "args": [...]}``: an SDK-based engine module of this interpreter, run as
    ``python -m pkg.engine args`` or forked from its warm parent (so its imports must not depend on an
    action: no environment read, no connection opened, no thread started at import)."""
    if not raw:
        return {}
    try:
        entries = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"DART_LOCAL_ENGINES is not JSON: {exc}") from None
    if not isinstance(entries, dict):
        # a ValueError, not a TypeError: it is what pydantic reports as the setting's error
        raise ValueError("DART_LOCAL_ENGINES must be a JSON object of engine name -> command")  # noqa: TRY004
    for name, entry in entries.items():
        if isinstance(entry, list) and entry and all(isinstance(a, str) for a in entry):
            continue
        if (isinstance(entry, dict) and isinstance(entry.get("module"), str) and set(entry) <= {"module", "args"}
                and all(isinstance(a, str) for a in entry.get("args", []))):
            continue
        raise ValueError(f"DART_LOCAL_ENGINES: engine {name!r} needs an argv list of strings or "
                         '{"module": "...", "args": [...]}')
    return entries


def local_engine_commands(raw: str = "") -> dict[str, list[str]]:
    """Engine name -> command, built-ins plus DART_LOCAL_ENGINES (see ``local_engine_entries``)."""
    commands = dict(BUILT_IN)
    for name, entry in local_engine_entries(raw).items():
        commands[name] = (entry if isinstance(entry, list)
                          else [sys.executable, "-m", entry["module"], *entry.get("args", [])])
    return commands


def warm_engine_argvs(raw: str = "") -> dict[str, list[str]]:
    """Engine name -> ``[module, *args]`` of the engines a warm parent may fork: the built-ins no
    DART_LOCAL_ENGINES command replaces, and DART_LOCAL_ENGINES module entries."""
    argvs = {name: [module] for name, module in WARM_MODULES.items()}
    for name, entry in local_engine_entries(raw).items():
        if isinstance(entry, list):
            argvs.pop(name, None)
        else:
            argvs[name] = [entry["module"], *entry.get("args", [])]
    return argvs


LOCAL_TASK = "local:"  # a local engine's task, as recorded in ecs_task_arn: local:<pid>


def _local_pid(task: Any) -> int | None:
    text = str(task or "")
    if text.startswith(LOCAL_TASK) and text[len(LOCAL_TASK):].isdigit():
        return int(text[len(LOCAL_TASK):])
    return None


class LocalLauncher(Launcher):
    """Engines as supervised child processes of this one.

    Each launch records ``local:<pid>`` as the action's task. A process that exits without checking in fails
    its action. After a restart, the engines the previous process started are adopted: found by that pid (or,
    for a launch whose pid was never recorded, by the ``DART_ACTION_ID`` in their environment) and watched
    by the periodic check, which fails the action of any that is gone without checking in."""

    def __init__(self, orch: Orchestration, api_url: str, commands: dict[str, list[str]] | None = None,
                 stale_after: float = 120.0, token_factory: TokenFactory | None = None,
                 passed_env: Iterable[str] = (), aws_env: Mapping[str, str] | None = None,
                 data_dir: Path | None = None, stop_grace: float = 10.0, clock: Clock | None = None,
                 logs: ActionLogs | None = None, warm: bool = False,
                 warm_argvs: Mapping[str, list[str]] | None = None) -> None:
        super().__init__(orch, api_url, stale_after, token_factory, clock)
        self.commands = commands or local_engine_commands()
        self.passed_env = tuple(passed_env)  # DART_LOCAL_ENGINE_ENV: more of dart's variables an engine gets
        self.aws_env = dict(aws_env or {})  # DART_AWS_ENDPOINT_URL, DART_AWS_REGION as dart's settings say
        self.data_dir = data_dir  # DART_ENGINE_DATA_DIR: where engines keep data across actions
        self.children: dict[str, EngineProcess] = {}
        self.adopted: dict[str, int] = {}  # action id -> pid of an engine a previous process started
        self._adopting = True  # the first check adopts
        self.stop_grace = stop_grace  # seconds between SIGTERM and SIGKILL when an engine is stopped
        self.logs = logs  # where engines' stdout and stderr go (None: dart's own output, as before)
        self._lock = threading.Lock()
        # Built-in engines forked from warm parents (their sockets in DART_HOME/warm), not started cold.
        # Its parents import what the engines import: they get the variables engines get of dart's environment.
        passed = {name: os.environ[name] for name in self.passed_env if name in os.environ}
        self.warm = WarmPool(data_dir.parent / "warm" if data_dir is not None else None, passed) if warm else None
        self.warm_argvs = dict(warm_engine_argvs() if warm_argvs is None else warm_argvs)
        self.task_prefix = LOCAL_TASK  # how a launch is recorded: <prefix><pid> (an engine worker adds its own)
        self.on_engine_exit: Callable[[str], None] | None = None  # told each action whose engine has ended

    def warm_argv(self, engine_name: str) -> list[str] | None:
        """``[module, *args]`` of the warm parent that forks this engine, or None when it starts cold."""
        argv = self.warm_argvs.get(engine_name)
        if self.warm is None or argv is None or self.commands.get(engine_name) != [sys.executable, "-m", *argv]:
            return None
        return argv

    def launch(self, action: dict[str, Any], datastore: dict[str, Any]) -> None:
        action_id = action["id"]
        command = self.commands.get(str(action.get("engine_name")))
        if command is None:
            if action.get("_token"):
                self.revoke_token(action["_token"])
            complete_action(self.orch, action_id, "FAILED",
                            f"no local command for engine {action.get('engine_name')!r}", None)
            return
        folder = Path(tempfile.mkdtemp(prefix=f"dart-engine-{action_id}-"))  # 0700: the engine's own
        env = self.process_environment(action, datastore, folder)
        output = self.logs.open_for(action_id) if self.logs is not None else None  # stdout and stderr
        try:
            if output is not None:
                how = "a warm fork of " if self.warm_argv(str(action.get("engine_name"))) else ""
                output.write(f"--- dart: {how}{' '.join(command)} for action {action_id} (attempt "
                             f"{action.get('attempt') or 1}), {self.clock().isoformat()}\n".encode())
                output.flush()
            child = self._start(str(action.get("engine_name")), command, env, folder, output, action_id)
        except OSError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            if action.get("_token"):
                self.revoke_token(action["_token"])  # no engine will use it
            complete_action(self.orch, action_id, "FAILED", f"could not start the engine: {exc}", None)
            return
        finally:
            if output is not None:
                output.close()  # the engine has its own copy
        with self._lock:
            self.children[action_id] = child
        self._record_launched(action_id, child.pid, action.get("_version"))
        threading.Thread(target=self._supervise, args=(action_id, child, folder), daemon=True,
                         name=f"engine:{action_id}").start()

    def _start(self, engine_name: str, command: list[str], env: dict[str, str], folder: Path,
               output: Any, action_id: str) -> EngineProcess:
        argv = self.warm_argv(engine_name)
        if argv is not None and self.warm is not None:
            try:
                return self.warm.start(argv[0], env, folder / "work", output, action_id, argv)
            except WarmStartFailed as exc:
                log.warning("action %s: no warm start (%s); starting its engine cold", action_id, exc)
        return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, cwd=folder / "work",
                                stdout=output, stderr=subprocess.STDOUT if output is not None else None)

    def process_environment(self, action: dict[str, Any], datastore: dict[str, Any], folder: Path) -> dict[str, str]:
        """All an engine process gets of the world (design.md §4): PATH, a private HOME, TMPDIR and working
        folder under ``folder``, its action's DART_* variables, the AWS endpoint, region and credentials, and
        the variables DART_LOCAL_ENGINE_ENV names; never the rest of dart's own environment (the bootstrap
        key, DART_HOME with its credentials file, the broker's and the database's URLs)."""
        for part in ("home", "work", "tmp"):
            (folder / part).mkdir(mode=0o700, exist_ok=True)
        env = {"PATH": os.environ.get("PATH") or os.defpath, "HOME": str(folder / "home"),
               "TMPDIR": str(folder / "tmp")}
        env.update({k: v for k, v in os.environ.items() if k.startswith("AWS_")})
        for variable, default in (("AWS_SHARED_CREDENTIALS_FILE", "credentials"), ("AWS_CONFIG_FILE", "config")):
            real = Path.home() / ".aws" / default  # the private HOME hides dart's own AWS files: name them
            if variable not in env and real.is_file():
                env[variable] = str(real)
        for name, value in self.aws_env.items():  # dart's settings; an AWS_* variable dart was given wins
            env[name] = env.get(name, value) if name.startswith("AWS_") else value
        if self.data_dir is not None:
            env["DART_ENGINE_DATA_DIR"] = str(self.data_dir)
        env.update({name: os.environ[name] for name in self.passed_env if name in os.environ})
        env.update(self.engine_environment(action, datastore))
        return env

    def _record_launched(self, action_id: str, pid: int, pending_version: int | None = None) -> None:
        """ActionLaunched with the engine's pid: first at the version its slot was taken at (known, no read),
        then, if the engine was quicker and checked out already, on the fresh version."""
        tries = itertools.count()

        def attempt() -> None:
            version = pending_version if next(tries) == 0 else None
            if version is None:
                row = self.orch.reader.row("action", action_id)
                if row is None or row.data.get("state") not in ("PENDING", "RUNNING"):
                    return
                version = row.version
            self.orch.store.append(StreamAppend(f"action-{action_id}", version, [NewEvent(
                ActionLaunched({"ecs_task_arn": f"{self.task_prefix}{pid}"}), META)]))

        try:
            retry_on_conflict(attempt, what=f"action {action_id}")
        except StillConflicting:
            log.error("could not record the engine (pid %d) of action %s", pid, action_id)

    def _supervise(self, action_id: str, child: EngineProcess, folder: Path) -> None:
        code = child.wait()  # None: a warm child whose parent died first, so its code is unknown
        shutil.rmtree(folder, ignore_errors=True)
        with self._lock:
            self.children.pop(action_id, None)
        try:
            row = self.orch.reader.row("action", action_id)
            if row is not None and code == EXIT_CHECKOUT_FAILED and row.data.get("state") == "RUNNING":
                # This engine never ran the action: another one checked it out first (a warm worker gone
                # before it recorded its engine, whose message a replica took), and that one checks in.
                log.warning("action %s: its engine (pid %d) could not check out: another engine runs it",
                            action_id, child.pid)
            elif row is not None and row.data.get("state") in ("PENDING", "RUNNING"):
                complete_action(self.orch, action_id, "FAILED",
                                f"the engine process exited with code {code} without checking in"
                                if code is not None else "the engine process exited without checking in", None)
            if self.logs is not None:
                self._finish_log(action_id, code, row.data if row is not None else {})
        finally:
            if self.on_engine_exit is not None:
                self.on_engine_exit(action_id)

    def _finish_log(self, action_id: str, code: int | None, action: dict[str, Any]) -> None:
        assert self.logs is not None
        try:
            with self.logs.open_for(action_id) as output:
                output.write(f"--- dart: the engine exited with code {code}\n".encode())
            datastore = self.orch.reader.row("datastore", str(action.get("datastore_id")))
            self.logs.upload(action_id, datastore.data if datastore is not None else None)
        except OSError as exc:
            log.warning("the log of action %s: %s", action_id, exc)

    def check(self, now: datetime | None = None) -> None:
        if self._adopting:
            self.adopt()
            self._adopting = False
        self.check_adopted()
        self.requeue_stale(now)
        self.run_limits(now)

    def stop_engine(self, action_id: str, task: Any, reason: str) -> bool:
        """SIGTERM to the action's engine process (a child, or an adopted one found by its pid and its
        DART_ACTION_ID), then SIGKILL after ``stop_grace`` seconds if it is still there."""
        with self._lock:
            child = self.children.get(action_id)
        pid = child.pid if child is not None else self.adopted.get(action_id) or _local_pid(task)
        if pid is None or not engine_alive(pid, action_id):
            return False
        log.info("stopping the engine of action %s (pid %d): %s", action_id, pid, reason)
        _signal(pid, signal.SIGTERM)
        timer = threading.Timer(self.stop_grace, self._kill_if_alive, (pid, action_id))
        timer.daemon = True
        timer.start()
        return True

    @staticmethod
    def _kill_if_alive(pid: int, action_id: str) -> None:
        if engine_alive(pid, action_id):
            log.warning("the engine of action %s (pid %d) outlived its grace period: SIGKILL", action_id, pid)
            _signal(pid, signal.SIGKILL)

    # ------------------------------------------------------------------------------------- adoption
    def adopt(self) -> list[str]:
        """Watch the engines of PENDING and RUNNING actions that no child of this process runs (a previous
        ``dart up`` started them); fail the actions whose engine is already gone. Returns the adopted ids."""
        adopted = []
        for row in self._actions_in("PENDING", "RUNNING"):
            task = row.data.get("ecs_task_arn")
            with self._lock:
                mine = row.id in self.children
            if mine or (task is not None and not str(task).startswith(LOCAL_TASK) and task != ""):
                continue  # ours already, or an ECS task (another launcher's)
            if task is None and row.data.get("state") == "PENDING":
                if self._watch_unrecorded(row.id):  # started just before the crash, never recorded?
                    adopted.append(row.id)
                continue  # no engine: the stale check re-queues it (its launch never happened)
            pid = _local_pid(task)
            if pid is None or not engine_alive(pid, row.id):
                pids = engine_pids(row.id)
                pid = pids[0] if pids else None
            if pid is None:
                self._fail_lost(row.id, "its engine process is gone and never checked in (found when dart "
                                        "started again)")
                continue
            self.adopted[row.id] = pid
            adopted.append(row.id)
        if adopted:
            log.info("watching %d engine(s) started before this process: %s", len(adopted), ", ".join(adopted))
        return adopted

    def check_adopted(self) -> list[str]:
        """Fail the actions whose adopted engine has exited without checking in; returns their ids."""
        failed = []
        for action_id, pid in list(self.adopted.items()):
            if engine_alive(pid, action_id):
                continue
            self.adopted.pop(action_id, None)
            if self._fail_lost(action_id, f"its engine process (pid {pid}) exited without checking in"):
                failed.append(action_id)
        return failed

    def _fail_lost(self, action_id: str, message: str) -> bool:
        failed = self.fail_if(action_id, ("PENDING", "RUNNING"), message)
        if failed:
            log.warning("action %s: %s", action_id, message)
        return failed

    def _watch_unrecorded(self, action_id: str) -> bool:
        """An engine started for the action whose pid was never recorded (a crash between the start and the
        record): found by its environment, recorded and watched. False when there is none."""
        pids = engine_pids(action_id)
        if not pids:
            return False
        self._record_launched(action_id, pids[0])
        self.adopted[action_id] = pids[0]
        return True

    def requeue_stale(self, now: datetime | None = None) -> int:
        """PENDING with no task after ``stale_after``: back to QUEUED (its launch never happened)."""
        now = now or self.clock()
        moved = 0
        for row in self._actions_in("PENDING"):
            if row.data.get("ecs_task_arn") is None and row.updated < now - self.stale_after:
                if self._watch_unrecorded(row.id):  # started after all: watched, not re-queued
                    continue
                try:
                    self.orch.store.append(StreamAppend(f"action-{row.id}", row.version, [NewEvent(
                        ActionRequeued({"state": "QUEUED"}), META)]))
                    moved += 1
                except ConcurrencyError:
                    pass
        return moved

    def stop(self) -> None:
        super().stop()
        with self._lock:
            children = list(self.children.values())
        for child in children:
            child.terminate()
        if self.warm is not None:
            self.warm.close()


def _signal(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass


def local_launcher_from_settings(orch: Orchestration, api_url: str, settings: Any,
                                 logs: ActionLogs | None = None) -> LocalLauncher:
    """A LocalLauncher from dart's settings: ``local_engines``, ``stale_pending_seconds``, ``local_engine_env``,
    the AWS endpoint and region engines are given, and ``home``'s ``engines`` folder for their data."""
    aws = {"AWS_DEFAULT_REGION": settings.aws_region, "DART_AWS_REGION": settings.aws_region}
    if settings.aws_endpoint_url:
        aws.update(DART_AWS_ENDPOINT_URL=settings.aws_endpoint_url, AWS_ENDPOINT_URL=settings.aws_endpoint_url)
    return LocalLauncher(orch, api_url, local_engine_commands(settings.local_engines), settings.stale_pending_seconds,
                         passed_env=settings.local_engine_env, aws_env=aws, data_dir=settings.home / "engines",
                         stop_grace=settings.engine_stop_grace_seconds,
                         logs=logs,
                         warm=settings.local_engines_warm, warm_argvs=warm_engine_argvs(settings.local_engines))
