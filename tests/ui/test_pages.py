"""The entity pages in a real browser: editing a datastore through its generated form (a refusal of the server
shown on the field it names), the time-travel slider showing a workflow's old state with the changes
highlighted, the global log following live, deep links, and what a viewer's key is not offered."""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from typing import Any

from playwright.sync_api import Locator, Page, expect

from bench.harness.stacks import KEY, RunningDart
from tests.ui.conftest import Api, Console, screenshot, sign_in


def field(fields: Locator, path: str, changed: bool = False) -> Locator:
    """The row of one field in an entity page's table (``changed``: highlighted as changed by this version)."""
    return fields.locator(f"tr{'.changed' if changed else ''}:has(th:text-is('{path}'))")


def datastore(api: Api, name: str, **data: Any) -> dict[str, Any]:
    return api.post("/datastore", {"data": {"name": name, "engine_name": "no_op_engine", "args": {}, **data}})


def test_edit_a_datastore_through_its_form_with_a_refusal_on_its_field(page: Page, api: Api,
                                                                        console: Console) -> None:
    store = datastore(api, "editable")
    sign_in(page, f"/datastore/{store['id']}")  # a deep link: the app opens at that page after signing in
    expect(page.get_by_role("heading", name=re.compile("datastore .* editable"))).to_be_visible()
    page.get_by_role("button", name="Edit").click()
    # TEMPLATE is in the schema's enum, but a datastore cannot be set to it: only the server says so
    page.locator("#root_state").select_option("TEMPLATE")
    console.allow(r"status of 400")  # the refusal's response, as the browser reports every 4xx
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#root_state__error")).to_contain_text("a datastore can be set to ACTIVE, INACTIVE or DONE, not TEMPLATE")
    screenshot(page, "form-refusal")
    assert api.get(f"/datastore/{store['id']}")["data"]["state"] == "INACTIVE"

    page.locator("#root_state").select_option("ACTIVE")
    page.locator("#root_concurrency").fill("3")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    saved = api.get(f"/datastore/{store['id']}")["data"]
    assert (saved["state"], saved["concurrency"]) == ("ACTIVE", 3)
    fields = page.get_by_role("table", name="Fields")
    expect(field(fields, "concurrency")).to_contain_text("3")
    expect(field(fields, "concurrency", changed=True)).to_be_visible()  # changed by this version


def test_time_travel_shows_a_workflows_old_state(page: Page, api: Api) -> None:
    store = datastore(api, "travel_store")
    workflow = api.post(f"/datastore/{store['id']}/workflow", {"data": {"name": "first_name"}})
    api.call("PATCH", f"/workflow/{workflow['id']}",
             [{"op": "replace", "path": "/data/name", "value": "second_name"}])
    api.call("PATCH", f"/workflow/{workflow['id']}", [{"op": "replace", "path": "/data/state", "value": "ACTIVE"}])
    sign_in(page, f"/workflow/{workflow['id']}")
    fields = page.get_by_role("table", name="Fields")
    expect(field(fields, "name")).to_contain_text("second_name")
    slider = page.get_by_label(re.compile("Time travel"))
    expect(page.get_by_text("Time travel: version 3 of 3")).to_be_visible()
    slider.focus()
    page.keyboard.press("Home")  # usable without a mouse
    expect(page.get_by_text("Time travel: version 1 of 3")).to_be_visible()
    assert "as_of=" in page.url
    expect(field(fields, "name")).to_contain_text("first_name")
    expect(field(fields, "state")).to_contain_text("INACTIVE")
    page.keyboard.press("ArrowRight")
    expect(page.get_by_text("Time travel: version 2 of 3")).to_be_visible()
    expect(fields.locator("tr.changed")).to_have_count(1)
    expect(fields.locator("tr.changed")).to_contain_text("second_name")
    expect(field(fields, "state")).to_contain_text("INACTIVE")
    screenshot(page, "time-travel")
    page.get_by_role("link", name="Back to now").click()
    expect(field(fields, "state")).to_contain_text("ACTIVE")


