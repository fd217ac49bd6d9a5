import { useEffect, useRef, useState, type FormEvent } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { call, type LogEvent } from "../api";
import { follow, headPosition } from "../live";
import { ErrorBox, when } from "./common";

const SHOWN = 500;
const csv = (v: string) => v.split(",").map((x) => x.trim()).filter(Boolean);

function entityLink(stream: string) {
  const at = stream.lastIndexOf("-");
  const kind = stream.slice(0, at);
  const id = stream.slice(at + 1);
  const kinds = ["engine", "dataset", "datastore", "action", "workflow", "workflow_instance", "trigger", "subscription", "event"];
  return kinds.includes(kind) ? <Link to={`/${kind}/${id}`}>{stream}</Link> : <>{stream}</>;
}

/** The global log, newest first, filtered by type and stream as the API filters it, following live. */
export default function LogPage() {
  const [params, setParams] = useSearchParams();
  const type = params.get("type") ?? "";
  const stream = params.get("stream") ?? "";
  const [draft, setDraft] = useState({ type, stream });
  const [events, setEvents] = useState<LogEvent[]>([]);
  const [live, setLive] = useState(true);
  const [error, setError] = useState<unknown>(null);
  const seen = useRef(new Set<string>());

  useEffect(() => {
    let cancelled = false;
    seen.current = new Set();
    setEvents([]);
    const filter = { types: csv(type), streams: csv(stream) };
    const add = (list: LogEvent[]) => {
      const fresh = list.filter((e) => !seen.current.has(e.event_id));
      fresh.forEach((e) => seen.current.add(e.event_id));
      if (fresh.length) {
        setEvents((shown) => [...shown, ...fresh].sort((x, y) => y.global_position - x.global_position).slice(0, SHOWN));
      }
    };
    // listen first, then read the tail: nothing appended in between is missed (duplicates are dropped)
    const stop = live ? follow(filter, (event) => { if (event && !cancelled) add([event]); }) : () => undefined;
    (async () => {
      const head = await headPosition();
      const from = Math.max(0, head - (type || stream ? 20000 : SHOWN));
      let after = from;
      let kept: LogEvent[] = [];
      for (;;) {
        const page = await call<{ results: LogEvent[]; next_after: number }>("/log", { query: { after, limit: 5000, type, stream } });
        kept = [...kept, ...page.results].slice(-SHOWN);
        after = page.next_after;
        if (page.results.length < 5000 || after >= head) break;
      }
      if (!cancelled) add(kept);
    })().catch(setError);
    return () => { cancelled = true; stop(); };
  }, [type, stream, live]);

  const apply = (e: FormEvent) => {
    e.preventDefault();
    const next = new URLSearchParams();
    if (draft.type.trim()) next.set("type", draft.type.trim());
    if (draft.stream.trim()) next.set("stream", draft.stream.trim());
    setParams(next);
  };
  return (
    <section>
      <h1>Log</h1>
      <form className="filters inline" onSubmit={apply}>
        <label htmlFor="log-type">Types (comma-separated)</label>
        <input id="log-type" value={draft.type} onChange={(e) => setDraft({ ...draft, type: e.target.value })} placeholder="WorkflowCreated,ActionCompleted" />
        <label htmlFor="log-stream">Streams (comma-separated)</label>
        <input id="log-stream" value={draft.stream} onChange={(e) => setDraft({ ...draft, stream: e.target.value })} placeholder="datastore-ABC123" />
        <button type="submit">Filter</button>
        <label><input type="checkbox" checked={live} onChange={(e) => setLive(e.target.checked)} /> Follow live</label>
      </form>
      <ErrorBox error={error} />
      <table className="list" aria-label="Log">
        <thead><tr><th scope="col">position</th><th scope="col">time</th><th scope="col">type</th><th scope="col">stream</th><th scope="col">actor</th><th scope="col">data</th></tr></thead>
        <tbody>
          {events.map((e) => (
            <tr key={e.event_id}>
              <td>{e.global_position}</td><td>{when(e.recorded_at)}</td><td>{e.type}</td><td>{entityLink(e.stream_id)}</td>
              <td>{e.metadata.actor ?? ""}</td><td><code className="clip">{JSON.stringify(e.data)}</code></td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
