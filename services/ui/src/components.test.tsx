import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { SignIn } from "./App";
import EntityForm from "./pages/EntityForm";
import { ApiError, may } from "./api";

afterEach(cleanup);

describe("sign in", () => {
  it("has a field labelled API key and hands over what was typed", () => {
    const signedIn = vi.fn();
    render(<SignIn onSignedIn={signedIn} />);
    fireEvent.change(screen.getByLabelText("API key"), { target: { value: " KEY:secret " } });
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect(signedIn).toHaveBeenCalledWith("KEY:secret");
  });

  it("shows why a key was refused", () => {
    render(<SignIn onSignedIn={() => undefined} error="That key or secret is not valid." />);
    expect(screen.getByRole("alert").textContent).toContain("not valid");
  });
});

describe("roles", () => {
  it("orders them", () => {
    expect(may("admin", "editor")).toBe(true);
    expect(may("operator", "editor")).toBe(false);
    expect(may(null, "viewer")).toBe(false);
  });
});

describe("the generated form", () => {
  const schema = {
    type: "object",
    properties: {
      data: {
        type: "object",
        required: ["name"],
        properties: {
          name: { type: "string", pattern: "^[a-z_]+$" },
          state: { type: "string", enum: ["ACTIVE", "INACTIVE", "TEMPLATE"] },
          args: { type: "object", required: [], properties: { password: { type: "string", "x-dart-secret": true } } },
        },
      },
    },
  };

  it("never shows a secret back and puts the server's refusal on its field", async () => {
    const submit = vi.fn().mockRejectedValue(new ApiError(400, "state: cannot be TEMPLATE"));
    const { container } = render(
      <EntityForm schema={schema} data={{ name: "store", state: "INACTIVE", args: { password: "hunter2" } }} creating={false} submitLabel="Save" onSubmit={submit} />,
    );
    const password = container.querySelector("#root_args_password") as HTMLInputElement;
    expect(password.type).toBe("password");
    expect(password.value).toBe("");
    fireEvent.change(container.querySelector("#root_state")!, { target: { value: "2" } });
    fireEvent.click(screen.getByRole("button", { name: "Save" }));
    await waitFor(() => expect(container.querySelector("#root_state__error")?.textContent).toContain("cannot be TEMPLATE"));
    expect(submit).toHaveBeenCalledTimes(1);
    expect(submit.mock.calls[0][0]).toMatchObject({ name: "store", state: "TEMPLATE" });
  });

  it("checks the schema (Draft 4) before sending", async () => {
    const submit = vi.fn();
    const { container } = render(<EntityForm schema={schema} data={{ name: "Not Valid" }} creating submitLabel="Save" onSubmit={submit} />);
    fireEvent.click(screen.getByRole("button", { name: "Save" }));
    await waitFor(() => expect(container.querySelector("#root_name__error")?.textContent).toMatch(/pattern/));
    expect(submit).not.toHaveBeenCalled();
  });
});
