import { describe, expect, it } from "vitest";
import type { LogEvent } from "./api";
import { matches, parseSse } from "./live";

describe("the log stream", () => {
  it("parses Server-Sent Events across chunks, skipping comments", () => {
    const first = parseSse("retry: 2000\n: dart log stream\n\nid: 7\nevent: A\ndata: {\"x\":1}\n\nid: 8\nda");
    expect(first.events).toEqual([{ id: "7", data: "{\"x\":1}" }]);
    const second = parseSse(first.rest + "ta: {\"x\":2}\n\n: keep-alive\n\n");
    expect(second.events).toEqual([{ id: "8", data: "{\"x\":2}" }]);
    expect(second.rest).toBe("");
  });

  it("filters by type, stream and stream prefix", () => {
    const event = { type: "WorkflowCreated", stream_id: "workflow-ABC" } as LogEvent;
    expect(matches({}, event)).toBe(true);
    expect(matches({ types: ["WorkflowCreated"] }, event)).toBe(true);
    expect(matches({ types: ["ActionCreated"] }, event)).toBe(false);
    expect(matches({ streams: ["workflow-ABC"] }, event)).toBe(true);
    expect(matches({ prefix: "workflow-" }, event)).toBe(true);
    expect(matches({ prefix: "workflow_instance-" }, event)).toBe(false);
  });
});
