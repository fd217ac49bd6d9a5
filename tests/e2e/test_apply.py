"""`dart apply` and `dart export` against a real `dart up` on SQLite and on PostgreSQL: a directory holding the
original's chaining demo (YAML) and a subscription-batch chain (Python) planned, then applied in one append;
applied again with no change and no event; one action's args changed (exactly one update event); --prune;
files with an error refused before anything is written, naming the file, entity and field; export -> apply
is a no-op; in a git checkout, the events name the file and commit and the runs carry the commit."""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from services.client import Dart
from services.runtime import cli
from tests.e2e.conftest import KEY, SECRET, RunningDart

DEFINITIONS = Path(__file__).with_name("definitions")
TOKEN = f"{KEY}:{SECRET}"


@pytest.fixture(scope="module")
def client(dart: RunningDart) -> Dart:
    return Dart(f"{dart.base}/api/1", TOKEN)


@pytest.fixture(scope="module")
def folder(dart: RunningDart, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the definitions per server (the tests edit it)."""
    target = tmp_path_factory.mktemp("definitions") / "flows"
    shutil.copytree(DEFINITIONS, target)
    return target


def _apply(dart: RunningDart, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["apply", *args, "--api-url", f"{dart.base}/api/1", "--key", TOKEN])
    out, err = capsys.readouterr()
    return code, out, err


def _last(client: Dart) -> int:
    return max((e.global_position for e in client.log(page_size=1000)), default=0)


def _quiet_last(client: Dart) -> int:
    """The log's end once the workers are done reacting to what was applied (a datastore's activation ...)."""
    last = -1
    for _ in range(50):
        now = _last(client)
        if now == last:
            return now
        last = now
        time.sleep(0.2)
    return last


@pytest.fixture(scope="module")
def applied(dart: RunningDart, client: Dart, folder: Path) -> dict[str, Any]:
    """The first apply (checked by the tests below): its output and the log around it."""
    before = _quiet_last(client)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["apply", "-f", str(folder), "--api-url", f"{dart.base}/api/1", "--key", TOKEN])
    return {"code": code, "out": out.getvalue(), "before": before}


def test_a_dry_run_prints_the_plan_and_writes_nothing(dart: RunningDart, client: Dart, folder: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    if client.workflows.find("apply-wf1") is not None:
        pytest.skip("already applied on this server by the module's fixture")  # never: this test runs first
    before = _quiet_last(client)
    code, out, _ = _apply(dart, capsys, "-f", str(folder), "--dry-run")
    assert code == 0 and "plan: 20 to create, 0 to update, 0 to delete" in out, out
    assert "+ trigger apply-chain" in out and "+ action apply-wf2/wf2-fails (#3)" in out
    assert "dry run: nothing applied" in out and _last(client) == before


def test_apply_creates_everything_in_one_append_and_the_chain_runs(client: Dart, applied: dict[str, Any]) -> None:
    assert applied["code"] == 0 and "applied: 1 change(s)" in applied["out"], applied["out"]
    created = [e for e in client.log(after=applied["before"], page_size=1000) if e.type.endswith("Created")]
    sources = {e.metadata.get("source") for e in created}
    assert len(sources) == 1 and "batches.py" in str(sources) and "chaining.yaml" in str(sources)
    positions = sorted(e.global_position for e in created if e.metadata.get("source"))
    assert len(positions) == 20
    # One append: nothing else (a worker's reaction) landed between its first and last event.
    inside = [e for e in client.log(after=positions[0] - 1, page_size=1000) if e.global_position <= positions[-1]]
    assert {e.metadata.get("source") for e in inside} == sources
    wf1, wf2 = client.workflows.find("apply-wf1"), client.workflows.find("apply-wf2")
    assert wf1 is not None and wf2 is not None
    chain = client.triggers.find("apply-chain")
    assert chain is not None and chain.data.args == {"completed_workflow_id": wf1.id}
    assert chain.data.workflow_ids == [wf2.id]
    load = [a for a in client.actions.list(filters=["name = load", "state = TEMPLATE"])]
    assert load[0].data.args == {"dataset_id": client.datasets.find("apply-weblogs").id}  # type: ignore[union-attr]
    assert client.run_and_wait(wf1.id, timeout=60, poll=0.2).data.state == "COMPLETED"
    for _ in range(300):  # the completion trigger starts workflow 2
        runs = list(client.workflow_instances(wf2.id))
        if runs and runs[0].data.state in ("COMPLETED", "FAILED"):
            break
        time.sleep(0.2)
    assert runs[0].data.state == "COMPLETED" and runs[0].data.trigger_type == "workflow_completion"


def test_applying_twice_changes_nothing(dart: RunningDart, client: Dart, folder: Path, applied: dict[str, Any],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    before = _quiet_last(client)
    code, out, _ = _apply(dart, capsys, "-f", str(folder))
    assert code == 0 and "plan: 0 to create, 0 to update, 0 to delete, 20 unchanged" in out and "nothing to do" in out
    assert _last(client) == before  # no event


def test_changing_one_actions_args_is_exactly_one_update_event(dart: RunningDart, client: Dart, folder: Path,
                                                               applied: dict[str, Any],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    batches = folder / "batches.py"
    batches.write_text(batches.read_text().replace('"args": {"dataset": "apply-weblogs"}',
                                                   '"args": {"dataset": "apply-weblogs-daily"}'))
    before = _quiet_last(client)
    code, out, _ = _apply(dart, capsys, "-f", str(folder))
    assert code == 0 and "plan: 0 to create, 1 to update, 0 to delete" in out, out
    assert "~ action apply-load-weblogs/load (#2): args:" in out
    events = list(client.log(after=before))
    assert [e.type for e in events] == ["ActionUpdated"], [e.type for e in events]
    assert "batches.py" in events[0].metadata["source"]
    daily = client.datasets.find("apply-weblogs-daily")
    assert daily is not None and events[0].data["changes"] == {"args": {"dataset_id": daily.id}}


def test_a_file_with_an_error_is_refused_before_anything_is_written(dart: RunningDart, client: Dart, folder: Path,
                                                                    applied: dict[str, Any], tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    cases = {
        "engine.yaml": ("datastores:\n  - {name: apply-bad, engine_name: no_such_engine, state: ACTIVE}\n",
                        "engine.yaml: datastore apply-bad: engine_name: unknown engine 'no_such_engine'"),
        "cron.yaml": ("triggers:\n  - {name: apply-nightly, trigger_type_name: scheduled, workflows: [apply-wf1],"
                      " args: {cron_pattern: '61 25 * * ? *'}}\n",
                      "cron.yaml: trigger apply-nightly: args.cron_pattern:"),
        "missing.yaml": ("workflows:\n  - name: apply-orphan\n    datastore: no-such-store\n",
                         "missing.yaml: workflow apply-orphan: datastore: no datastore named 'no-such-store'"),
    }
    before = _quiet_last(client)
    for name, (text, expected) in cases.items():
        bad = tmp_path / name
        shutil.copytree(folder, tmp_path / f"set-{name}")
        (tmp_path / f"set-{name}" / name).write_text(text)
        code, out, err = _apply(dart, capsys, "-f", str(tmp_path / f"set-{name}"))
        assert code == 2 and expected in err, (name, out, err)
        assert not bad.exists()
    assert _last(client) == before  # nothing written, not even the good files' changes


def test_prune_deletes_what_left_the_files(dart: RunningDart, client: Dart, folder: Path, applied: dict[str, Any],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    batches = folder / "batches.py"
    text = batches.read_text()
    start = text.index('    {"name": "apply-weblogs-event"')
    batches.write_text(text[:start] + "]\n")  # the event trigger leaves the files
    code, out, _ = _apply(dart, capsys, "-f", str(folder), "--dry-run")
    assert "not in the files, kept" in out and "trigger apply-weblogs-event" in out and "0 to delete" in out
    code, out, _ = _apply(dart, capsys, "-f", str(folder), "--prune")
    assert code == 0 and "1 to delete" in out and "- trigger apply-weblogs-event" in out, out
    assert client.triggers.find("apply-weblogs-event") is None
    assert client.triggers.find("apply-weblogs-batch") is not None


def test_export_then_apply_is_a_no_op(dart: RunningDart, client: Dart, applied: dict[str, Any], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["export", "-o", str(tmp_path / "exported"), "--api-url", f"{dart.base}/api/1", "--key", TOKEN])
    capsys.readouterr()
    assert code == 0
    workflows = (tmp_path / "exported" / "workflows.yaml").read_text()
    assert "datastore: apply-demo" in workflows and "dataset: apply-weblogs-daily" in workflows
    before = _quiet_last(client)
    code, out, _ = _apply(dart, capsys, "-f", str(tmp_path / "exported"))
    assert code == 0 and "0 to create, 0 to update, 0 to delete" in out, out
    assert _last(client) == before


def test_in_a_git_checkout_events_and_runs_carry_the_commit(dart: RunningDart, client: Dart, folder: Path,
                                                            applied: dict[str, Any], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "flow.yaml").write_text(
        "workflows:\n  - name: apply-git-flow\n    datastore: apply-demo\n    state: ACTIVE\n    actions:\n"
        "      - {name: only, action_type_name: fake_action_that_succeeds}\n")
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    code, out, _ = _apply(dart, capsys, "-f", str(repo))
    assert code == 0, out
    flow = client.workflows.find("apply-git-flow")
    assert flow is not None and flow.data.definition_commit == sha
    assert next(client.workflows.history(flow.id)).metadata["source"] == f"dart apply file=flow.yaml commit={sha}"
    run = client.run_and_wait(flow.id, timeout=60, poll=0.2)
    assert run.data.definition_commit == sha and run.data.workflow_version is not None


def test_a_refused_update_stops_the_apply_with_a_report_of_what_was_done(dart: RunningDart, client: Dart,
                                                                         folder: Path, applied: dict[str, Any],
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # An operator may change a workflow's state but not an action: the first update goes, the second is refused.
    chaining = folder / "chaining.yaml"
    text = chaining.read_text().replace("  - name: apply-wf2\n    datastore: apply-demo\n    state: ACTIVE",
                                        "  - name: apply-wf2\n    datastore: apply-demo\n    state: INACTIVE")
    chaining.write_text(text.replace("{name: wf2-step1, action_type_name: fake_action_that_succeeds}",
                                     "{name: wf2-step1, action_type_name: fake_action_that_succeeds, "
                                     "on_failure: CONTINUE}"))
    operator = client.keys.create("apply-operator@example.com", role="operator")
    code = cli.main(["apply", "-f", str(folder), "--api-url", f"{dart.base}/api/1", "--key", operator.token])
    out, _ = capsys.readouterr()
    assert code == 1 and "2 to update" in out, out
    assert "applied: 1 change(s)\n  ~ workflow apply-wf2: state: 'ACTIVE' -> 'INACTIVE'" in out
    assert "STOPPED: ~ action apply-wf2/wf2-step1 (#1): on_failure:" in out and "HTTP 403" in out
    assert "not applied (1):" in out
    assert client.workflows.find("apply-wf2").data.state == "INACTIVE"  # type: ignore[union-attr]
    step = next(client.actions.list(filters=["name = wf2-step1", "state = TEMPLATE"]))
    assert step.data.on_failure != "CONTINUE"
