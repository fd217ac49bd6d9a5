"""Run control in a real browser (issue 15, issue 17 item 3): an action's engine output followed live in its
page's log panel until the engine's exit line, cancelling a running run from its page, pausing, unpausing and
backfilling (a dry run) a scheduled trigger from its page, and the workflow version a run ran."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import Page, expect

from tests.ui.conftest import Api, screenshot, sign_in


def flow(api: Api, name: str, sleep: int, steps: int = 1, **action: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An ACTIVE no_op datastore whose actions sleep ``sleep`` s, and an ACTIVE workflow of ``steps`` actions."""
    store = api.post("/datastore", {"data": {"name": f"{name}_store", "engine_name": "no_op_engine", "state": "ACTIVE",
                                             "args": {"action_sleep_time_in_seconds": sleep}}})
    workflow = api.post(f"/datastore/{store['id']}/workflow", {"data": {"name": name, "state": "ACTIVE"}})
    templates = api.post(f"/workflow/{workflow['id']}/action", [
        {"data": {"name": f"{name}_{i}", "action_type_name": "fake_action_that_succeeds", **action}}
        for i in range(steps)])
    return workflow, templates


def start(api: Api, workflow: dict[str, Any]) -> dict[str, Any]:
    """Run the workflow now; its instance, once listed."""
    api.post(f"/workflow/{workflow['id']}/do-manual-trigger", {})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        instances = api.get(f"/workflow/{workflow['id']}/instance")
        if instances:
            return instances[0]
        time.sleep(0.2)
    raise AssertionError("no instance was started")


def test_an_actions_log_panel_follows_its_output_until_the_engines_exit(page: Page, api: Api) -> None:
    workflow, _ = flow(api, "logged", sleep=6, timeout_seconds=120, retries=1)
    instance = start(api, workflow)
    sign_in(page, f"/workflow_instance/{instance['id']}")
    timeline = page.get_by_role("region", name="Timeline")
    row = timeline.locator(".gantt-row").first
    expect(row).to_contain_text("attempt 1")  # it may be retried: the bar names its attempt
    row.get_by_role("link", name=re.compile("^logs of")).click()
    expect(page.get_by_role("heading", name=re.compile(r"^action \w+"))).to_be_visible()
    assert page.url.endswith("#logs")
    settings = page.get_by_label("Run settings")
    expect(settings).to_contain_text("Timeout: 120 s")
    expect(settings).to_contain_text("Retries: 1")
    expect(settings).to_contain_text("Attempt: 1 of 2")
    output = page.get_by_label("Engine output")
    status = page.get_by_label("Log status")
    # while it runs (it sleeps 6 s): what the engine wrote so far, read again every second
    expect(output).to_contain_text("checked out action", timeout=30_000)
    expect(status).to_contain_text("Following")
    expect(output).not_to_contain_text("the engine exited")
    page.evaluate("window.scrollTo(0, 0)")  # the page from its heading (the link scrolled to the panel)
    screenshot(page, "action-logs")
    # then its check-in and the launcher's exit line, and the panel stops asking
    expect(output).to_contain_text("--- dart: the engine exited with code 0", timeout=30_000)
    expect(output).to_contain_text("checked in action")
    expect(status).to_contain_text("Finished")
    expect(status).to_contain_text("COMPLETED")
    # the generated form has the run settings (they are action schema fields)
    page.get_by_role("button", name="Edit").click()
    expect(page.locator("#root_timeout_seconds")).to_have_value("120")
    expect(page.locator("#root_retries")).to_have_value("1")
    page.get_by_role("button", name="Cancel").click()


def test_cancel_a_running_run_from_its_page_and_its_version_shown(page: Page, api: Api) -> None:
    workflow, _ = flow(api, "cancelled", sleep=60, steps=2)
    api.call("PATCH", f"/workflow/{workflow['id']}", [{"op": "replace", "path": "/data/name", "value": "cancelled_v2"}])
    instance = start(api, workflow)
    sign_in(page, f"/workflow_instance/{instance['id']}")
    expect(page.get_by_label("Run", exact=True)).to_contain_text("Definition: version 2")
    timeline = page.get_by_role("region", name="Timeline")
    expect(timeline.locator(".gantt-row[data-state='RUNNING']")).to_have_count(1, timeout=30_000)
    page.get_by_role("button", name="Cancel run").click()
    page.get_by_label("Reason (optional)").fill("wrong input")
    page.get_by_role("button", name="Yes, cancel the run").click()
    expect(page.get_by_role("status")).to_contain_text("Cancelled by admin: wrong input: FAILED")
    expect(page.get_by_role("heading", name=re.compile(r"workflow_instance \w+ FAILED"))).to_be_visible()
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    expect(page.get_by_label("Run", exact=True)).to_contain_text("Cancelled by admin")
    expect(timeline.locator(".gantt-row[data-state='FAILED']")).to_have_count(1)
    expect(timeline.locator(".gantt-row[data-state='FAILED'] .gantt-error")).to_contain_text("cancelled by admin: wrong input")
    actions = api.get(f"/action?filters=%5B%22workflow_instance_id%20%3D%20{instance['id']}%22%5D")
    assert sorted(a["data"]["state"] for a in actions) == ["FAILED", "SKIPPED"], actions
    failed = next(a for a in actions if a["data"]["state"] == "FAILED")
    assert failed["data"]["error_message"] == "cancelled by admin: wrong input"
    # the instances list shows which version ran and who cancelled it
    page.get_by_role("navigation", name="Entities").get_by_role("link", name="Workflow instances").click()
    listed = page.get_by_role("table", name="Workflow instances").locator("tr", has=page.get_by_role("link", name=instance["id"]))
    expect(listed).to_contain_text("admin")
    headers = page.get_by_role("table", name="Workflow instances").locator("thead th").all_inner_texts()
    cells = listed.locator("td").all_inner_texts()
    assert cells[headers.index("workflow_version")] == "2"
    assert cells[headers.index("cancelled_by")] == "admin"


