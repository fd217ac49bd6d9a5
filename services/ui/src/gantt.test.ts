import { describe, expect, it } from "vitest";
import { bars } from "./gantt";

const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();

describe("the Gantt timeline", () => {
  it("places queued, running and finished actions on one axis", () => {
    const now = Date.parse(t(100));
    const chart = bars([
      { id: "A", data: { name: "first", state: "COMPLETED", queued_time: t(0), start_time: t(10), end_time: t(50) } },
      { id: "B", data: { name: "second", state: "FAILED", queued_time: t(50), start_time: t(60), end_time: t(100), error_message: "boom" } },
    ], now);
    expect(chart.start).toBe(Date.parse(t(0)));
    expect(chart.end).toBe(Date.parse(t(100)));
    const [a, b] = chart.bars;
    expect([a.waitLeft, a.waitWidth, a.runLeft, a.runWidth]).toEqual([0, 10, 10, 40]);
    expect([b.waitLeft, b.runLeft, b.runWidth]).toEqual([50, 60, 40]);
    expect(b.error).toBe("boom");
    expect(a.error).toBeNull();
  });

  it("draws a RUNNING action up to now with its progress, and a queued one waiting", () => {
    const now = Date.parse(t(40));
    const chart = bars([
      { id: "A", data: { name: "running", state: "RUNNING", queued_time: t(0), start_time: t(20), progress: 30 } },
      { id: "B", data: { name: "queued", state: "QUEUED", queued_time: t(10) } },
    ], now);
    const [a, b] = chart.bars;
    expect(chart.end).toBe(now);
    expect([a.runLeft, a.runWidth, a.progress]).toEqual([50, 50, 30]);
    expect([b.waitLeft, b.waitWidth, b.runWidth]).toEqual([25, 75, 0]);
  });

  it("has an axis when nothing has started", () => {
    const chart = bars([{ id: "A", data: { state: "HAS_NEVER_RUN" } }], 1000);
    expect(chart.end - chart.start).toBe(1000);
    expect(chart.bars[0].runWidth).toBe(0);
  });

  it("shows each attempt of a retried action as its own bar, in order", () => {
    const chart = bars([
      { id: "R", data: { name: "load", state: "COMPLETED", order_idx: 1, attempt: 2, retry_of: "F", start_time: t(30), end_time: t(40) } },
      { id: "F", data: { name: "load", state: "FAILED", order_idx: 1, start_time: t(10), end_time: t(20), error_message: "first try" } },
      { id: "A", data: { name: "extract", state: "COMPLETED", order_idx: 0, start_time: t(0), end_time: t(10) } },
    ], Date.parse(t(40)));
    expect(chart.bars.map((b) => [b.id, b.label, b.state])).toEqual([
      ["A", "extract", "COMPLETED"], ["F", "load · attempt 1", "FAILED"], ["R", "load · attempt 2", "COMPLETED"],
    ]);
    expect(chart.bars[1].error).toBe("first try");
  });

  it("draws a retry's wait for its not_before from the failure it follows", () => {
    const chart = bars([
      { id: "F", data: { name: "load", state: "FAILED", order_idx: 0, retries: 2, queued_time: t(0), start_time: t(0), end_time: t(20) } },
      { id: "R", data: { name: "load", state: "QUEUED", order_idx: 0, attempt: 2, retry_of: "F", queued_time: t(20), not_before: t(50) } },
    ], Date.parse(t(40)));
    expect(chart.end).toBe(Date.parse(t(50)));  // the axis reaches the wait's end
    const [f, r] = chart.bars;
    expect(f.label).toBe("load · attempt 1");
    expect([f.holdWidth, f.notBefore]).toEqual([0, null]);
    expect([r.attempt, r.holdLeft, r.holdWidth, r.notBefore]).toEqual([2, 40, 60, t(50)]);
    expect(r.runWidth).toBe(0);
  });
});
