import { useCallback, useEffect, useState } from "react";
import { Link, useParams, useSearchParams } from "react-router-dom";
import { ApiError, call, may, results, type Entity, type LogEvent, type Page } from "../api";
import { kindOf, type Kind } from "../entities";
import { changedPaths, flatten } from "../forms";
import { useSession } from "../session";
import { useLiveReload } from "../useLive";
import EntityForm from "./EntityForm";
import Gantt from "./Gantt";
import ActionLogs from "./ActionLogs";
import { CancelRun, ScheduleControls } from "./RunControl";
import { definitionOf } from "../runs";
import { ErrorBox, StateBadge, Value, when } from "./common";

const HISTORY = 1000;

function schemaRequest(kind: Kind, id: string): { path: string; query: Record<string, string> } {
  switch (kind.name) {
    case "datastore": return { path: "/schema/datastore", query: { datastore_id: id } };
    case "action": return { path: "/schema/action", query: { action_id: id } };
    case "trigger": return { path: "/schema/trigger", query: { trigger_id: id } };
    case "workflow_instance": return { path: "/schema/workflow/instance", query: {} };
    default: return { path: `/schema/${kind.name}`, query: {} };
  }
}

export default function DetailPage() {
  const { kind: kindName, id = "" } = useParams();
  const kind = kindOf(kindName);
  const session = useSession();
  const [params, setParams] = useSearchParams();
  const asOf = params.get("as_of");
  const [entity, setEntity] = useState<Entity | null>(null);
  const [previous, setPrevious] = useState<Entity | null>(null);
  const [history, setHistory] = useState<LogEvent[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [editing, setEditing] = useState(false);
  const [schema, setSchema] = useState<Record<string, unknown> | null>(null);
  const [notice, setNotice] = useState<string>("");

  const load = useCallback(async () => {
    if (!kind) return;
    try {
      // the newest HISTORY events (a hot stream such as a datastore's grows without bound)
      let events = await call<Page<LogEvent>>(`/${kind.path}/${id}/history`, { query: { limit: HISTORY } });
      if (events.total > HISTORY) {
        events = await call<Page<LogEvent>>(`/${kind.path}/${id}/history`, { query: { limit: HISTORY, offset: events.total - HISTORY } });
      }
      setHistory(events.results);
      const current = await results<Entity>(`/${kind.path}/${id}`, { query: asOf ? { as_of: asOf } : {} });
      setEntity(current);
      const at = asOf ? events.results.findIndex((e) => String(e.global_position) === asOf) : events.results.length - 1;
      if (at > 0) {
        setPrevious(await results<Entity>(`/${kind.path}/${id}`, { query: { as_of: String(events.results[at - 1].global_position) } }));
      } else {
        setPrevious(null);
      }
      setError(null);
    } catch (e) {
      setError(e);
      if (e instanceof ApiError && e.status === 404) setEntity(null);
    }
  }, [kind, id, asOf]);

  useEffect(() => { void load(); }, [load]);
  useLiveReload(kind && !asOf ? { prefix: `${kind.name}-${id}` } : null, load);

  if (!kind) return <p>No such page.</p>;

  const edit = async () => {
    const { path, query } = schemaRequest(kind, id);
    setSchema(await results<Record<string, unknown>>(path, { query }));
    setEditing(true);
  };
  const save = async (data: Record<string, unknown>) => {
    const saved = await results<Entity>(`/${kind.path}/${id}`, { method: "PUT", body: { id, version_id: entity?.version_id, data } });
    setEntity(saved);
    setEditing(false);
    setNotice("Saved.");
    void load();
  };
  const run = async () => {
    setNotice("");
    try {
      await call(`/workflow/${id}/do-manual-trigger`, { method: "POST", body: {} });
      setNotice("Started: a new instance is queued.");
    } catch (e) {
      setError(e);
    }
  };
  const setState = async (state: string) => {
    try {
      await call(`/${kind.path}/${id}`, { method: "PATCH", body: [{ op: "replace", path: "/data/state", value: state }] });
      setNotice(state === "ACTIVE" ? "Activated." : "Deactivated.");
      void load();
    } catch (e) {
      setError(e);
    }
  };
  const remove = async () => {
    if (!window.confirm(`Delete ${kind.name} ${id}?`)) return;
    await call(`/${kind.path}/${id}`, { method: "DELETE" });
    setNotice("Deleted.");
    void load();
  };

  const positions = history.map((e) => e.global_position);
  const index = asOf ? positions.indexOf(Number(asOf)) : positions.length - 1;
  const setIndex = (i: number) => {
    const next = new URLSearchParams(params);
    if (i >= positions.length - 1) next.delete("as_of");
    else next.set("as_of", String(positions[i]));
    setParams(next);
  };
  const changed = entity && previous ? changedPaths(previous.data, entity.data) : new Set<string>();
  const rows = entity ? [...flatten(entity.data)] : [];
  const editable = kind.name !== "workflow_instance" && may(session.role, kind.least) && !asOf;
  const activatable = (kind.name === "workflow" || kind.name === "trigger") && may(session.role, "operator") && !asOf;
  const canRun = kind.name === "workflow" && may(session.role, "operator") && !asOf && entity?.data.state === "ACTIVE";

  return (
    <section>
      <div className="heading">
        <h1>{kind.name} <span className="mono">{id}</span> {entity && <>{String(entity.data.name ?? "")} <StateBadge state={entity.data.state} /></>}</h1>
        <div className="actions">
          {kind.graph && <Link className="button" to={`/graph/${kind.name}/${id}`}>Graph</Link>}
          {canRun && <button type="button" onClick={run}>Run</button>}
          {activatable && entity?.data.state === "INACTIVE" && <button type="button" onClick={() => void setState("ACTIVE")}>Activate</button>}
          {activatable && entity?.data.state === "ACTIVE" && <button type="button" onClick={() => void setState("INACTIVE")}>Deactivate</button>}
          {editable && entity && !editing && <button type="button" onClick={() => void edit()}>Edit</button>}
          {editable && entity && <button type="button" onClick={() => void remove()}>Delete</button>}
        </div>
      </div>
      {kind.name === "workflow_instance" && entity && !asOf && <CancelRun instance={entity} onDone={() => void load()} />}
      {kind.name === "workflow_instance" && entity && <RunSummary data={entity.data} />}
      {kind.name === "action" && entity && <ActionSettings data={entity.data} />}
      {notice && <p role="status" className="notice">{notice}</p>}
      <ErrorBox error={error} />
      {asOf && <p className="notice">Showing the state as of position {asOf}{history[index] ? ` (${when(history[index].recorded_at)})` : ""}. <Link to={`/${kind.name}/${id}`}>Back to now</Link></p>}

      {editing && schema && entity && (
        <EntityForm schema={schema} data={entity.data} creating={false} submitLabel="Save" onSubmit={save} onCancel={() => setEditing(false)} />
      )}

      {history.length > 0 && (
        <div className="timetravel">
          <label htmlFor="as-of">Time travel: version {index + 1} of {history.length}</label>
          <input id="as-of" type="range" min={0} max={history.length - 1} value={index < 0 ? history.length - 1 : index}
            onChange={(e) => setIndex(Number(e.target.value))} aria-valuetext={history[index]?.type} />
          <span>{history[index] ? `${history[index].type} at ${when(history[index].recorded_at)} by ${history[index].metadata.actor ?? "?"}` : ""}</span>
        </div>
      )}

      {kind.name === "workflow_instance" && <Gantt instanceId={id} asOf={asOf} />}
      {kind.name === "action" && !asOf && entity && entity.data.state !== "TEMPLATE" && <ActionLogs actionId={id} />}
      {kind.name === "trigger" && entity && !asOf && entity.data.trigger_type_name === "scheduled" && (
        <ScheduleControls trigger={entity} onDone={() => void load()} />
      )}

      {entity && !editing && (
        <table className="fields" aria-label="Fields">
          <tbody>
            <tr><th scope="row">version</th><td>{entity.version_id}</td></tr>
            <tr><th scope="row">created</th><td>{when(entity.created)}</td></tr>
            <tr><th scope="row">updated</th><td>{when(entity.updated)}</td></tr>
            {rows.map(([path, text]) => (
              <tr key={path} className={changed.has(path) ? "changed" : ""}>
                <th scope="row">{path}</th>
                <td><Value field={path} value={JSON.parse(text)} /></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {changed.size > 0 && <p className="muted">Highlighted: changed by this version ({[...changed].join(", ")}).</p>}

      {kind.name === "workflow" && <Instances workflowId={id} />}
      {kind.name === "subscription" && <Elements subscriptionId={id} version={entity?.version_id} />}

      <h2>History</h2>
      <table className="list" aria-label="History">
        <thead><tr><th scope="col">#</th><th scope="col">position</th><th scope="col">type</th><th scope="col">time</th><th scope="col">actor</th><th scope="col">correlation</th></tr></thead>
        <tbody>
          {history.map((e, i) => (
            <tr key={e.event_id} className={i === index ? "current" : ""}>
              <td>{i + 1}</td>
              <td><button type="button" className="link" onClick={() => setIndex(i)}>{e.global_position}</button></td>
              <td>{e.type}</td><td>{when(e.recorded_at)}</td><td>{e.metadata.actor ?? ""}</td><td className="mono">{e.metadata.correlation_id ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/** A run's definition (workflow version, commit), its scheduled time and who cancelled it, in one line. */
function RunSummary({ data }: { data: Record<string, unknown> }) {
  const definition = definitionOf(data);
  return (
    <p className="run-summary" aria-label="Run">
      <span>Definition: <strong>{definition ?? "unknown"}</strong></span>
      {typeof data.scheduled_time === "string" && data.scheduled_time && <span>Scheduled for <strong>{when(data.scheduled_time)}</strong></span>}
      {typeof data.cancelled_by === "string" && data.cancelled_by && <span>Cancelled by <strong>{data.cancelled_by}</strong></span>}
    </p>
  );
}

/** An action's run settings (issue 15): its timeout, its retries and which attempt it is. */
function ActionSettings({ data }: { data: Record<string, unknown> }) {
  const num = (v: unknown) => (typeof v === "number" ? v : null);
  const timeout = num(data.timeout_seconds);
  const retries = num(data.retries);
  const attempt = num(data.attempt) ?? 1;
  return (
    <p className="run-summary" aria-label="Run settings">
      <span>Timeout: <strong>{timeout !== null ? `${timeout} s` : "none (the datastore's)"}</strong></span>
      <span>Retries: <strong>{retries ?? 0}</strong>{retries ? ` (delay ${num(data.retry_delay_seconds) ?? 1} s, ×${num(data.retry_backoff_rate) ?? 2})` : ""}</span>
      <span>Attempt: <strong>{attempt}{retries ? ` of ${retries + 1}` : ""}</strong></span>
      {typeof data.retry_of === "string" && data.retry_of && <span>Retry of <Link to={`/action/${data.retry_of}`}>{data.retry_of}</Link></span>}
      {typeof data.not_before === "string" && data.not_before && <span>Not before <strong>{when(data.not_before)}</strong></span>}
      <a href="#logs">Logs</a>
    </p>
  );
}

function Instances({ workflowId }: { workflowId: string }) {
  const [page, setPage] = useState<Page<Entity> | null>(null);
  const load = useCallback(async () => {
    setPage(await call<Page<Entity>>(`/workflow/${workflowId}/instance`, { query: { limit: 20 } }));
  }, [workflowId]);
  useEffect(() => { void load(); }, [load]);
  useLiveReload({ prefix: "workflow_instance-" }, load);
  const duration = (e: Entity) => {
    const start = e.data.start_time ? Date.parse(String(e.data.start_time)) : NaN;
    const end = e.data.end_time ? Date.parse(String(e.data.end_time)) : Date.now();
    return isNaN(start) ? "" : `${((end - start) / 1000).toFixed(1)} s`;
  };
  return (
    <>
      <h2>Runs</h2>
      <table className="list" aria-label="Runs">
        <thead><tr><th scope="col">instance</th><th scope="col">state</th><th scope="col">trigger</th><th scope="col">version</th><th scope="col">start</th><th scope="col">duration</th></tr></thead>
        <tbody>
          {page?.results.map((e) => (
            <tr key={e.id}>
              <td><Link to={`/workflow_instance/${e.id}`}>{e.id}</Link></td>
              <td><StateBadge state={e.data.state} /></td>
              <td>{String(e.data.trigger_type ?? "")}{e.data.scheduled_time ? ` for ${when(e.data.scheduled_time)}` : ""}</td>
              <td>{definitionOf(e.data) ?? ""}</td>
              <td>{when(e.data.start_time)}</td>
              <td>{duration(e)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {page && !page.results.length && <p className="muted">No runs yet.</p>}
    </>
  );
}

function Elements({ subscriptionId, version }: { subscriptionId: string; version?: number }) {
  const [stats, setStats] = useState<{ state: string; count: number; file_size_sum: number }[]>([]);
  const [elements, setElements] = useState<Record<string, unknown>[]>([]);
  useEffect(() => {
    results<typeof stats>(`/subscription/${subscriptionId}/element_stats`).then(setStats, () => undefined);
    results<typeof elements>(`/subscription/${subscriptionId}/elements`, { query: { limit: 50 } }).then(setElements, () => undefined);
  }, [subscriptionId, version]);  // again when the subscription changes (its listing's progress)
  return (
    <>
      <h2>Elements</h2>
      <table className="list" aria-label="Element stats">
        <thead><tr><th scope="col">state</th><th scope="col">count</th><th scope="col">bytes</th></tr></thead>
        <tbody>{stats.map((s) => <tr key={s.state}><td><StateBadge state={s.state} /></td><td>{s.count}</td><td>{s.file_size_sum}</td></tr>)}</tbody>
      </table>
      <table className="list" aria-label="Elements">
        <thead><tr><th scope="col">s3_path</th><th scope="col">state</th><th scope="col">size</th><th scope="col">action</th></tr></thead>
        <tbody>{elements.map((e) => (
          <tr key={String(e.s3_path)}><td className="mono">{String(e.s3_path)}</td><td><StateBadge state={e.state} /></td><td>{String(e.file_size ?? "")}</td><td><Value field="action_id" value={e.action_id} /></td></tr>
        ))}</tbody>
      </table>
    </>
  );
}
