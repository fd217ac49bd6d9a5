import { useCallback, useEffect, useMemo, useState } from "react";
import { Link, useNavigate, useParams } from "react-router-dom";
import { Background, Controls, Position, ReactFlow, type Edge, type Node } from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import ELK from "elkjs/lib/elk.bundled.js";
import { call, may, results } from "../api";
import { stateColour } from "../entities";
import { addRecipe, isPlaceholder, recipeEntities, nodeKey, type EntityMap, type Graph, type GraphNode, type Recipe } from "../graph";
import { useSession } from "../session";
import { useLiveReload } from "../useLive";
import EntityForm from "./EntityForm";
import EntitySearch from "./EntitySearch";
import { ErrorBox } from "./common";

const elk = new ELK();
const WIDTH = 190;
const HEIGHT = 54;
const SHAPES: Record<string, string> = { workflow: "◆", datastore: "▣", action: "●", trigger: "▲", dataset: "■", subscription: "≡", event: "✦", workflow_instance: "◇" };

async function layout(graph: Graph): Promise<Record<string, { x: number; y: number }>> {
  const ids = new Set(graph.nodes.map((n) => nodeKey(n.entity_type, n.entity_id)));
  const laid = await elk.layout({
    id: "root",
    layoutOptions: { "elk.algorithm": "layered", "elk.direction": "RIGHT", "elk.spacing.nodeNode": "30", "elk.layered.spacing.nodeNodeBetweenLayers": "60" },
    children: [...ids].map((id) => ({ id, width: WIDTH, height: HEIGHT })),
    edges: graph.edges
      .map((e, i) => ({ id: `e${i}`, sources: [nodeKey(e.source_type, e.source_id)], targets: [nodeKey(e.destination_type, e.destination_id)] }))
      .filter((e) => ids.has(e.sources[0]) && ids.has(e.targets[0])),
  });
  const at: Record<string, { x: number; y: number }> = {};
  for (const c of laid.children ?? []) at[c.id] = { x: c.x ?? 0, y: c.y ?? 0 };
  return at;
}

async function schemaFor(type: string, data: Record<string, unknown>): Promise<Record<string, unknown>> {
  if (type === "datastore") return results(`/schema/engine/${data.engine_name}/datastore`);
  if (type === "action") return results(`/schema/action/${data.action_type_name}`, { query: { engine_name: String(data.engine_name ?? "") } });
  if (type === "trigger") return results("/schema/trigger", { query: { trigger_type_name: String(data.trigger_type_name ?? "") } });
  return results(`/schema/${type}`);
}

