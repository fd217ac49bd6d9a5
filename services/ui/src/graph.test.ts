import { describe, expect, it } from "vitest";
import { addRecipe, isPlaceholder, type Recipe } from "./graph";

const recipe = (id: string): Recipe => ({
  name: "workflow",
  related_type: "datastore",
  related_is_a: "PARENT",
  graph: {
    nodes: [{ entity_type: "workflow", entity_id: `UNSAVED-${id}`, name: "workflow", state: "INACTIVE" }],
    edges: [{ source_type: "datastore", source_id: "PARENT-1", destination_type: "workflow", destination_id: `UNSAVED-${id}` }],
  },
  entity_map: { [`workflow-UNSAVED-${id}`]: { id: `UNSAVED-${id}`, data: { name: "wf", datastore_id: "PARENT-1" } } },
});

describe("adding a subgraph recipe", () => {
  const graph = { nodes: [{ entity_type: "datastore", entity_id: "DS1", name: "store", state: "ACTIVE" }], edges: [] };
  const empty = { unsaved_entities: {}, related_entity_data: {} };

  it("draws the new entities beside the selected one and names it for the save", () => {
    const { graph: drawn, pending } = addRecipe(graph, empty, recipe("W1"), { type: "datastore", id: "DS1" });
    expect(drawn.nodes.map((n) => n.entity_id)).toEqual(["DS1", "UNSAVED-W1"]);
    expect(drawn.edges).toEqual([{ source_type: "datastore", source_id: "DS1", destination_type: "workflow", destination_id: "UNSAVED-W1" }]);
    expect(Object.keys(pending.unsaved_entities)).toEqual(["workflow-UNSAVED-W1"]);
    expect(pending.unsaved_entities["workflow-UNSAVED-W1"].data.datastore_id).toBe("PARENT-1"); // the server resolves it
    expect(pending.related_entity_data).toEqual({ "datastore-PARENT-1": { entity_type: "datastore", entity_id: "DS1", relationship: "PARENT" } });
  });

  it("renames placeholder ids a second copy would reuse", () => {
    const once = addRecipe(graph, empty, recipe("W1"), { type: "datastore", id: "DS1" });
    const twice = addRecipe(once.graph, once.pending, recipe("W1"), { type: "datastore", id: "DS1" });
    expect(Object.keys(twice.pending.unsaved_entities)).toHaveLength(2);
    expect(twice.graph.nodes).toHaveLength(3);
    const ids = twice.graph.nodes.map((n) => n.entity_id);
    expect(new Set(ids).size).toBe(3);
  });

  it("knows placeholders", () => {
    expect(isPlaceholder("UNSAVED-x1")).toBe(true);
    expect(isPlaceholder("PARENT-1")).toBe(true);
    expect(isPlaceholder("ABCDEF1234")).toBe(false);
  });
});
