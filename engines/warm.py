"""The warm parent of an engine type (issue 16): ``python -m engines.warm MODULE FD`` imports the engine
module (and so the SDK) once, then forks one child per action on request over a Unix socket; each child gets
exactly what a cold ``python -m MODULE`` gets (its environment wholesale, a new session, its working folder,
stdout and stderr to the action's log) and runs the module as ``__main__``.

Protocol, one connection per action: the launcher sends one frame (4-byte big-endian length, then JSON
``{"env": {...}, "cwd": "...", "argv": [...]}``), with the log file's descriptor attached (SCM_RIGHTS) or not;
the parent answers ``{"pid": N}`` (or ``{"error": "..."}``) and, when the child ends, ``{"exit": code}`` (a
negative code is the signal that ended it, as ``subprocess`` reports it). The parent is single-threaded and
imports nothing that starts threads, so forking it is safe. It exits when its stdin closes (the launcher is
gone); its children live on in their own sessions, and whoever adopts them finds them by DART_ACTION_ID.
Before its first fork the parent freezes its heap out of the garbage collector (``gc.freeze``): a child's
collections then never walk, and so never copy, the pages of the modules the parent imported."""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import os
import runpy
import selectors
import signal
import socket
import struct
import sys
import tempfile
import traceback
from typing import Any

HEADER = struct.Struct(">I")
MAX_FRAME = 1 << 20
PAD_VARIABLE = "DART_WARM_ENV_PAD"  # the parent's environment is padded so a child's fits in its place
PAD_BYTES = 32 * 1024
NOT_FORK_SAFE = 3  # the parent's exit code when its imports left more than one thread
# pyarrow's bundled jemalloc starts a background thread at import; off in a warm parent, which must not have
# any thread when it forks (jemalloc then purges in the allocating threads, as with the thread off anywhere).
FORK_SAFE_ENV = {"JE_ARROW_MALLOC_CONF": "background_thread:false"}


def frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message).encode()
    return HEADER.pack(len(body)) + body


def read_frame(sock: socket.socket, fds: list[int] | None = None) -> dict[str, Any] | None:
    """One frame from ``sock`` (blocking), reading no byte past it (the next frame may follow at once); None at
    end of stream. Descriptors sent with it go to ``fds``."""
    header = _read_exactly(sock, HEADER.size, fds)
    if header is None:
        return None
    size = HEADER.unpack(header)[0]
    if size > MAX_FRAME:
        raise ValueError("frame too large")
    body = _read_exactly(sock, size, fds)
    return None if body is None else json.loads(body)


