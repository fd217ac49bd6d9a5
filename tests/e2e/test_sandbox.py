"""`dart up --sandbox` (issue 12), black-box: from a fresh home, a local AWS with a day of sample web logs and
the example chain; `dart sandbox --wait` runs check -> load into DuckDB -> aggregate -> unload -> publish to
COMPLETED and prints the report read back from S3. A second run replaces the day (RELOAD_ALL), so the report's
hits still add up to the lines generated: nothing duplicated. A restart creates no second set of entities, and
the sandbox is refused next to a PostgreSQL database URL."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bench.harness.stacks import _base_env, free_port
from services.runtime.sandbox import s3_client
from tests.e2e.conftest import KEY, SECRET, RunningDart

LINES = 24_000


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDart]:
    running = RunningDart(tmp_path_factory.mktemp("sandbox"), None,
                          up_args=("--sandbox", "--sandbox-lines", str(LINES)))
    try:
        yield running
    finally:
        running.stop()


def run_sandbox(dart: RunningDart) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.runtime.cli", "sandbox", "--wait", "--api-url", f"{dart.base}/api/1",
         "--key", f"{KEY}:{SECRET}"], env=dart.env, capture_output=True, text=True, timeout=300, check=False)


def report(stdout: str) -> dict[int, int]:
    """HTTP status -> hits, from the table ``dart sandbox`` prints."""
    table = stdout.split("(hits per HTTP status):", 1)[1].strip().splitlines()
    assert table[0].split() == ["status", "hits", "bytes", "avg_ms"]
    return {int(row.split()[0]): int(row.split()[1]) for row in table[1:]}


def test_the_example_chain_runs_to_completed_and_prints_the_report(sandbox: RunningDart) -> None:
    done = run_sandbox(sandbox)
    assert done.returncode == 0, done.stdout + done.stderr
    for workflow in ("sandbox-check-logs", "sandbox-weblogs", "sandbox-publish"):
        assert f"{workflow}: COMPLETED" in done.stdout
    hits = report(done.stdout)
    assert sum(hits.values()) == LINES and {200, 404, 500} <= set(hits)
    api = sandbox.api()
    [publish] = api.get("/workflow", params={"filters": ["name = sandbox-publish"]})
    [run] = api.get(f"/workflow/{publish['id']}/instance")
    assert run["data"]["trigger_type"] == "workflow_completion"


def test_a_second_run_replaces_the_day_instead_of_adding_to_it(sandbox: RunningDart) -> None:
    first = report(run_sandbox(sandbox).stdout)
    again = run_sandbox(sandbox)
    assert again.returncode == 0, again.stdout + again.stderr
    assert report(again.stdout) == first and sum(first.values()) == LINES


def test_a_restart_adds_no_second_chain(sandbox: RunningDart) -> None:
    api = sandbox.api()
    before = len(api.get("/workflow", params={"limit": 100}))
    sandbox.stop()
    sandbox.start()
    done = run_sandbox(sandbox)  # the new local AWS is empty: the day's files are written again first
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(sandbox.api().get("/workflow", params={"limit": 100})) == before == 3


def test_the_sandbox_is_refused_next_to_a_postgresql_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {**_base_env(tmp_path), "DART_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres"}
    done = subprocess.run([sys.executable, "-m", "services.runtime.cli", "up", "--sandbox", "--port",
                           str(free_port())], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "refused with a PostgreSQL database URL" in done.stderr and "--force-sandbox" in done.stderr


def test_each_action_s_log_is_kept_and_uploaded_to_the_sandbox_s3(sandbox: RunningDart) -> None:
    api = sandbox.api()
    [chain] = api.get("/workflow", params={"filters": ["name = sandbox-weblogs"]})
    [run, *_] = api.get(f"/workflow/{chain['id']}/instance")
    [load] = api.get("/action", params={"filters": [f"workflow_instance_id = {run['id']}", "name = load_logs"]})
    text = api.get(f"/action/{load['id']}/logs")["text"]
    assert f"checked in action {load['id']}: SUCCESS" in text and "exited with code 0" in text
    store = api.get(f"/datastore/{load['data']['datastore_id']}")["data"]
    bucket, key = store["s3_logs_path"].removeprefix("s3://").split("/", 1)
    endpoint = json.loads((sandbox.home / "sandbox.json").read_text())["aws_endpoint_url"]
    uploaded = s3_client(endpoint).get_object(Bucket=bucket, Key=f"{key}/{load['id']}.log")["Body"].read().decode()
    assert uploaded == text
