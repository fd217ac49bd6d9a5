"""``python -m bench.ui_list_bench``: issue 14's target "a page of any list shows in under 300 ms on localhost
with 100,000 actions stored (server-side paging)", measured in a real browser.

It fills a fresh SQLite database (or, with ``--postgres [server URL]``, a new database on that PostgreSQL server,
dropped at the end) with ``--actions`` actions (default 100,000)
through bench/api_fill.py (real ``ActionCreated`` events, the read models written by the inline projections),
starts ``dart api`` on it (``--up``: ``dart up``, with its workers; the filled QUEUED and RUNNING actions are
then theirs to handle), signs in with Debian's Chromium (``DART_CHROMIUM``) and opens list pages: each is a
full navigation (the app's bundle from the browser's cache, the key from sessionStorage, ``GET /whoami``, then
the list's ``GET /api/1/action?limit=20...``), timed from the navigation's start (``performance.now()`` is
relative to it) to the moment the page's rows are in the DOM (a MutationObserver installed before the app
runs). Beside it, the list request alone from Python. It prints the median and the worst of ``--rounds``
rounds per page with the machine's load average. Nothing is asserted: the machine is shared, the numbers
are for docs/benchmarks.md. The UI must be built (run ``./dart`` once).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from bench import api_fill
from bench.api_load import KEY, SECRET, free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("DART_CHROMIUM", "/usr/bin/chromium")
ROWS = 20  # the app's page size (services/ui/src/pages/ListPage.tsx)

# Records when the list's rows are first in the DOM, before the app's code runs.
OBSERVER = """
window.__rowsAt = null;
new MutationObserver((_, observer) => {
  const table = document.querySelector('main table.list');
  if (table && table.querySelectorAll('tbody tr').length >= ROWS && window.__rowsAt === null) {
    window.__rowsAt = performance.now();
    observer.disconnect();
  }
}).observe(document, { childList: true, subtree: true });
""".replace("ROWS", str(ROWS))


def _with_schema_defaults() -> None:
    """bench/api_fill.py's workflows predate the schema's ``definition_commit`` (default null), which its own
    check against the schema then refuses: add it as the API would store it."""
    shaped = api_fill.workflow_data
    if getattr(shaped, "defaults_added", False):
        return

    def workflow_data(*args, **kwargs):  # type: ignore[no-untyped-def]
        data = shaped(*args, **kwargs)
        data.setdefault("definition_commit", None)
        return data

    workflow_data.defaults_added = True  # type: ignore[attr-defined]
    api_fill.workflow_data = workflow_data


def pages(total: int) -> dict[str, str]:
    """The list pages measured: label -> the app's path."""
    q = urllib.parse.quote
    return {
        "actions, first page": "/action",
        "actions, middle page": f"/action?offset={total // 2}",
        "actions, last page": f"/action?offset={max(0, total - ROWS)}",
        "actions by name, middle": f"/action?order_by={q(json.dumps(['name ASC']))}&offset={total // 2}",
        "actions, state = FAILED": f"/action?filters={q(json.dumps(['state = FAILED']))}",
        "workflows, first page": "/workflow",
    }


def api_path(app_path: str) -> str:
    """The list request the app sends for one of its pages."""
    path, _, query = app_path.partition("?")
    params = dict(urllib.parse.parse_qsl(query))
    params = {"limit": str(ROWS), "offset": params.pop("offset", "0"), **params}
    return f"/api/1{path}?{urllib.parse.urlencode(params)}"


def api_ms(base: str, path: str) -> float:
    auth = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    request = urllib.request.Request(base + path, headers={"Authorization": auth})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.loads(response.read())
    elapsed = (time.perf_counter() - started) * 1000
    assert len(body["results"]) == min(ROWS, body["total"]), body.get("total")
    return elapsed


