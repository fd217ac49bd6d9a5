"""Warm parents (engines/warm.py, services/adapters/warm_engines.py) without a dart: every built-in engine's
parent stays single-threaded after importing its engine (fork is only safe so), and a child gets exactly the
environment, working folder, session and output a cold `python -m` process gets; its exit code comes back."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engines.catalog import BUILT_IN_ENGINES
from services.adapters.engine_processes import engine_alive
from services.adapters.warm_engines import WarmPool
from tests.e2e.flows import wait_for


@pytest.fixture
def pool() -> Iterator[WarmPool]:
    warm = WarmPool()
    try:
        yield warm
    finally:
        warm.close()


def _folder(tmp_path: Path) -> Path:
    for part in ("home", "work", "tmp"):
        (tmp_path / part).mkdir(exist_ok=True)
    return tmp_path


@pytest.mark.parametrize("module", [engine.module for engine in BUILT_IN_ENGINES])
def test_every_built_in_engine_s_warm_parent_is_single_threaded_and_its_child_runs_the_module(
        pool: WarmPool, tmp_path: Path, module: str) -> None:
    folder = _folder(tmp_path)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(folder / "home"), "TMPDIR": str(folder / "tmp")}
    with open(folder / "engine.log", "ab") as output:
        child = pool.start(module, env, folder / "work", output, "NOACTION")
    assert child.wait() == 2  # no DART_ACTION_ID: the engine's own "missing environment" exit
    assert "DART_ACTION_ID" in (folder / "engine.log").read_text()  # its stderr went to the log given
    parent = pool.parent_pid(module)
    assert parent is not None
    assert os.listdir(f"/proc/{parent}/task") == [str(parent)]  # one thread: forking it is safe


def test_a_child_gets_the_cold_process_s_environment_folder_and_session(pool: WarmPool, tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(folder / "home"), "TMPDIR": str(folder / "tmp"),
           "DART_ACTION_ID": "A1", "DART_ACTION_USER_ID": "u", "DART_API_TOKEN": "k:s",
           "DART_API_URL": "http://127.0.0.1:9/api/1"}  # nothing listens: the engine keeps retrying its check-out
    with open(folder / "engine.log", "ab") as output:
        child = pool.start("engines.no_op", env, folder / "work", output, "A1")
    try:
        wait_for(lambda: engine_alive(child.pid, "A1"), timeout=10, what="the child naming its action")
        shown = [v for v in Path(f"/proc/{child.pid}/environ").read_bytes().split(b"\0") if v]
        assert sorted(shown) == sorted(f"{k}={v}".encode() for k, v in env.items())
        assert Path(os.readlink(f"/proc/{child.pid}/cwd")) == folder / "work"
        assert os.getsid(child.pid) == child.pid and os.getsid(child.pid) != os.getsid(0)
        assert Path(os.readlink(f"/proc/{child.pid}/fd/1")) == folder / "engine.log"
        assert Path(os.readlink(f"/proc/{child.pid}/fd/0")) == Path(os.devnull)
        wait_for(lambda: "checkout" in (folder / "engine.log").read_text(), timeout=10, what="its first try")
    finally:
        child.terminate()
    assert child.wait() == -signal.SIGTERM


def test_a_killed_warm_parent_is_replaced_and_its_child_is_still_watched(pool: WarmPool, tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(folder / "home"), "TMPDIR": str(folder / "tmp"),
           "DART_ACTION_ID": "A2", "DART_ACTION_USER_ID": "u", "DART_API_TOKEN": "k:s",
           "DART_API_URL": "http://127.0.0.1:9/api/1"}
    child = pool.start("engines.no_op", env, folder / "work", None, "A2")
    first = pool.parent_pid("engines.no_op")
    assert first is not None
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: pool.parent_pid("engines.no_op") is None, timeout=10, what="the parent gone")
    assert engine_alive(child.pid, "A2")  # its own session: the parent's death does not take it
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait() is None  # no parent to report its code: watched through a pidfd
    again = pool.start("engines.no_op", {**env, "DART_ACTION_ID": "A3"}, folder / "work", None, "A3")
    assert pool.parent_pid("engines.no_op") not in (None, first)
    again.terminate()
    assert again.wait() == -signal.SIGTERM
    assert sys.executable  # the parents run this interpreter (engines/warm.py under `python -m`)

