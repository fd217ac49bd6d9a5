"""The web UI in a real browser: Playwright for Python driving the machine's Chromium (Debian's ``chromium``;
``DART_CHROMIUM`` names another) against a fresh ``dart up`` on SQLite. Every page collects the browser's
console: an error there fails the test (a test that provokes an expected refusal names the one message it
allows). A failed test leaves a screenshot in tests/ui/failures/. With ``DART_UI_SCREENSHOTS=<folder>`` the
tests also save the documentation's screenshots there (``python -m tests.ui.screenshots`` does it for
docs/ui)."""

from __future__ import annotations

import json
import os
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, expect, sync_playwright

from bench.harness.stacks import KEY, SECRET, RunningDart

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "services" / "ui" / "dist" / "index.html"
FAILURES = Path(__file__).resolve().parent / "failures"
CHROMIUM = os.environ.get("DART_CHROMIUM", "/usr/bin/chromium")
ADMIN = f"{KEY}:{SECRET}"
# Each expectation waits up to this long for the page to get there (the machine is shared; nothing is timed)
expect.set_options(timeout=15_000)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: apt-get install chromium (or set DART_CHROMIUM)"
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def dart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDart]:
    assert DIST.exists(), "the UI is not built: run ./dart (it builds services/ui) or npm run build there"
    running = RunningDart(tmp_path_factory.mktemp("dart-ui"), None)
    try:
        yield running
    finally:
        running.stop()


class Api:
    """The REST API beside the browser, as the admin: to arrange and to check what the UI did."""

    def __init__(self, base: str) -> None:
        self.base = base + "/api/1"
        import base64

        self.auth = "Basic " + base64.b64encode(ADMIN.encode()).decode()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(self.base + path, method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": self.auth, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["results"]

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self.call("POST", path, body)


@pytest.fixture(scope="module")
def api(dart: RunningDart) -> Api:
    return Api(dart.base)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


class Console:
    """The page's console messages and uncaught errors; ``allow`` names expected ones (regexes)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []
        self.allowed: list[re.Pattern[str]] = []

    def add(self, message: ConsoleMessage) -> None:
        self.messages.append((message.type, message.text))

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def errors(self) -> list[str]:
        return [text for kind, text in self.messages
                if kind in ("error", "pageerror") and not any(p.search(text) for p in self.allowed)]


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser: Browser, dart: RunningDart, console: Console, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(base_url=dart.base, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.on("console", console.add)
    page.on("pageerror", lambda error: console.messages.append(("pageerror", str(error))))
    yield page
    failed = getattr(request.node, "report_call", None)
    if failed is not None and failed.failed:
        FAILURES.mkdir(exist_ok=True)
        page.screenshot(path=str(FAILURES / f"{request.node.name}.png"), full_page=True)
    context.close()
    if failed is not None and failed.passed:
        assert console.errors() == [], f"errors in the browser console: {console.errors()}"


def sign_in(page: Page, path: str = "/", key: str = ADMIN) -> None:
    page.goto(path)
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()


def screenshot(page: Page, name: str) -> None:
    """A documentation screenshot, when DART_UI_SCREENSHOTS names a folder."""
    folder = os.environ.get("DART_UI_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))
