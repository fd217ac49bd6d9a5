"""The seed README's demo in a real browser on a fresh `dart up` (issue 14): sign in, create a no_op datastore
from the form generated from its engine's schema, open its graph, add no_op_engine's "workflow chaining demo",
save it (one POST /graph/sub_graph), run the first workflow from its node, and watch both workflows complete on
the graph (live, from the log stream) and in the run's Gantt timeline."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.ui.conftest import Api, screenshot, sign_in

RUN_TIMEOUT = 180_000  # ms: the demo's four no_op actions, one second each, on a machine shared with others


def test_seed_demo_reaches_completed_for_both_workflows(page: Page, api: Api) -> None:
    sign_in(page)
    page.get_by_role("navigation", name="Entities").get_by_role("link", name="Datastores").click()
    expect(page.get_by_role("heading", name="Datastores")).to_be_visible()
    page.get_by_role("link", name="New datastore").click()
    page.get_by_label("Engine").select_option("no_op_engine")
    page.locator("#root_name").fill("demo_store")
    page.locator("#root_state").select_option("ACTIVE")
    page.locator("#root_args_action_sleep_time_in_seconds").fill("1")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name=re.compile(r"datastore \w+ demo_store"))).to_be_visible()
    store_id = page.url.rstrip("/").rsplit("/", 1)[1]
    assert api.get(f"/datastore/{store_id}")["data"]["args"] == {"action_sleep_time_in_seconds": 1}

    page.get_by_role("navigation", name="Entities").get_by_role("link", name="Datastores").click()
    expect(page.get_by_role("table", name="Datastores").get_by_role("link", name=store_id)).to_be_visible()

    page.get_by_role("table", name="Datastores").get_by_role("link", name=store_id).click()
    page.get_by_role("link", name="Graph").click()
    nodes = page.locator(".node-list li")
    expect(nodes.filter(has_text="demo_store")).to_have_count(1)
    page.get_by_role("button", name="Add").click()
    page.get_by_role("group", name="no_op_engine").get_by_role("menuitem", name="workflow chaining demo").click()
    expect(page.locator(".node-list li[data-state='UNSAVED']").first).to_be_visible()
    # a new entity's form before the save: the second workflow renamed
    page.locator(".node-list li[data-node^='workflow-']").filter(has_text="wf2").get_by_role("button").click()
    page.get_by_role("complementary", name="Selected").get_by_role("button", name="Edit").click()
    page.locator("#root_name").fill("demo-wf2-renamed")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".node-list li[data-node^='workflow-']").filter(has_text="demo-wf2-renamed")).to_have_count(1)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    expect(page.locator(".node-list li[data-state='UNSAVED']")).to_have_count(0)
    workflows = api.get(f"/workflow?filters=%5B%22datastore_id%20%3D%20{store_id}%22%5D")
    assert sorted(w["data"]["name"] for w in workflows) == ["demo-wf2-renamed", "no-op-workflow-chaining-wf1"]

    first = page.locator(".node-list li[data-node^='workflow-']").filter(has_text="wf1")
    first.get_by_role("button").click()
    page.get_by_role("complementary", name="Selected").get_by_role("button", name="Run").click()
    expect(page.get_by_role("status")).to_contain_text("Started")

    completed = page.locator(".node-list li[data-node^='workflow_instance-'][data-state='COMPLETED']")
    expect(completed).to_have_count(2, timeout=RUN_TIMEOUT)  # the second started by the first's completion
    for workflow in workflows:
        instances = api.get(f"/workflow/{workflow['id']}/instance")
        assert [i["data"]["state"] for i in instances] == ["COMPLETED"], (workflow["data"]["name"], instances)
    screenshot(page, "graph")

    completed.last.get_by_role("button").click()
    page.get_by_role("complementary", name="Selected").get_by_role("button", name="Open").click()
    expect(page.get_by_role("heading", name=re.compile(r"workflow_instance \w+"))).to_be_visible()
    instance_id = page.url.rstrip("/").rsplit("/", 1)[1]
    actions = api.get(f"/action?filters=%5B%22workflow_instance_id%20%3D%20{instance_id}%22%5D")
    assert actions and {a["data"]["state"] for a in actions} <= {"COMPLETED", "FAILED"}, actions
    timeline = page.get_by_role("region", name="Timeline")
    expect(timeline.locator(".gantt-row")).to_have_count(len(actions))
    for action in actions:  # one bar per action, coloured by its state; a FAILED one says why
        row = timeline.locator(f".gantt-row[data-action='{action['id']}']")
        expect(row).to_have_attribute("data-state", action["data"]["state"])
        expect(row.locator(".gantt-run")).to_be_visible()
        if action["data"]["state"] == "FAILED":
            expect(row.locator(".gantt-error")).to_contain_text(action["data"]["error_message"].splitlines()[0])
    screenshot(page, "gantt")

    page.get_by_role("navigation", name="Entities").get_by_role("link", name="Actions").click()
    listed = page.get_by_role("table", name="Actions").locator("tbody tr")
    every = api.get("/action?limit=100")  # the templates and both runs' actions
    expect(listed).to_have_count(min(20, len(every)))  # a page of the server's paging
    expect(page.get_by_role("navigation", name="Pages")).to_contain_text(f"of {len(every)}")
    screenshot(page, "entity-list")
