"""Where a dart API worker's time goes: py-spy's raw (collapsed) stacks of one gunicorn worker, summarised.

Each sample is a stack ``frame;frame;...;leaf N`` whose frames read ``function (path:line)``. A sample is
charged to exactly one group: the first group in GROUPS with a frame anywhere in the stack, so "SQLAlchemy
compile" under the auth lookup counts as compile, and the groups add up to 100%. Sampled with ``--gil``
(only the thread holding the GIL), so the shares are of the worker's Python CPU time.
``steps`` are inclusive instead (a frame anywhere in the stack): how much of the busy time each step of a
request takes, whatever it spends it on.

    .venv/bin/python -m bench.api_profile PROFILE.txt

``profile`` records such stacks under load for ``python -m bench.api_bench --profile``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.api_load import Plan, Server, finish_wrk, log, run_wrk

# (label, file pattern, function pattern or None), in priority order: a sample goes to the first group with
# a matching frame anywhere in its stack (so the catch-alls, falcon and gunicorn, come last).
GROUPS: list[tuple[str, str, str | None]] = [
    ("psycopg: BEGIN / ROLLBACK round trips (transaction control)", r"psycopg/",
     r"_exec_command|(^|\.)(rollback|_start_query|commit)$"),
    ("waiting for PostgreSQL (psycopg wait)", r"psycopg/", r"(^|\.)(wait|wait_c|wait_select|wait_epoll)$"),
    ("JSON decode of jsonb columns (json.loads)", r"json/decoder\.py|json/__init__\.py",
     r"(raw_decode|decode|loads)$"),
    ("SQLAlchemy: compile SQL (cache key, compiler)",
     r"sqlalchemy/sql/(compiler|cache_key|traversals|visitors)\.py", None),
    ("SQLAlchemy: result rows and type processing",
     r"sqlalchemy/(engine/(result|cursor|row)\.py|sql/sqltypes\.py)|events/timestamps\.py", None),
    ("SQLAlchemy: pool checkout/return", r"sqlalchemy/pool/", None),
    ("psycopg: send query, adapt params, load rows", r"psycopg/", None),
    ("SQLAlchemy: statement building and execute", r"sqlalchemy/", None),
    ("JSON encode of the response", r"json/encoder\.py|falcon/media/json\.py", None),
    ("action schemas built per request (data_schemas)", r"services/schemas/|services/entities/listing\.py",
     r"(action_schema|datastore_schema|data_schema|embed|deepcopy|_deepcopy|data_schemas)"),
    ("JSON schema typing of filter paths", r"services/filters\.py",
     r"(path_type|_resolve|_alternatives|_types)"),
    ("filter parse and clause building", r"services/(filters|filter_sql)\.py", None),
    ("response envelope (isoformat etc.)", r"services/entities/reads\.py", r"(envelope|iso|as_dict)"),
    ("auth: HMAC and header parsing", r"services/auth\.py", None),
    ("gunicorn access log", r"gunicorn/glogging\.py|logging/", None),
    ("falcon request/response handling", r"falcon/", None),
    ("gunicorn: HTTP parse, socket I/O, worker loop", r"gunicorn/|socket\.py|selectors\.py", None),
]

# Inclusive steps of a request (a frame anywhere in the stack).
STEPS: list[tuple[str, str, str]] = [
    ("auth middleware (key lookup + HMAC)", r"services/auth\.py", r"(^|\.)authenticate$"),
    ("data_schemas (engines query + schema build)", r"services/entities/listing\.py", r"(^|\.)data_schemas$"),
    ("filter typing + clauses", r"services/filters\.py", r"(^|\.)(path_type|filter_clause|order_clause)$"),
    ("reader.page (count + page queries)", r"services/entities/reads\.py", r"(^|\.)page$"),
    ("reader.get (item query)", r"services/entities/reads\.py", r"(^|\.)get$"),
    ("response JSON encode", r"falcon/media/json\.py|json/encoder\.py", r".*"),
    ("gunicorn access log", r"gunicorn/glogging\.py", r"(^|\.)access$"),
]

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def parse_lines(path: Path) -> list[tuple[list[tuple[str, str, str]], int]]:
    samples = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for raw in stack.split(";"):
            m = _FRAME.match(raw.strip())
            if m is None:
                frames.append((raw.strip(), "", ""))
            else:
                frames.append((m.group("func"), m.group("file"), m.group("line") or ""))
        samples.append((frames, int(count)))
    return samples


def _is_idle(frames: list[tuple[str, str, str]]) -> bool:
    func, file, _ = frames[-1]
    name = func.rsplit(".", 1)[-1]
    return name in ("select", "poll", "accept", "sleep", "_wait_for_tstate_lock", "_worker") and \
        ("selectors" in file or "threading" in file or "gunicorn" in file or "thread.py" in file)


def _lines_of(marker: str) -> set[str]:
    """Line numbers in services/entities/reads.py holding ``marker`` (tell the count from the page query)."""
    source = Path(__file__).resolve().parent.parent / "services" / "entities" / "reads.py"
    try:
        return {str(i) for i, text in enumerate(source.read_text().splitlines(), 1) if marker in text}
    except OSError:
        return set()


def summarise(path: Path) -> dict[str, Any]:
    samples = parse_lines(path)
    count_lines = _lines_of("sa.func.count()")
    page_lines = _lines_of("rows = conn.execute(base")
    groups: Counter[str] = Counter()
    steps: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    busy = 0
    compiled = [(label, re.compile(f), re.compile(fn) if fn else None) for label, f, fn in GROUPS]
    step_rules = [(label, re.compile(f), re.compile(fn)) for label, f, fn in STEPS]
    for frames, count in samples:
        if not frames or _is_idle(frames):
            continue
        busy += count
        label = next((lbl for lbl, f, fn in compiled
                      if any(f.search(file) and (fn is None or fn.search(func)) for func, file, _ in frames)),
                     None)
        groups[label or "other (dart code, stdlib)"] += count
        for label, f, fn in step_rules:
            if any(f.search(file) and fn.search(func) for func, file, _ in frames):
                steps[label] += count
        in_reads = [line for func, file, line in frames
                    if file.endswith("entities/reads.py") and func.endswith("page")]
        if any(line in count_lines for line in in_reads):
            steps["  of which the count(*) query"] += count
        if any(line in page_lines for line in in_reads):
            steps["  of which the page query"] += count
        func, file, _ = frames[-1]
        leaves[f"{func} ({Path(file).name})"] += count
    pct = (lambda n: round(100.0 * n / busy, 1)) if busy else (lambda n: 0.0)
    return {
        "busy_samples": busy,
        "groups": [(label, pct(n)) for label, n in groups.most_common()],
        "steps": [(label, pct(n)) for label, n in sorted(steps.items(), key=_step_order)],
        "top_leaves": [(label, pct(n)) for label, n in leaves.most_common(12)],
    }


def _step_order(item: tuple[str, int]) -> tuple[int, str]:
    order = [label for label, _, _ in STEPS]
    label = item[0]
    if label.startswith("  of which"):
        return order.index("reader.page (count + page queries)"), label
    return order.index(label), ""


# ------------------------------------------------------------------------- recording (api_bench --profile)
def start_profile(pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        log("  (py-spy is not installed: .venv/bin/pip install py-spy)")
        return None
    # --gil: only the thread holding the GIL, i.e. where the worker's Python CPU time goes.
    return subprocess.Popen([spy, "record", "-p", str(pid), "-d", str(max(1, int(seconds))), "-r", "200",
                             "--gil", "-f", "raw", "-o", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def profile(
    server: Server, scenario: str, variant: str, paths_file: Path, plan: Plan, out_dir: Path
) -> dict[str, Any]:
    """An extra, untimed load run with py-spy on every worker: where the workers' Python CPU goes."""
    seconds = max(4.0, plan.seconds)
    proc = run_wrk(server.base, paths_file, seconds + 1)
    time.sleep(0.5)
    out = out_dir / f"{server.name}_{scenario}{'_' + variant if variant else ''}.txt"
    spies = [spy for i, pid in enumerate(server.workers())
             if (spy := start_profile(pid, out.with_suffix(f".{i}"), seconds - 1)) is not None]
    for spy in spies:
        spy.wait()
    finish_wrk(proc)
    parts = sorted(out.parent.glob(out.stem + ".[0-9]*"))
    out.write_text("".join(p.read_text() for p in parts if p.exists()))
    return summarise(out)



def main() -> int:
    for arg in sys.argv[1:]:
        summary = summarise(Path(arg))
        print(f"{arg}: {summary['busy_samples']} busy samples")
        for key in ("groups", "steps", "top_leaves"):
            print(f"  {key}:")
            for label, share in summary[key]:
                print(f"    {share:5.1f}%  {label}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
