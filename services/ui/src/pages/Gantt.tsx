import { useCallback, useEffect, useState } from "react";
import { Link } from "react-router-dom";
import { call, type Entity, type Page } from "../api";
import { stateColour } from "../entities";
import { bars } from "../gantt";
import { useLiveReload } from "../useLive";
import { when } from "./common";

/** A workflow instance's actions on a timeline: queued (light) then running (coloured by state), the progress
 * of a RUNNING action, the error of a FAILED one, each attempt of a retried action as its own bar ("attempt n")
 * with its retry delay (until not_before) hatched; each with a link to its logs; live. */
export default function Gantt({ instanceId, asOf }: { instanceId: string; asOf: string | null }) {
  const [actions, setActions] = useState<Entity[]>([]);
  const [now, setNow] = useState(() => Date.now());
  const load = useCallback(async () => {
    const page = await call<Page<Entity>>("/action", {
      query: { filters: JSON.stringify([`workflow_instance_id = ${instanceId}`]), order_by: JSON.stringify(["order_idx ASC"]), limit: 500 },
    });
    setActions(page.results);
    setNow(Date.now());
  }, [instanceId]);
  useEffect(() => { void load(); }, [load]);
  useLiveReload(asOf ? null : { prefix: "action-" }, load);
  const running = actions.some((a) => a.data.state === "RUNNING" || a.data.state === "PENDING" || a.data.state === "QUEUED");
  useEffect(() => {
    if (!running) return;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [running]);
  const chart = bars(actions, now);
  return (
    <section className="gantt" aria-label="Timeline">
      <h2>Timeline</h2>
      <p className="muted">{when(new Date(chart.start).toISOString())} → {when(new Date(chart.end).toISOString())} ({((chart.end - chart.start) / 1000).toFixed(1)} s)</p>
      <div className="gantt-axis" aria-hidden="true">
        <span />
        <span className="gantt-track">
          {[0, 25, 50, 75, 100].map((p) => (
            <span key={p} className="gantt-tick" style={{ left: `${p}%` }}>+{(((chart.end - chart.start) * p) / 100000).toFixed(1)} s</span>
          ))}
        </span>
      </div>
      <ol>
        {chart.bars.map((b) => (
          <li key={b.id} className="gantt-row" data-state={b.state} data-action={b.id}>
            <span className="gantt-label"><Link to={`/action/${b.id}`}>{b.label}</Link> <small>{b.state}</small>
              {" "}<Link className="gantt-logs" to={`/action/${b.id}#logs`} aria-label={`logs of ${b.label}`}>logs</Link>
              {b.notBefore && !["RUNNING", "COMPLETED", "FAILED", "SKIPPED"].includes(b.state) && <small className="gantt-notbefore"> waits until {when(b.notBefore)}</small>}
            </span>
            <span className="gantt-track">
              {b.holdWidth > 0 && <span className="gantt-hold" style={{ left: `${b.holdLeft}%`, width: `${b.holdWidth}%` }} title={`retry delay: not before ${when(b.notBefore)}`} />}
              {b.waitWidth > 0 && <span className="gantt-wait" style={{ left: `${b.waitLeft}%`, width: `${b.waitWidth}%` }} title="queued" />}
              {b.runWidth > 0 && (
                <span className="gantt-run" style={{ left: `${b.runLeft}%`, width: `${b.runWidth}%`, background: stateColour(b.state) }}
                  title={`${b.state}${b.progress !== null ? ` ${b.progress}%` : ""}`}>
                  {b.progress !== null && b.state === "RUNNING" && <span className="gantt-progress" style={{ width: `${b.progress}%` }} />}
                </span>
              )}
            </span>
            {b.error && (
              <details className="error gantt-error">
                <summary>{b.error.split("\n")[0].split(" Traceback (")[0]}</summary>
                <pre>{b.error}</pre>
              </details>
            )}
          </li>
        ))}
      </ol>
      {!actions.length && <p className="muted">No actions.</p>}
    </section>
  );
}
