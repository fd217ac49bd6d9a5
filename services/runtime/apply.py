"""``dart apply -f DIR|FILE [--dry-run] [--prune]`` and ``dart export``: definitions kept in files (services/
runtime/definitions.py) made the server's, over the public REST API with the Python client.

The plan (services/runtime/apply_plan.py) is printed first. Every create of an apply goes in one atomic append
(``POST /graph/sub_graph``); updates and deletes follow one request each, in dependency order, and if one is
refused the report says what was applied and what was not. Every request names its file and, in a git
checkout, the commit (``X-Dart-Source``), which the server records in each event's metadata; a workflow that
changed (itself or its actions) also records the commit, which its runs then carry (``definition_commit``).
"""

from __future__ import annotations

import argparse
import functools
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.client import Dart, DartApiError
from services.client.transport import quote
from services.runtime.apply_plan import SOURCE_PREFIX, Change, Plan, make_plan
from services.runtime.definitions import DefinitionError, load

Out = Callable[[str], None]


def add_arguments(sub: Any) -> None:
    """The ``apply`` and ``export`` subcommands (argparse only)."""
    apply = sub.add_parser("apply", help="make the server match definition files (YAML or Python): plan, then apply")
    apply.add_argument("-f", "--file", dest="files", action="append", required=True, metavar="DIR|FILE",
                       help="a definitions file or a directory of them (repeatable)")
    apply.add_argument("--dry-run", action="store_true", help="print the plan only")
    apply.add_argument("--prune", action="store_true",
                       help="delete what an earlier dart apply created and the files no longer define")
    export = sub.add_parser("export", help="write the server's datastores, datasets, workflows, triggers, "
                                           "subscriptions and events as definition files")
    export.add_argument("-o", "--output", metavar="DIR|FILE",
                        help="a .yaml file, or a directory (one file per kind); default: standard output")
    for parser in (apply, export):
        parser.add_argument("--api-url", help="default: DART_API_URL, else http://HOST:PORT/api/1")
        parser.add_argument("--key", help="key:secret (default: DART_BOOTSTRAP_API_KEY, else $DART_HOME/credentials)")


def run_command(dart: Dart, args: argparse.Namespace, out: Out = print) -> int:
    from services.runtime.apply_export import export

    try:
        if args.command == "export":
            export(dart, args.output, out)
            return 0
        return apply_files(dart, args.files, dry_run=args.dry_run, prune=args.prune, out=out)
    except DefinitionError as exc:
        print(f"dart {args.command}: {exc}", file=sys.stderr)
        return 2
    except DartApiError as exc:
        print(f"dart {args.command}: {exc}", file=sys.stderr)
        return 1


def apply_files(dart: Dart, targets: Iterable[str], *, dry_run: bool = False, prune: bool = False,
                out: Out = print) -> int:
    """Plan, print, and (unless ``dry_run``) apply; the process exit code."""
    definitions = load(targets)
    plan = make_plan(dart, definitions, prune=prune)
    out(plan.text())
    if dry_run or not plan.changes:
        out("nothing to do" if not plan.changes else "dry run: nothing applied")
        return 0
    applied = Applier(dart, commits({d.file for d in definitions})).run(plan)
    out(applied.report())
    return 0 if applied.error is None else 1