def test_the_log_follows_live_and_filters(page: Page, api: Api) -> None:
    sign_in(page, "/log")
    table = page.get_by_role("table", name="Log")
    expect(table.locator("tbody tr").first).to_be_visible()
    event = api.post("/event", {"data": {"name": "appended_while_watching"}})
    expect(table.get_by_role("link", name=f"event-{event['id']}")).to_be_visible()  # no reload: the stream
    screenshot(page, "log")
    page.get_by_label("Types (comma-separated)").fill("EventCreated")
    page.get_by_role("button", name="Filter").click()
    expect(table.locator("tbody tr")).to_have_count(1)
    later = api.post("/event", {"data": {"name": "second_while_filtered"}})
    expect(table.get_by_role("link", name=f"event-{later['id']}")).to_be_visible()
    datastore(api, "not_an_event")
    expect(table.locator("tbody tr")).to_have_count(2)
    types = table.locator("tbody tr td:nth-child(3)").all_inner_texts()
    assert set(types) == {"EventCreated"}, types


def test_lists_page_and_filter_on_the_server(page: Page, api: Api) -> None:
    for i in range(25):
        api.post("/event", {"data": {"name": f"paged_{i:02d}"}})
    sign_in(page, "/event")
    table = page.get_by_role("table", name="Events")
    expect(table.locator("tbody tr")).to_have_count(20)
    page.get_by_label(re.compile("^Filters")).fill("name LIKE paged_1%")
    page.get_by_role("button", name="Apply").click()
    expect(table.locator("tbody tr")).to_have_count(10)
    expect(page.get_by_role("navigation", name="Pages")).to_contain_text("1–10 of 10")
    page.get_by_label(re.compile("^Filters")).fill("name LIKE paged_%")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("navigation", name="Pages")).to_contain_text("1–20 of 25")
    page.get_by_role("button", name="Next").click()
    expect(table.locator("tbody tr")).to_have_count(5)
    assert "offset=20" in page.url


def test_a_viewer_is_not_offered_what_it_may_not_do(page: Page, api: Api) -> None:
    created = api.post("/api_key", {"data": {"user_id": "viewer_user", "role": "viewer"}})
    key = f"{created['key']}:{created['secret']}"
    store = datastore(api, "viewed")
    sign_in(page, f"/datastore/{store['id']}", key=key)
    expect(page.get_by_text("(viewer)")).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile("datastore .* viewed"))).to_be_visible()
    expect(page.get_by_role("button", name="Edit")).to_have_count(0)
    expect(page.get_by_role("button", name="Delete")).to_have_count(0)
    page.get_by_role("navigation", name="Entities").get_by_role("link", name="Datastores").click()
    expect(page.get_by_role("table", name="Datastores")).to_be_visible()
    expect(page.get_by_role("link", name="New datastore")).to_have_count(0)
    expect(page.get_by_role("link", name="Log")).to_have_count(0)
    # its pages still follow changes (reloading; the log is an admin's): no refusal in the console either
    page.get_by_role("table", name="Datastores").get_by_role("link", name=store["id"]).click()
    expect(page.get_by_role("heading", name=re.compile("datastore .* viewed"))).to_be_visible()
    api.call("PATCH", f"/datastore/{store['id']}", [{"op": "replace", "path": "/data/name", "value": "renamed"}])
    expect(page.get_by_role("heading", name=re.compile("datastore .* renamed"))).to_be_visible(timeout=20_000)


def test_api_docs_are_served_from_the_bundle(page: Page) -> None:
    sign_in(page, "/apidocs")
    expect(page.get_by_role("heading", name="API docs")).to_be_visible()
    operation = page.locator(".opblock-summary-path", has_text="/api/1/graph/sub_graph").first
    expect(operation).to_be_visible(timeout=30_000)  # Swagger UI rendered /api/1/openapi.json
    expect(page.locator(".opblock-summary-path", has_text="/api/1/datastore/{entity_id}").first).to_be_visible()


