// The graph page's data: the API's Graph {nodes, edges}, the subgraph recipes, and the pending entity map
// (placeholder ids) that POST /graph/sub_graph saves at once.
export type GraphNode = { entity_type: string; entity_id: string; name: string; state?: string | null; sub_type?: string | null };
export type GraphEdge = { source_type: string; source_id: string; destination_type: string; destination_id: string };
export type Graph = { nodes: GraphNode[]; edges: GraphEdge[] };
export type Related = { entity_type: string; entity_id: string; relationship: string; edge?: unknown };
export type EntityMap = { unsaved_entities: Record<string, { id?: string; data: Record<string, unknown> }>; related_entity_data: Record<string, Related> };
export type Recipe = {
  name: string;
  description?: string;
  related_type?: string | null;
  related_is_a?: string | null;
  graph: Graph;
  // the served recipe's unsaved entities by node id (the original's shape), or an entity map
  entity_map: EntityMap["unsaved_entities"] | Partial<EntityMap>;
  icon?: string | null;
  md_icon?: string | null;
};

/** A recipe's new entities and the related entries it brings, whichever shape it was served in. */
export function recipeEntities(recipe: Recipe): { entities: EntityMap["unsaved_entities"]; related: Record<string, Related> } {
  const map = recipe.entity_map as Record<string, unknown>;
  if (map && typeof map.unsaved_entities === "object" && map.unsaved_entities !== null) {
    return { entities: map.unsaved_entities as EntityMap["unsaved_entities"], related: (map.related_entity_data ?? {}) as Record<string, Related> };
  }
  return { entities: (map ?? {}) as EntityMap["unsaved_entities"], related: {} };
}

export const nodeKey = (type: string, id: string) => `${type}-${id}`;

export function isPlaceholder(id: string): boolean {
  return id.includes("UNSAVED-") || id.includes("PARENT-") || id.includes("CHILD-");
}

/** Merge a recipe into the graph shown and the pending entity map: its PARENT/CHILD placeholder resolved to
 * the entity the graph is about (for the drawing; the map keeps the placeholder and names the entity in
 * related_entity_data), its UNSAVED ids renamed when an earlier recipe used them. */
export function addRecipe(graph: Graph, pending: EntityMap, recipe: Recipe, related: { type: string; id: string }): { graph: Graph; pending: EntityMap } {
  const parts = recipeEntities(recipe);
  let text = JSON.stringify({ graph: recipe.graph, entities: parts.entities });
  const used = new Set(Object.keys(pending.unsaved_entities).map((k) => k.slice(k.indexOf("-") + 1)));
  const ids = new Set<string>(text.match(/UNSAVED-[A-Za-z0-9_]+/g) ?? []);
  let n = 1;
  for (const id of ids) {
    if (!used.has(id)) continue;
    let fresh = `${id}0${n}`;
    while (used.has(fresh) || ids.has(fresh)) fresh = `${id}0${++n}`;
    text = text.split(`"${id}"`).join(`"${fresh}"`).split(`-${id}"`).join(`-${fresh}"`);
  }
  const renamed = JSON.parse(text) as { graph: Graph; entities: EntityMap["unsaved_entities"] };
  const relatedEntries: Record<string, Related> = { ...pending.related_entity_data, ...parts.related };
  const relationship = recipe.related_is_a ?? "PARENT";
  const placeholderKey = nodeKey(related.type, `${relationship}-1`);
  if (!relatedEntries[placeholderKey]) {
    relatedEntries[placeholderKey] = { entity_type: related.type, entity_id: related.id, relationship };
  }
  const resolve = (type: string, id: string) => (id.startsWith("PARENT-") || id.startsWith("CHILD-")) ? (relatedEntries[nodeKey(type, id)]?.entity_id ?? related.id) : id;
  const known = new Set(graph.nodes.map((x) => nodeKey(x.entity_type, x.entity_id)));
  const nodes = [...graph.nodes];
  for (const node of renamed.graph.nodes) {
    const id = resolve(node.entity_type, node.entity_id);
    if (!known.has(nodeKey(node.entity_type, id))) {
      nodes.push({ ...node, entity_id: id, state: node.state ?? "UNSAVED" });
      known.add(nodeKey(node.entity_type, id));
    }
  }
  const edges = [...graph.edges, ...renamed.graph.edges.map((e) => ({
    ...e, source_id: resolve(e.source_type, e.source_id), destination_id: resolve(e.destination_type, e.destination_id),
  }))];
  return {
    graph: { nodes, edges },
    pending: { unsaved_entities: { ...pending.unsaved_entities, ...renamed.entities }, related_entity_data: relatedEntries },
  };
}