def commits(files: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Each file in a git checkout: (its commit, ``<sha>-dirty`` when the file differs from it; its path in the
    repository). Files outside git are left out."""
    found: dict[str, tuple[str, str]] = {}
    for file in files:
        path = Path(file).resolve()
        head = _git(path.parent, "rev-parse", "HEAD")
        top = _git(path.parent, "rev-parse", "--show-toplevel")
        if head is None or top is None:
            continue
        dirty = _git(path.parent, "status", "--porcelain", "--", str(path))
        found[file] = (f"{head}-dirty" if dirty else head, str(path.relative_to(Path(top).resolve())))
    return found


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], check=False, capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@dataclass
class Applied:
    done: list[str] = field(default_factory=list)
    not_done: list[str] = field(default_factory=list)
    error: str | None = None

    def report(self) -> str:
        lines = [f"applied: {len(self.done)} change(s)"] + [f"  {line}" for line in self.done]
        if self.error is not None:
            lines.append(f"STOPPED: {self.error}")
            lines.append(f"not applied ({len(self.not_done)}):")
            lines += [f"  {line}" for line in self.not_done]
        return "\n".join(lines)


class Applier:
    """Runs a plan: the creates in one append, then updates and deletes in order."""

    def __init__(self, dart: Dart, in_git: dict[str, tuple[str, str]]) -> None:
        self.dart = dart
        self.commits = {file: commit for file, (commit, _) in in_git.items()}
        self.names = {file: name for file, (_, name) in in_git.items()}  # a file's path in its repository
        self.ids: dict[str, str] = {}  # placeholder -> the id the server gave

    def source(self, files: Iterable[str | None]) -> str:
        named = sorted({f for f in files if f})
        text = f"{SOURCE_PREFIX} file={','.join(self.names.get(f, f) for f in named) or '-'}"
        found = sorted({self.commits[f] for f in named if f in self.commits})
        return text + (f" commit={','.join(found)}" if found else "")

    def run(self, plan: Plan) -> Applied:
        applied = Applied()
        steps: list[tuple[str, Callable[[], None]]] = []
        creates = plan.of("create")
        if creates:
            steps.append((f"create {len(creates)}: " + ", ".join(c.label for c in creates),
                          lambda: self._create(creates)))
        for change in [*plan.of("update"), *self._commit_updates(plan)]:
            steps.append((change.line().strip(), functools.partial(self._update, change)))
        for change in plan.of("delete"):
            steps.append((change.line().strip(), functools.partial(self._delete, change)))
        for index, (label, step) in enumerate(steps):
            try:
                step()
            except DartApiError as exc:
                applied.error = f"{label}: {exc}"
                applied.not_done = [name for name, _ in steps[index:]]
                return applied
            applied.done.append(label)
        return applied

    def _commit_updates(self, plan: Plan) -> list[Change]:
        """A workflow whose actions changed records the commit too (its own update already carries it)."""
        changed: dict[str, Change] = {}
        updated = {c.entity_id for c in plan.of("update") if c.kind == "workflow"}
        for change in plan.changes:
            definition = change.definition
            if change.kind != "action" or definition is None or definition.workflow is None:
                continue
            commit = self.commits.get(definition.file)
            workflow_id = change.data.get("workflow_id", "")
            if commit and workflow_id and not workflow_id.startswith("UNSAVED-") and workflow_id not in updated:
                changed[workflow_id] = Change("update", "workflow", f"workflow {definition.workflow}",
                                              definition.file, workflow_id, {"definition_commit": commit},
                                              [f"definition_commit -> {commit}"])
        return list(changed.values())

    def _with_commit(self, change: Change) -> dict[str, Any]:
        data = self._resolved(change.data)
        commit = self.commits.get(change.file or "")
        if change.kind == "workflow" and commit:
            data["definition_commit"] = commit
        return data

    def _resolved(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.ids.get(value, value)
        if isinstance(value, list):
            return [self._resolved(v) for v in value]
        if isinstance(value, dict):
            return {k: self._resolved(v) for k, v in value.items()}
        return value

    def _create(self, creates: list[Change]) -> None:
        unsaved = {f"{c.kind}-{c.entity_id}": {"data": self._with_commit(c)} for c in creates}
        headers = {"X-Dart-Source": self.source(c.file for c in creates)}
        try:
            answer = self.dart.request("POST", "/graph/sub_graph", {"unsaved_entities": unsaved}, headers=headers)
        except DartApiError as exc:
            if exc.status not in (404, 405):
                raise
            self._create_in_order(creates)  # a server without the atomic save
            return
        for key, created in (answer.get("results") or {}).items():
            self.ids[key.partition("-")[2]] = created["id"]

    def _create_in_order(self, creates: list[Change]) -> None:
        for change in creates:
            data = self._with_commit(change)
            headers = {"X-Dart-Source": self.source([change.file])}
            body: Any = {"data": data}
            path = self.dart.entities(change.kind)._create_path(data)
            if change.kind == "action":
                path, body = f"/workflow/{quote(data['workflow_id'])}/action", [body]
            created = self.dart.request("POST", path, body, headers=headers)["results"]
            self.ids[change.entity_id] = (created[0] if isinstance(created, list) else created)["id"]

    def _update(self, change: Change) -> None:
        path = self.dart.entities(change.kind).path
        headers = {"X-Dart-Source": self.source([change.file])}
        if set(change.data) == {"definition_commit"}:
            operations = [{"op": "add", "path": "/data/definition_commit", "value": change.data["definition_commit"]}]
            self.dart.request("PATCH", f"/{path}/{quote(change.entity_id)}", operations, headers=headers)
            return
        self.dart.request("PUT", f"/{path}/{quote(change.entity_id)}", {"data": self._with_commit(change)},
                          headers=headers)

    def _delete(self, change: Change) -> None:
        path = self.dart.entities(change.kind).path
        headers = {"X-Dart-Source": self.source([change.file])}
        try:
            self.dart.request("DELETE", f"/{path}/{quote(change.entity_id)}", headers=headers)
        except DartApiError as exc:
            if exc.status != 404:  # gone already (a workflow's delete takes its actions with it)
                raise
