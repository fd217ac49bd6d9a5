import { describe, expect, it } from "vitest";
import { changedPaths, dataSchema, flatten, secretPaths, serverErrors, uiSchemaFor, withoutSecrets } from "./forms";

const entitySchema = {
  type: "object",
  properties: {
    id: { type: ["string", "null"], readonly: true },
    data: {
      type: "object",
      required: ["name", "args"],
      properties: {
        name: { type: "string" },
        state: { type: "string", enum: ["ACTIVE", "INACTIVE"] },
        user_id: { type: "string", readonly: true },
        args: {
          type: "object",
          required: [],
          properties: { password: { type: "string", "x-dart-secret": true }, port: { type: "integer" } },
        },
        tags: { type: "array", items: { type: "string" } },
      },
    },
  },
};

describe("forms from the API's schemas", () => {
  it("takes the data part and spells readonly as readOnly", () => {
    const schema = dataSchema(entitySchema);
    expect(Object.keys(schema.properties ?? {})).toEqual(["name", "state", "user_id", "args", "tags"]);
    expect((schema.properties?.user_id as Record<string, unknown>).readOnly).toBe(true);
    expect("readonly" in (schema.properties?.user_id as Record<string, unknown>)).toBe(false);
  });

  it("shows secrets as password fields and never fills them from the server", () => {
    const schema = dataSchema(entitySchema) as Record<string, unknown>;
    expect(secretPaths(schema)).toEqual(["args.password"]);
    const ui = uiSchemaFor(schema, false);
    expect(ui.args.password["ui:widget"]).toBe("password");
    expect(ui.user_id["ui:readonly"]).toBe(true);
    expect(uiSchemaFor(schema, true).user_id["ui:widget"]).toBe("hidden");
    const data = { name: "x", args: { password: "hunter2", port: 5 } };
    expect(withoutSecrets(data, ["args.password"])).toEqual({ name: "x", args: { port: 5 } });
    expect(data.args.password).toBe("hunter2"); // a copy
  });

  it("puts a server refusal on the field it names", () => {
    const schema = dataSchema(entitySchema) as Record<string, unknown>;
    const nested = serverErrors("data.args.port: 70000 is greater than the maximum of 65535", schema);
    expect(nested.field).toBe("args.port");
    expect(nested.errors).toEqual({ args: { port: { __errors: ["70000 is greater than the maximum of 65535"] } } });
    const top = serverErrors("state: a datastore can be set to ACTIVE, INACTIVE or DONE, not TEMPLATE", schema);
    expect(top.errors).toEqual({ state: { __errors: ["a datastore can be set to ACTIVE, INACTIVE or DONE, not TEMPLATE"] } });
    const item = serverErrors("data.tags[1]: 'a b' does not match", schema);
    expect(item.field).toBe("tags.1");
  });

  it("puts a refusal naming no field on the whole form", () => {
    const schema = dataSchema(entitySchema) as Record<string, unknown>;
    expect(serverErrors("workflow 'X' not found", schema)).toEqual({ errors: { __errors: ["workflow 'X' not found"] }, field: null });
    expect(serverErrors("nope.field: unknown", schema).field).toBeNull();
  });

  it("finds what changed between two versions", () => {
    expect([...flatten({ a: { b: 1, c: [1, 2] }, d: null })]).toEqual([["a.b", "1"], ["a.c", "[1,2]"], ["d", "null"]]);
    const changed = changedPaths({ name: "a", state: "INACTIVE", args: { x: 1 } }, { name: "a", state: "ACTIVE", args: { y: 1 } });
    expect([...changed].sort()).toEqual(["args.x", "args.y", "state"]);
  });
});
