"""Warm engine starts (issue 16): one warm parent process per SDK-based engine type (engines/warm.py), started
on its first action, forks a child per action instead of a new interpreter importing the engine and the SDK.
``WarmPool.start`` hands it an action's environment, working folder and log file and answers a ``WarmChild``
that the local launcher supervises exactly as it supervises a ``subprocess.Popen``: its pid, its exit code (the
warm parent reaps it and reports the code; if the parent is gone, the pid is watched through a pidfd), and
``terminate``. The child is not this process's child, so nothing here may assume it can wait on it."""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Protocol

from engines.warm import FORK_SAFE_ENV, NOT_FORK_SAFE, PAD_BYTES, PAD_VARIABLE, frame, read_frame
from services.adapters.engine_processes import engine_alive, engine_pids

log = logging.getLogger("dart.launcher")
ANSWER_TIMEOUT = 120.0  # seconds a warm parent may take to answer its first fork (it imports the engine first)


class EngineProcess(Protocol):
    """What the local launcher needs of an engine process, cold (subprocess.Popen) or warm (WarmChild)."""

    pid: int

    def wait(self) -> int | None: ...

    def terminate(self) -> None: ...


class WarmStartFailed(Exception):
    """The warm parent could not start the action's child (and none runs): start it cold instead."""