def test_pause_unpause_and_a_backfill_dry_run_from_a_triggers_page(page: Page, api: Api) -> None:
    workflow, _ = flow(api, "scheduled", sleep=1)
    trigger = api.post("/trigger", {"data": {"name": "hourly", "trigger_type_name": "scheduled", "state": "ACTIVE",
                                             "workflow_ids": [workflow["id"]], "args": {"cron_pattern": "0 * * * *"}}})
    sign_in(page, f"/trigger/{trigger['id']}")
    schedule = page.get_by_role("region", name="Schedule")
    expect(schedule).to_contain_text("Not paused")
    schedule.get_by_label("Reason").fill("upstream maintenance")
    schedule.get_by_role("button", name="Pause").click()
    expect(schedule.get_by_role("status")).to_have_text("Paused.")
    expect(schedule).to_contain_text("PAUSED upstream maintenance")
    stored = api.get(f"/trigger/{trigger['id']}")["data"]
    assert (stored["paused"], stored["pause_note"]) == (True, "upstream maintenance")
    schedule.get_by_label("Reason").fill("maintenance done")
    schedule.get_by_role("button", name="Unpause").click()
    expect(schedule.get_by_role("status")).to_have_text("Unpaused.")
    expect(schedule).to_contain_text("Not paused")
    assert api.get(f"/trigger/{trigger['id']}")["data"]["paused"] is False

    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first, last = hour - timedelta(hours=5), hour - timedelta(hours=3)
    schedule.get_by_label("Start").fill(first.strftime("%Y-%m-%d %H:%M"))
    schedule.get_by_label("End").fill(last.strftime("%Y-%m-%dT%H:%M:%SZ"))
    expect(schedule.get_by_label("Dry run")).to_be_checked()
    schedule.get_by_role("button", name="List the times").click()
    result = schedule.get_by_label("Backfill result")
    expect(result.get_by_role("status")).to_have_text("Dry run: it would fire 3 scheduled times.")
    expect(result.locator("ol.times li")).to_have_text(
        [(first + timedelta(hours=i)).strftime("%Y-%m-%d %H:%M:%SZ") for i in range(3)])
    screenshot(page, "schedule")
    # a dry run starts nothing (an hour's own fire may, if the test runs across one)
    scheduled = [datetime.fromisoformat(i["data"]["scheduled_time"]) for i in api.get(f"/workflow/{workflow['id']}/instance")
                 if i["data"].get("scheduled_time")]
    assert [t for t in scheduled if t <= last] == []

    # a real backfill of one time: fired, and its run is listed with the time it was for
    schedule.get_by_label("Start").fill(first.strftime("%Y-%m-%dT%H:%M:%SZ"))
    schedule.get_by_label("End").fill(first.strftime("%Y-%m-%dT%H:%M:%SZ"))
    schedule.get_by_label("Dry run").uncheck()
    schedule.get_by_role("button", name="Backfill", exact=True).click()
    expect(result.get_by_role("status")).to_have_text("Fired 1 scheduled time.")
    result.get_by_role("link", name="the runs of this trigger").click()
    runs = page.get_by_role("table", name="Workflow instances").locator("tbody tr")
    expect(runs).to_have_count(1)
    expect(runs).to_contain_text(first.strftime("%Y-%m-%d %H:%M:%SZ"))


def test_a_viewer_sees_a_schedule_and_a_runs_version_but_no_controls(page: Page, api: Api) -> None:
    workflow, _ = flow(api, "viewed_schedule", sleep=30)
    trigger = api.post("/trigger", {"data": {"name": "nightly", "trigger_type_name": "scheduled", "state": "ACTIVE",
                                             "workflow_ids": [workflow["id"]], "args": {"cron_pattern": "0 3 * * *"}}})
    api.post(f"/trigger/{trigger['id']}/pause", {"reason": "holiday"})
    instance = start(api, workflow)
    created = api.post("/api_key", {"data": {"user_id": "run_viewer", "role": "viewer"}})
    sign_in(page, f"/trigger/{trigger['id']}", key=f"{created['key']}:{created['secret']}")
    schedule = page.get_by_role("region", name="Schedule")
    expect(schedule).to_contain_text("PAUSED holiday")
    expect(schedule.get_by_role("button")).to_have_count(0)  # neither pause nor backfill
    page.goto(f"/workflow_instance/{instance['id']}")
    expect(page.get_by_label("Run", exact=True)).to_contain_text("Definition: version 1")
    expect(page.get_by_role("heading", name=re.compile(r"workflow_instance \w+ (QUEUED|RUNNING)"))).to_be_visible()
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    api.post(f"/workflow/instance/{instance['id']}/cancel", {})  # not left running for the next test