def measure(base: str, total: int, rounds: int) -> list[tuple[str, list[float], list[float]]]:
    from playwright.sync_api import sync_playwright

    rows: list[tuple[str, list[float], list[float]]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(base_url=base, viewport={"width": 1400, "height": 900})
        context.add_init_script(OBSERVER)
        page = context.new_page()
        page.goto("/")
        page.get_by_label("API key").fill(f"{KEY}:{SECRET}")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("button", name="Sign out").wait_for()
        for label, path in pages(total).items():
            browser_ms: list[float] = []
            server_ms: list[float] = []
            for i in range(rounds + 1):  # the first: a warm-up (the bundle into the cache, the server's caches)
                page.goto(path)
                page.wait_for_function("window.__rowsAt !== null", timeout=60_000)
                took = float(page.evaluate("window.__rowsAt"))
                asked = api_ms(base, api_path(path))
                if i:
                    browser_ms.append(took)
                    server_ms.append(asked)
            rows.append((label, browser_ms, server_ms))
        browser.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--actions", type=int, default=100_000, help="actions stored (default 100,000)")
    parser.add_argument("--workflows", type=int, default=1_000, help="workflows they belong to (default 1,000)")
    parser.add_argument("--rounds", type=int, default=5, help="timed navigations per page (default 5)")
    parser.add_argument("--postgres", nargs="?", const="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="fill a new database on this PostgreSQL server (default: SQLite in a temp dir)")
    parser.add_argument("--up", action="store_true", help="serve with `dart up` instead of `dart api`")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (and its database)")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"ui_list_bench: no Chromium at {CHROMIUM} (apt-get install chromium, or DART_CHROMIUM)", file=sys.stderr)
        return 2
    if not (ROOT / "services" / "ui" / "dist" / "index.html").exists():
        print("ui_list_bench: the UI is not built: run ./dart once", file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="dart_uilist_"))
    home = workdir / "home"
    home.mkdir()
    database = f"dart_uilist_{os.getpid()}"
    if args.postgres:
        import psycopg

        from bench.harness.pg import database_url, libpq_url

        with psycopg.connect(libpq_url(args.postgres), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{database}"')
        url = database_url(args.postgres, database)
    else:
        url = f"sqlite:///{home / 'dart.db'}"
    proc = None
    try:
        print(f"ui_list_bench: filling {args.actions:,} actions in {args.workflows:,} workflows into "
              f"{url.split('@')[-1]}", flush=True)
        _with_schema_defaults()
        filled = api_fill.fill(url, home / "fill", args.workflows, args.actions, (KEY, SECRET),
                               progress=lambda line: print(line, flush=True))
        print(f"loaded {filled.events:,} events in {filled.seconds:.1f} s; rows: {filled.counts}", flush=True)
        if args.postgres:  # as autovacuum would soon: the planner's statistics of the filled tables
            import psycopg

            with psycopg.connect(libpq_url(url), autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DART_")}
        env.update(PYTHONPATH=str(ROOT), DART_HOME=str(home), DART_DATABASE_URL=url, DART_LOG_FORMAT="json",
                   DART_BOOTSTRAP_API_KEY=f"{KEY}:{SECRET}")
        command = ["up", "--port", str(port)] if args.up else ["api", "--port", str(port)]
        log_path = workdir / "dart.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "services.runtime.cli", *command], env=env, cwd=ROOT,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, proc, log_path)
        total = filled.counts["action"]
        load_before = os.getloadavg()
        results = measure(base, total, args.rounds)
        load_after = os.getloadavg()
        print(f"\n`dart {command[0]}` on {'PostgreSQL' if args.postgres else 'SQLite'}, {total:,} actions "
              f"({filled.counts['workflow']:,} workflows); {os.cpu_count()} cores; load average "
              f"{' '.join(f'{x:.2f}' for x in load_before)} before, "
              f"{' '.join(f'{x:.2f}' for x in load_after)} after")
        print("navigation start -> the page's 20 rows in the DOM (Chromium), and the list request alone "
              f"(Python), ms: median / worst of {args.rounds}")
        print(f"{'page':28} {'browser':>16} {'API request':>16}")
        for label, browser_ms, server_ms in results:
            print(f"{label:28} {statistics.median(browser_ms):7.0f} / {max(browser_ms):6.0f} "
                  f"{statistics.median(server_ms):7.0f} / {max(server_ms):6.0f}")
        return 0
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
        if args.keep:
            print(f"kept {workdir}" + (f" and database {database}" if args.postgres else ""))
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            if args.postgres:
                import psycopg

                from bench.harness.pg import libpq_url

                with psycopg.connect(libpq_url(args.postgres), autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
