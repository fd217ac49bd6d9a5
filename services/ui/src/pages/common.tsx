import { Link } from "react-router-dom";
import { REFERENCES, stateColour } from "../entities";

export function StateBadge({ state }: { state: unknown }) {
  if (state === undefined || state === null) return null;
  return <span className="state" style={{ background: stateColour(state) }}>{String(state)}</span>;
}

/** One value of an entity as a cell: ids of other entities as links, states as badges, JSON otherwise. */
export function Value({ field, value }: { field: string; value: unknown }) {
  const leaf = field.split(".").pop() ?? field;
  if (leaf === "state") return <StateBadge state={value} />;
  if (typeof value === "string" && REFERENCES[leaf] && value) {
    return <Link to={`/${REFERENCES[leaf]}/${value}`}>{value}</Link>;
  }
  if (leaf === "workflow_ids" && Array.isArray(value)) {
    return <>{value.map((id) => <Link key={String(id)} to={`/workflow/${id}`}>{String(id)} </Link>)}</>;
  }
  if (value === null || value === undefined) return <span className="muted">—</span>;
  if (typeof value === "object") return <code>{JSON.stringify(value)}</code>;
  return <>{String(value)}</>;
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  return <p role="alert" className="error">{error instanceof Error ? error.message : String(error)}</p>;
}

export function when(iso: unknown): string {
  if (typeof iso !== "string" || !iso) return "";
  const d = new Date(iso);
  return isNaN(d.getTime()) ? iso : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}