def test_the_server_serves_the_app_at_every_deep_link_and_its_assets_cached(dart: RunningDart, api: Api) -> None:
    def get(path: str, method: str = "GET", auth: str | None = None) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(dart.base + path, method=method,
                                         headers={"Authorization": auth} if auth else {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    status, headers, index = get("/")
    assert (status, headers["Content-Type"], headers["Cache-Control"]) == (200, "text/html", "no-cache")
    for deep in ("/datastore", "/workflow_instance/ABCDEFGHIJ", "/graph/workflow/X", "/log?type=A", "/apidocs"):
        assert get(deep)[::2] == (200, index), deep
    asset = re.search(rb'src="(/assets/[^"]+\.js)"', index)
    assert asset is not None, index
    status, headers, body = get(asset.group(1).decode())
    assert (status, headers["Cache-Control"]) == (200, "public, max-age=31536000, immutable")
    assert headers["Content-Type"] in ("text/javascript", "application/javascript") and body
    assert get("/assets/missing-0000.js")[0] == 404  # a missing asset is not the app
    assert get("/../setup.cfg")[0] in (200, 404) and b"[metadata]" not in get("/../setup.cfg")[2]
    status, _, body = get("/api/1/no_such_route")
    assert status == 404 and json.loads(body)["results"] == "ERROR"  # the API's own 404 stays JSON
    assert get("/", method="POST")[0] == 405

    assert get("/api/1/whoami")[0] == 401
    assert api.get("/whoami") == {"key": KEY, "user_id": "admin", "role": "admin"}
    viewer = api.post("/api_key", {"data": {"user_id": "who_viewer", "role": "viewer"}})
    basic = "Basic " + base64.b64encode(f"{viewer['key']}:{viewer['secret']}".encode()).decode()
    status, _, body = get("/api/1/whoami", auth=basic)
    assert (status, json.loads(body)["results"]) == (200, {"key": viewer["key"], "user_id": "who_viewer",
                                                            "role": "viewer"})


UNLABELLED = """() => [...document.querySelectorAll("main input, main select, main textarea")]
  .filter((e) => e.type !== "hidden" && !(e.labels && e.labels.length) && !e.getAttribute("aria-label"))
  .map((e) => e.id || e.name || e.outerHTML.slice(0, 80))"""


def unlabelled(page: Page) -> list[str]:
    """Every input of the page has a label (usable with a screen reader and the keyboard)."""
    return list(page.evaluate(UNLABELLED))


LISTS = {"engine": "Engines", "dataset": "Datasets", "datastore": "Datastores", "action": "Actions",
         "workflow": "Workflows", "workflow_instance": "Workflow instances", "trigger": "Triggers",
         "subscription": "Subscriptions", "event": "Events"}
# what each creatable kind's page asks first (and an answer that exists on a fresh dart up plus this module)
CHOICES = {"datastore": "no_op_engine", "trigger": "scheduled", "workflow": None, "subscription": None}


def test_every_list_and_create_form_renders(page: Page, api: Api) -> None:
    store = datastore(api, "forms_store")
    api.post("/dataset", {"data": {
        "name": "forms_dataset", "table_name": "t", "location": "s3://bucket/prefix", "load_type": "INSERT",
        "data_format": {"file_format": "PARQUET", "row_format": "NONE"}, "columns": [{"name": "a", "data_type": "STRING"}],
        "compression": "NONE"}})
    sign_in(page)
    for kind, title in LISTS.items():
        page.get_by_role("navigation", name="Entities").get_by_role("link", name=title, exact=True).click()
        expect(page.get_by_role("table", name=title)).to_be_visible()
        expect(page.get_by_role("navigation", name="Pages")).to_be_visible()
        assert unlabelled(page) == [], kind
        new = page.get_by_role("link", name=f"New {kind}")
        if kind in ("action", "workflow_instance"):
            expect(new).to_have_count(0)  # created by their parents, not on their own
            continue
        new.click()
        chooser = page.locator("#choice")
        if kind in CHOICES:
            choice = CHOICES[kind]
            if choice is None:  # the first datastore or dataset offered
                choice = chooser.locator("option").nth(1).get_attribute("value") or ""
            expect(chooser.locator(f"option[value='{choice}']")).to_have_count(1)
            chooser.select_option(choice)
        expect(page.locator("#root_name")).to_be_visible()
        expect(page.get_by_role("button", name="Save")).to_be_visible()
        assert unlabelled(page) == [], kind
    assert store["id"]
    page.goto("/trigger/new?trigger_type_name=scheduled")
    page.locator("#root_name").fill("nightly")
    page.locator("#root_args_cron_pattern").fill("0 3 * * ? *")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name=re.compile(r"trigger \w+ nightly"))).to_be_visible()
    trigger_id = page.url.rstrip("/").rsplit("/", 1)[1]
    assert api.get(f"/trigger/{trigger_id}")["data"]["args"] == {"cron_pattern": "0 3 * * ? *"}


