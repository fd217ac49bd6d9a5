import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { CancelRun } from "./pages/RunControl";
import { SessionContext, type Session } from "./session";
import type { Role } from "./api";

afterEach(() => { cleanup(); vi.unstubAllGlobals(); });

const session = (role: Role): Session => ({ key: "K:s", role, user: "ana", signOut: () => undefined });
const instance = (state: string) => ({ id: "I1", data: { state } });

function answer(status: number, body: unknown) {
  return vi.fn(async () => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } }));
}

describe("Cancel run", () => {
  it("is offered to an operator while the run is live, not to a viewer nor after it ended", () => {
    const { rerender } = render(<SessionContext.Provider value={session("operator")}><CancelRun instance={instance("RUNNING")} onDone={() => undefined} /></SessionContext.Provider>);
    expect(screen.getByRole("button", { name: "Cancel run" })).toBeTruthy();
    rerender(<SessionContext.Provider value={session("viewer")}><CancelRun instance={instance("RUNNING")} onDone={() => undefined} /></SessionContext.Provider>);
    expect(screen.queryByRole("button", { name: "Cancel run" })).toBeNull();
    rerender(<SessionContext.Provider value={session("admin")}><CancelRun instance={instance("COMPLETED")} onDone={() => undefined} /></SessionContext.Provider>);
    expect(screen.queryByRole("button", { name: "Cancel run" })).toBeNull();
  });

  it("sends the reason after the confirmation and shows who cancelled", async () => {
    const fetch = answer(200, { results: "OK", workflow_instance_id: "I1", state: "FAILED", error_message: "cancelled by ana: oops", cancelled_actions: ["A"] });
    vi.stubGlobal("fetch", fetch);
    const done = vi.fn();
    render(<SessionContext.Provider value={session("operator")}><CancelRun instance={instance("RUNNING")} onDone={done} /></SessionContext.Provider>);
    fireEvent.click(screen.getByRole("button", { name: "Cancel run" }));
    expect(fetch).not.toHaveBeenCalled();  // not before it is confirmed
    fireEvent.change(screen.getByLabelText("Reason (optional)"), { target: { value: " oops " } });
    fireEvent.click(screen.getByRole("button", { name: "Yes, cancel the run" }));
    await waitFor(() => expect(screen.getByRole("status").textContent).toBe("Cancelled by ana: oops: FAILED, 1 action stopped."));
    const [url, init] = fetch.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("/api/1/workflow/instance/I1/cancel");
    expect([init.method, init.body]).toEqual(["POST", JSON.stringify({ reason: "oops" })]);
    expect(done).toHaveBeenCalled();
  });

  it("shows the server's refusal when the run ended meanwhile", async () => {
    vi.stubGlobal("fetch", answer(400, { error_message: "workflow instance I1 is COMPLETED: only a QUEUED or RUNNING one can be cancelled" }));
    render(<SessionContext.Provider value={session("admin")}><CancelRun instance={instance("RUNNING")} onDone={() => undefined} /></SessionContext.Provider>);
    fireEvent.click(screen.getByRole("button", { name: "Cancel run" }));
    fireEvent.click(screen.getByRole("button", { name: "Yes, cancel the run" }));
    await waitFor(() => expect(screen.getByRole("alert").textContent).toContain("is COMPLETED"));
  });
});