def _read_exactly(sock: socket.socket, size: int, fds: list[int] | None) -> bytes | None:
    data = b""
    while len(data) < size:
        if fds is not None:
            chunk, got, _, _ = socket.recv_fds(sock, size - len(data), 4)
            fds.extend(got)
        else:
            chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def warm_imports(module: str) -> None:
    """Import what ``python -m MODULE`` would: the package, its engine and the SDK (the costly part)."""
    importlib.import_module(module)
    for name in ("engines.sdk", "engines.runner", f"{module}.engine", f"{module}.definition"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


# ------------------------------------------------------------------------------------------------ child
def _environ_area() -> tuple[int, int] | None:
    """Where the kernel shows this process's environment from (/proc/self/stat env_start, env_end)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[-1].split()
        return int(fields[47]), int(fields[48])  # fields 50 and 51 of proc(5), counted after the comm
    except (OSError, IndexError, ValueError):
        return None


def _show_environment(env: dict[str, str]) -> None:
    """Write ``env`` over the environment area the parent started with, so /proc/<pid>/environ names the
    child's action (how a restarted dart finds and adopts it) and not the parent's. libc no longer points
    into that area once os.environ was cleared, so overwriting it is safe; the parent's padding makes room."""
    area = _environ_area()
    if area is None:
        return
    start, end = area
    size = end - start
    first = [k for k in env if k == "DART_ACTION_ID"]  # what adoption looks for goes first
    text = b"".join(f"{k}={env[k]}".encode() + b"\0" for k in first + [k for k in env if k not in first])
    text = text[:size]
    ctypes.memmove(start, text + b"\0" * (size - len(text)), size)


def run_child(module: str, request: dict[str, Any], output: int | None, shown: int) -> int:
    """In the forked child: become the cold process ``python -m MODULE`` would have been, and run it.
    ``shown`` is closed once the child is set up and /proc shows its environment (the parent answers the pid
    only then, so a launcher that checks the pid's DART_ACTION_ID finds it from the first moment)."""
    os.setsid()
    for number in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(number, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as the interpreter sets it at start
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    if output is not None:
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
    env = {str(k): str(v) for k, v in request["env"].items()}
    os.environ.clear()
    _show_environment(env)
    os.environ.update(env)
    tempfile.tempdir = None  # recomputed from the child's TMPDIR
    os.chdir(request["cwd"])
    os.close(shown)  # set up as a cold process would be: the parent may answer its pid
    sys.argv = list(request.get("argv") or [module])
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except Exception:  # noqa: BLE001 - what an uncaught exception does to `python -m`: a traceback, code 1
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            continue  # a closed or broken stream: nothing more to write
    return code


def _exit_code(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


# ----------------------------------------------------------------------------------------------- parent
class WarmParent:
    """The fork server: a selector loop over the listening socket, its connections, SIGCHLD and stdin."""

    def __init__(self, module: str, listener: socket.socket) -> None:
        self.module = module
        self.listener = listener
        self.selector = selectors.DefaultSelector()
        self.wakeup_r, self.wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_w, False)
        self.children: dict[int, socket.socket] = {}  # child pid -> the connection that asked for it

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wakeup_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.wakeup_r, selectors.EVENT_READ, "child")
        self.selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")
        while True:
            for key, _ in self.selector.select():
                if key.data == "accept":
                    conn, _ = self.listener.accept()
                    self.selector.register(conn, selectors.EVENT_READ, "request")
                elif key.data == "child":
                    os.read(self.wakeup_r, 4096)
                    self.reap()
                elif key.data == "stdin":
                    if not os.read(sys.stdin.fileno(), 4096):
                        return  # the launcher is gone
                else:
                    self.request(key.fileobj)  # type: ignore[arg-type]

    def request(self, conn: socket.socket) -> None:
        self.selector.unregister(conn)
        fds: list[int] = []
        try:
            message = read_frame(conn, fds)
        except (OSError, ValueError):
            message = None
        if message is None:
            conn.close()
            return
        output = fds[0] if fds else None
        for extra in fds[1:]:
            os.close(extra)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        shown_r, shown_w = os.pipe()
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(shown_r)
            os.close(shown_w)
            self._send(conn, {"error": f"fork failed: {exc}"})
            conn.close()
            return
        if pid == 0:
            code = 1
            try:
                os.close(shown_r)
                self._forget_in_child(conn)
                code = run_child(self.module, message, output, shown_w)
            finally:
                os._exit(code)
        os.close(shown_w)
        os.read(shown_r, 1)  # end of file once the child shows its environment (or died before)
        os.close(shown_r)
        if output is not None:
            os.close(output)
        self.children[pid] = conn
        self._send(conn, {"pid": pid})
        self.reap()  # a child quicker than the answer

    def _forget_in_child(self, conn: socket.socket) -> None:
        """The child keeps none of the parent's channels: the launcher sees their end when the parent's go."""
        signal.set_wakeup_fd(-1)
        waiting = [k.fileobj for k in self.selector.get_map().values() if isinstance(k.fileobj, socket.socket)]
        self.selector.close()
        for sock in {self.listener, conn, *waiting, *self.children.values()}:  # accepted ones waiting too
            sock.close()
        os.close(self.wakeup_r)
        os.close(self.wakeup_w)

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is not None:
                self._send(conn, {"exit": os.waitstatus_to_exitcode(status)})
                conn.close()

    @staticmethod
    def _send(conn: socket.socket, message: dict[str, Any]) -> None:
        try:
            conn.sendall(frame(message))
        except OSError:
            pass  # the launcher stopped listening: it watches the pid instead


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m engines.warm MODULE LISTENING-SOCKET-FD", file=sys.stderr)
        return 2
    module, fd = argv
    # The launcher bound and listens on the socket before starting this process: requests sent while the
    # imports below run wait in its backlog, so there is no start-up race to poll for.
    listener = socket.socket(fileno=int(fd))
    warm_imports(module)
    threads = os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else []
    if len(threads) > 1:  # a library started a thread at import: a fork could copy a lock it holds
        print(f"engines.warm: {module} is not fork-safe ({len(threads)} threads after its imports): its "
              "engines start cold", file=sys.stderr)
        return NOT_FORK_SAFE
    gc.freeze()  # what the imports made is never collected in a child: its pages stay shared
    WarmParent(module, listener).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