export default function GraphPage() {
  const { kind = "", id = "" } = useParams();
  const session = useSession();
  const navigate = useNavigate();
  const [graph, setGraph] = useState<Graph | null>(null);
  const [pending, setPending] = useState<EntityMap>({ unsaved_entities: {}, related_entity_data: {} });
  const [positions, setPositions] = useState<Record<string, { x: number; y: number }>>({});
  const [recipes, setRecipes] = useState<Record<string, Recipe[]> | null>(null);
  const [menu, setMenu] = useState(false);
  const [selected, setSelected] = useState<GraphNode | null>(null);
  const [editing, setEditing] = useState<{ key: string; schema: Record<string, unknown> } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState("");
  const dirty = Object.keys(pending.unsaved_entities).length > 0;

  const load = useCallback(async () => {
    try {
      setGraph(await results<Graph>(`/graph/${kind}/${id}`));
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [kind, id]);
  useEffect(() => { void load(); }, [load]);
  useLiveReload(dirty ? null : { prefix: "" }, load);

  // laid out again when the set of nodes or edges changes (not for a change of state), and the view fitted to it
  const shape = useMemo(() => graph ? JSON.stringify([graph.nodes.map((n) => nodeKey(n.entity_type, n.entity_id)), graph.edges]) : "", [graph]);
  const [laidOut, setLaidOut] = useState("");
  useEffect(() => {
    if (!shape || !graph) return;
    let current = true;
    layout(graph).then((at) => { if (current) { setPositions(at); setLaidOut(shape); } }, setError);
    return () => { current = false; };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape]);

  const openMenu = async () => {
    setMenu(!menu);
    if (!menu) {  // fetched each time: every answer has fresh placeholder ids
      try {
        setRecipes(await results<Record<string, Recipe[]>>("/graph/sub_graph", { query: { related_type: kind, related_id: id } }));
      } catch (e) {
        setError(e);
      }
    }
  };
  const add = (recipe: Recipe) => {
    if (!graph) return;
    const merged = addRecipe(graph, pending, recipe, { type: kind, id });
    setGraph(merged.graph);
    setPending(merged.pending);
    setMenu(false);
    setNotice(`Added “${recipe.name}”: ${Object.keys(recipeEntities(recipe).entities).length} new entities, not saved yet.`);
  };
  const save = async () => {
    try {
      const saved = await results<Record<string, unknown>>("/graph/sub_graph", { method: "POST", body: pending });
      setPending({ unsaved_entities: {}, related_entity_data: {} });
      setNotice(`Saved ${Object.keys(saved).length} entities.`);
      setSelected(null);
      await load();
    } catch (e) {
      setError(e);
    }
  };
  const discard = () => {
    setPending({ unsaved_entities: {}, related_entity_data: {} });
    setNotice("");
    void load();
  };
  const run = async (workflowId: string) => {
    try {
      await call(`/workflow/${workflowId}/do-manual-trigger`, { method: "POST", body: {} });
      setNotice("Started: a new instance is queued.");
    } catch (e) {
      setError(e);
    }
  };
  const editPending = async (node: GraphNode) => {
    const key = nodeKey(node.entity_type, node.entity_id);
    const entity = pending.unsaved_entities[key];
    if (!entity) return;
    try {
      setEditing({ key, schema: await schemaFor(node.entity_type, entity.data) });
    } catch (e) {
      setError(e);
    }
  };

  const nodes: Node[] = useMemo(() => (graph?.nodes ?? []).map((n) => {
    const key = nodeKey(n.entity_type, n.entity_id);
    const unsaved = isPlaceholder(n.entity_id);
    const state = unsaved ? "UNSAVED" : (n.state ?? "");
    const name = unsaved ? String(pending.unsaved_entities[key]?.data.name ?? n.name) : n.name;
    return {
      id: key,
      position: positions[key] ?? { x: 0, y: 0 },
      data: { label: `${SHAPES[n.entity_type] ?? ""} ${n.entity_type}: ${name}${state ? ` (${state})` : ""}` },
      ariaLabel: `${n.entity_type} ${name} ${state}`,
      sourcePosition: Position.Right,
      targetPosition: Position.Left,
      className: `node node-${n.entity_type}`,
      style: { background: stateColour(state), color: "white", width: WIDTH, fontSize: 12, border: key === nodeKey(kind, id) ? "3px solid #000" : undefined },
    };
  }), [graph, positions, pending, kind, id]);
  const edges: Edge[] = useMemo(() => (graph?.edges ?? []).map((e, i) => ({
    id: `e${i}`,
    source: nodeKey(e.source_type, e.source_id),
    target: nodeKey(e.destination_type, e.destination_id),
  })), [graph]);

  const editor = may(session.role, "editor");
  const selectedKey = selected ? nodeKey(selected.entity_type, selected.entity_id) : "";
  return (
    <section className="graph-page">
      <div className="heading">
        <h1>Graph of {kind} <Link to={`/${kind}/${id}`} className="mono">{id}</Link></h1>
        <div className="actions" role="toolbar" aria-label="Graph">
          {editor && <button type="button" aria-haspopup="menu" aria-expanded={menu} onClick={() => void openMenu()}>Add</button>}
          {editor && <button type="button" disabled={!dirty} onClick={() => void save()}>Save</button>}
          {editor && dirty && <button type="button" onClick={discard}>Discard</button>}
        </div>
      </div>
      <EntitySearch />
      {menu && (
        <div className="menu" role="menu" aria-label="Recipes">
          {!recipes && <p>Loading recipes…</p>}
          {recipes && Object.entries(recipes).map(([engine, list]) => (
            <div key={engine} className="menu-group" role="group" aria-label={engine === "null" ? "general" : engine}>
              <strong>{engine === "null" ? "general" : engine}</strong>
              {list.map((r) => (
                <button key={r.name} type="button" role="menuitem" title={r.description ?? ""} onClick={() => add(r)}>{r.name}</button>
              ))}
            </div>
          ))}
        </div>
      )}
      {notice && <p role="status" className="notice">{notice}</p>}
      <ErrorBox error={error} />
      <div className="graph-layout">
        <div className="graph-canvas" aria-label="Graph canvas">
          {laidOut && <ReactFlow key={laidOut} nodes={nodes} edges={edges} fitView nodesDraggable={false} nodesConnectable={false}
            onNodeDoubleClick={(_, node) => {
              const found = graph?.nodes.find((n) => nodeKey(n.entity_type, n.entity_id) === node.id);
              if (found && !isPlaceholder(found.entity_id)) navigate(`/${found.entity_type}/${found.entity_id}`);
            }}
            onNodeClick={(_, node) => {
              const found = graph?.nodes.find((n) => nodeKey(n.entity_type, n.entity_id) === node.id) ?? null;
              setSelected(found);
              setEditing(null);
            }}
            proOptions={{ hideAttribution: true }}>
            <Background />
            <Controls />
          </ReactFlow>}
        </div>
        <aside className="graph-side" aria-label="Selected">
          <h2>Nodes</h2>
          <ul className="node-list">
            {graph?.nodes.map((n) => {
              const key = nodeKey(n.entity_type, n.entity_id);
              const unsaved = isPlaceholder(n.entity_id);
              const state = unsaved ? "UNSAVED" : (n.state ?? "");
              const name = unsaved ? String(pending.unsaved_entities[key]?.data.name ?? n.name) : n.name;
              return (
                <li key={key} data-node={key} data-state={state}>
                  <button type="button" className="link" aria-pressed={key === selectedKey} onClick={() => { setSelected(n); setEditing(null); }}>
                    {n.entity_type}: {name}
                  </button>{" "}<span className="state" style={{ background: stateColour(state) }}>{state}</span>
                </li>
              );
            })}
          </ul>
          {selected && (
            <div className="selected">
              <h2>{selected.entity_type} {selected.name}</h2>
              {isPlaceholder(selected.entity_id) ? (
                <>
                  <p>Not saved yet.</p>
                  {editor && <button type="button" onClick={() => void editPending(selected)}>Edit</button>}
                </>
              ) : (
                <>
                  <button type="button" onClick={() => navigate(`/${selected.entity_type}/${selected.entity_id}`)}>Open</button>
                  {selected.entity_type === "workflow" && may(session.role, "operator") && !dirty && (
                    <button type="button" onClick={() => void run(selected.entity_id)}>Run</button>
                  )}
                </>
              )}
            </div>
          )}
          {editing && (
            <EntityForm key={editing.key} schema={editing.schema} data={pending.unsaved_entities[editing.key].data} creating submitLabel="Apply"
              onCancel={() => setEditing(null)}
              onSubmit={async (data) => {
                setPending({ ...pending, unsaved_entities: { ...pending.unsaved_entities, [editing.key]: { ...pending.unsaved_entities[editing.key], data } } });
                setEditing(null);
              }} />
          )}
        </aside>
      </div>
    </section>
  );
}