class WarmChild:
    """An action's engine forked by a warm parent: ``wait`` answers its exit code (None when its warm parent
    died before it, so the code is unknown), ``terminate`` sends it SIGTERM."""

    def __init__(self, pid: int, action_id: str, conn: socket.socket | None) -> None:
        self.pid = pid
        self.action_id = action_id
        self._conn = conn

    def wait(self) -> int | None:
        if self._conn is not None:
            try:
                self._conn.settimeout(None)
                message = read_frame(self._conn)
            except (OSError, ValueError):
                message = None
            finally:
                self._conn.close()
                self._conn = None
            if message is not None and "exit" in message:
                return int(message["exit"])
        wait_for_exit(self.pid, self.action_id)  # the warm parent went first: watch the pid itself
        return None

    def terminate(self) -> None:
        if engine_alive(self.pid, self.action_id):
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def wait_for_exit(pid: int, action_id: str) -> None:
    """Block until ``pid`` (the action's engine, not a child of this process) has exited."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if not engine_alive(pid, action_id):  # the pid was reused before it was opened: it is gone
            return
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not poller.poll(None):
            pass
    finally:
        os.close(fd)


class _Parent:
    def __init__(self, process: subprocess.Popen[bytes], path: str) -> None:
        self.process = process
        self.path = path


class WarmPool:
    """The warm parents of this launcher, one per engine module, each started on its first request. A parent
    that died (killed, crashed) is replaced by a new one at the next request."""

    def __init__(self, folder: Path | None = None, env: Mapping[str, str] | None = None) -> None:
        self._folder = folder
        self._env = dict(env or {})  # of dart's variables, those engines get (DART_LOCAL_ENGINE_ENV): PYTHONPATH ...
        self._parents: dict[str, _Parent] = {}
        self._cold: set[str] = set()  # modules whose warm parent found itself not fork-safe
        self._lock = threading.Lock()

    def folder(self) -> Path:
        """Where the parents' sockets are: the folder given (in DART_HOME), unless its path is too long for a
        Unix socket's (108 bytes), then a private temporary one."""
        if self._folder is not None and len(str(self._folder)) > 80:
            self._folder = None
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="dart-warm-"))
        self._folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self._folder

    def start(self, module: str, env: dict[str, str], cwd: Path, output: IO[bytes] | None,
              action_id: str, argv: list[str] | None = None) -> WarmChild:
        """Fork the action's engine from ``module``'s warm parent, with ``argv`` as its sys.argv (default: the
        module alone). Raises WarmStartFailed when no child runs."""
        if module in self._cold:
            raise WarmStartFailed(f"{module} is not fork-safe")
        request = frame({"env": env, "cwd": str(cwd), "argv": argv or [module]})
        for attempt in range(2):
            parent = self._parent(module, fresh=attempt > 0)
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                conn.connect(parent.path)
            except (ConnectionRefusedError, FileNotFoundError):
                conn.close()
                continue  # died since its last request: a new one
            try:
                conn.settimeout(ANSWER_TIMEOUT)
                fds = [output.fileno()] if output is not None else []
                if fds:
                    socket.send_fds(conn, [request], fds)
                else:
                    conn.sendall(request)
                answer = read_frame(conn)
            except (OSError, ValueError) as exc:
                conn.close()
                self._note_unsafe(module, parent)
                return self._after_silence(action_id, f"{exc}")
            if answer is None:
                conn.close()
                self._note_unsafe(module, parent)
                return self._after_silence(action_id, "the warm parent closed the connection")
            if "pid" not in answer:
                conn.close()
                raise WarmStartFailed(str(answer.get("error") or answer))
            return WarmChild(int(answer["pid"]), action_id, conn)
        raise WarmStartFailed(f"the warm parent of {module} does not accept requests")

    def _note_unsafe(self, module: str, parent: _Parent) -> None:
        """A parent that went silent: if it refused to fork (not fork-safe), its module starts cold from now."""
        try:
            code = parent.process.wait(timeout=5)  # its end of the connection closed: it is exiting
        except subprocess.TimeoutExpired:
            return
        if code == NOT_FORK_SAFE:
            log.warning("%s is not fork-safe: its engines start cold", module)
            self._cold.add(module)

    @staticmethod
    def _after_silence(action_id: str, why: str) -> WarmChild:
        """The parent went away between the request and the answer: a child it forked already runs (found by
        DART_ACTION_ID) and is watched by its pid, or there is none and the caller starts one cold."""
        pids = engine_pids(action_id)
        if pids:
            return WarmChild(pids[0], action_id, None)
        raise WarmStartFailed(why)

    def _parent(self, module: str, fresh: bool) -> _Parent:
        with self._lock:
            parent = self._parents.get(module)
            if parent is not None and (fresh or parent.process.poll() is not None):
                self._retire(parent)
                parent = None
            if parent is None:
                parent = self._parents[module] = self._spawn(module)
            return parent

    def _spawn(self, module: str) -> _Parent:
        folder = self.folder()
        path = str(folder / f"{module.rsplit('.', 1)[-1]}-{os.getpid()}-{len(os.listdir(folder))}.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(64)
        home = folder / "home"
        home.mkdir(mode=0o700, exist_ok=True)
        # Of dart's environment only what engines get of it (the imports may need PYTHONPATH): each child gets its
        # own environment wholesale; the padding is where it goes.
        env = {"PATH": os.environ.get("PATH") or os.defpath, **self._env, "HOME": str(home), "TMPDIR": str(home),
               **FORK_SAFE_ENV, PAD_VARIABLE: "x" * PAD_BYTES}
        try:
            process = subprocess.Popen([sys.executable, "-m", "engines.warm", module, str(listener.fileno())],
                                       env=env, stdin=subprocess.PIPE, pass_fds=[listener.fileno()], cwd=home,
                                       start_new_session=True)
        finally:
            listener.close()  # the parent's now: once it dies, connecting fails instead of hanging
        log.info("started the warm parent of %s (pid %d)", module, process.pid)
        return _Parent(process, path)

    @staticmethod
    def _retire(parent: _Parent) -> None:
        if parent.process.stdin is not None:
            parent.process.stdin.close()  # its signal to exit; its children go on in their own sessions
        try:
            parent.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            parent.process.kill()
            parent.process.wait()
        try:
            os.unlink(parent.path)
        except OSError:
            pass

    def parent_pid(self, module: str) -> int | None:
        parent = self._parents.get(module)
        return parent.process.pid if parent is not None and parent.process.poll() is None else None

    def close(self) -> None:
        with self._lock:
            parents, self._parents = list(self._parents.values()), {}
        for parent in parents:
            self._retire(parent)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

