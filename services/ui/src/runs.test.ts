import { describe, expect, it } from "vitest";
import { appendChunk, backfillSummary, canCancel, cancelSummary, definitionOf, EMPTY_LOG, isoTime, nextRead, type LogChunk } from "./runs";

const chunk = (offset: number, text: string, finished = false, state = "RUNNING"): LogChunk => ({
  action_id: "A", text, offset, next_offset: offset + new TextEncoder().encode(text).length, source: text ? "local" : null, state, finished,
});

describe("an action's log, read in chunks", () => {
  it("appends each chunk from the offset the last one ended at", () => {
    let view = appendChunk(EMPTY_LOG, chunk(0, "one\n"));
    view = appendChunk(view, chunk(4, "twé\n"));
    expect(view.text).toBe("one\ntwé\n");
    expect(view.offset).toBe(9);  // bytes, not characters
    expect([view.source, view.state, view.finished]).toEqual(["local", "RUNNING", false]);
    expect(appendChunk(view, chunk(0, "one\n"))).toBe(view);  // a late answer for an old offset
    const ended = appendChunk(view, chunk(9, "", true, "COMPLETED"));
    expect([ended.text, ended.source, ended.finished]).toEqual(["one\ntwé\n", "local", true]);
  });

  it("keeps the newest characters only", () => {
    expect(appendChunk(appendChunk(EMPTY_LOG, chunk(0, "abcdef"), 4), chunk(6, "gh"), 4).text).toBe("efgh");
  });

  it("asks again later while running, at once while a finished action has more, never after", () => {
    expect(nextRead(chunk(0, "x"))).toBe("later");
    expect(nextRead(chunk(0, ""))).toBe("later");
    expect(nextRead(chunk(0, "x", true))).toBe("now");
    expect(nextRead(chunk(5, "", true))).toBe("done");
    expect(nextRead({ ...chunk(0, "x"), next_offset: 1024 * 1024 })).toBe("now");
  });
});

describe("run control", () => {
  it("offers cancel to operators and up while the run is QUEUED or RUNNING", () => {
    expect(canCancel("RUNNING", "operator")).toBe(true);
    expect(canCancel("QUEUED", "admin")).toBe(true);
    expect(canCancel("RUNNING", "viewer")).toBe(false);
    expect(canCancel("COMPLETED", "admin")).toBe(false);
    expect(canCancel(undefined, "admin")).toBe(false);
  });

  it("says who cancelled and what stopped", () => {
    expect(cancelSummary({ results: "OK", workflow_instance_id: "I", state: "FAILED", error_message: "cancelled by ana: wrong input", cancelled_actions: ["a", "b"] }))
      .toBe("Cancelled by ana: wrong input: FAILED, 2 actions stopped.");
    expect(cancelSummary({ results: "OK", workflow_instance_id: "I", state: "FAILED", error_message: "cancelled by bo", already_cancelled: true }))
      .toBe("Cancelled by bo (it already was).");
  });

  it("reads typed times as the API's ISO 8601 with an offset", () => {
    expect(isoTime("2026-12-01")).toBe("2026-12-01T00:00:00Z");
    expect(isoTime(" 2026-12-01 10:30 ")).toBe("2026-12-01T10:30:00Z");
    expect(isoTime("2026-12-01T10:30:05+02:00")).toBe("2026-12-01T10:30:05+02:00");
    expect(isoTime("2026-12-01T10:30:05.250Z")).toBe("2026-12-01T10:30:05.250Z");
    expect(isoTime("yesterday")).toBeNull();
    expect(isoTime("2026-13-01")).toBeNull();
    expect(isoTime("")).toBeNull();
  });

  it("sums a backfill's answer", () => {
    expect(backfillSummary({ dry_run: true, scheduled_times: ["a", "b"], already_fired: [] })).toBe("Dry run: it would fire 2 scheduled times.");
    expect(backfillSummary({ dry_run: false, scheduled_times: ["a"], already_fired: ["b", "c"] })).toBe("Fired 1 scheduled time; 2 fired before, not again.");
  });

  it("names a run's definition", () => {
    expect(definitionOf({ workflow_version: 3, definition_commit: "0123456789abcdef" })).toBe("version 3 at commit 0123456789ab");
    expect(definitionOf({ workflow_version: 2, definition_commit: null })).toBe("version 2");
    expect(definitionOf({ definition_commit: "abc" })).toBe("commit abc");
    expect(definitionOf({})).toBeNull();
  });
});