def test_find_an_entitys_graph_by_name(page: Page, api: Api) -> None:
    store = datastore(api, "searchable_store")
    sign_in(page)
    page.get_by_label("Find an entity's graph").fill("searchable")
    page.get_by_role("list", name="Found").get_by_role("link", name="datastore: searchable_store").click()
    expect(page.get_by_role("heading", name=re.compile("Graph of datastore"))).to_be_visible()
    assert page.url.endswith(f"/graph/datastore/{store['id']}")
    expect(page.locator(f".node-list li[data-node='datastore-{store['id']}']")).to_have_attribute("data-state", "INACTIVE")


def test_an_operator_may_activate_and_run_but_not_edit(page: Page, api: Api) -> None:
    created = api.post("/api_key", {"data": {"user_id": "operator_user", "role": "operator"}})
    store = datastore(api, "operated", state="ACTIVE")
    workflow = api.post(f"/datastore/{store['id']}/workflow", {"data": {"name": "operated_flow"}})
    sign_in(page, f"/workflow/{workflow['id']}", key=f"{created['key']}:{created['secret']}")
    expect(page.get_by_text("(operator)")).to_be_visible()
    expect(page.get_by_role("button", name="Edit")).to_have_count(0)
    expect(page.get_by_role("button", name="Run")).to_have_count(0)  # not while INACTIVE
    page.get_by_role("button", name="Activate").click()
    expect(page.get_by_role("status")).to_have_text("Activated.")
    assert api.get(f"/workflow/{workflow['id']}")["data"]["state"] == "ACTIVE"
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_role("status")).to_contain_text("Started")
    expect(page.get_by_role("table", name="Runs").locator("tbody tr")).to_have_count(1, timeout=20_000)


def test_a_runs_gantt_follows_it_live(page: Page, api: Api) -> None:
    store = datastore(api, "live_store", state="ACTIVE", args={"action_sleep_time_in_seconds": 3})
    workflow = api.post(f"/datastore/{store['id']}/workflow", {"data": {"name": "live_flow", "state": "ACTIVE"}})
    api.post(f"/workflow/{workflow['id']}/action",
             [{"data": {"name": f"step_{i}", "action_type_name": "fake_action_that_succeeds"}} for i in range(2)])
    sign_in(page, f"/workflow/{workflow['id']}")
    page.get_by_role("button", name="Run").click()
    runs = page.get_by_role("table", name="Runs")
    runs.get_by_role("link").first.click()  # the run, as soon as it is listed
    timeline = page.get_by_role("region", name="Timeline")
    # seen running (each step sleeps 3 s), then finished, on the same page: the log stream moved it
    expect(timeline.locator(".gantt-row[data-state='RUNNING']")).to_have_count(1, timeout=30_000)
    expect(timeline.locator(".gantt-row[data-state='COMPLETED']")).to_have_count(2, timeout=60_000)
    expect(page.get_by_role("heading", name=re.compile(r"workflow_instance \w+ COMPLETED"))).to_be_visible()
