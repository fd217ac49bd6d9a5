"""Definition files read without a server (services/runtime/definitions.py): names become references, and a
wrong shape is refused naming the file, the entity and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.runtime.definitions import DefinitionError, dump, load


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_names_become_references_and_actions_keep_their_place(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "workflows:\n  - name: wf\n    datastore: store\n    actions:\n"
                               "      - {name: one, action_type_name: t, args: {dataset: logs}}\n"
                               "      - {name: two, action_type_name: t}\n"
                               "triggers:\n  - {name: tr, trigger_type_name: workflow_completion,"
                               " args: {completed_workflow: wf}, workflows: [wf]}\n")
    found = {d.key: d for d in load([tmp_path])}
    workflow, first, second = found[("workflow", "wf")], found[("action", "wf", "0")], found[("action", "wf", "1")]
    assert workflow.refs == {("datastore_id",): "store"} and "datastore" not in workflow.data
    assert first.refs == {("args", "dataset_id"): "logs"} and first.data["args"] == {}
    assert second.position == 1 and second.workflow == "wf"
    assert found[("trigger", "tr")].refs == {("workflow_ids",): ["wf"], ("args", "completed_workflow_id"): "wf"}


def test_a_python_file_defines_the_same_lists(tmp_path: Path) -> None:
    _write(tmp_path, "flows.py", "events = [{'name': f'ev{i}'} for i in range(3)]\n")
    assert [d.name for d in load([tmp_path / "flows.py"])] == ["ev0", "ev1", "ev2"]


@pytest.mark.parametrize(("text", "message"), [
    ("widgets: []\n", "a.yaml: unknown kind(s) widgets"),
    ("events:\n  - {description: no name}\n", "a.yaml: events[0]: name: each event needs a name"),
    ("events:\n  - {name: e}\n  - {name: e}\n", "a.yaml: event e: name: defined twice"),
    ("triggers:\n  - {name: t, workflows: wf}\n", "a.yaml: trigger t: workflows: expected a list of workflow names"),
    ("workflows:\n  - name: w\n    actions:\n      - {name: x, workflow_id: ABC}\n",
     "a.yaml: action w/x (#1): workflow_id: an action belongs to the workflow that lists it"),
    ("workflows: [\n", "a.yaml: not YAML"),
])
def test_a_wrong_file_is_refused_naming_file_entity_and_field(tmp_path: Path, text: str, message: str) -> None:
    _write(tmp_path, "a.yaml", text)
    with pytest.raises(DefinitionError) as refused:
        load([tmp_path])
    assert message in str(refused.value)


def test_a_missing_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="no such file or directory"):
        load([tmp_path / "nope"])


def test_dump_writes_what_load_reads(tmp_path: Path) -> None:
    _write(tmp_path, "out.yaml", dump({"events": [{"name": "e", "description": "x"}], "datasets": []}))
    assert [(d.kind, d.name, d.data) for d in load([tmp_path])] == [("event", "e", {"name": "e", "description": "x"})]
