import { useState, type FormEvent } from "react";
import { Link } from "react-router-dom";
import { call, may, results, type Entity } from "../api";
import { backfillSummary, canCancel, cancelSummary, isoTime, type Backfilled, type Cancelled } from "../runs";
import { useSession } from "../session";
import { ErrorBox, when } from "./common";

/** "Cancel run" for a QUEUED or RUNNING instance (operators and up): asks to confirm, with an optional reason. */
export function CancelRun({ instance, onDone }: { instance: Entity; onDone: () => void }) {
  const session = useSession();
  const [asking, setAsking] = useState(false);
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState("");
  const [error, setError] = useState<unknown>(null);
  const live = canCancel(instance.data.state, session.role);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const answer = await call<Cancelled>(`/workflow/instance/${instance.id}/cancel`, {
        method: "POST", body: reason.trim() ? { reason: reason.trim() } : {},
      });
      setResult(cancelSummary(answer));
      setAsking(false);
      onDone();
    } catch (err) {
      setError(err); // a run that ended meanwhile: the server's 400 names its state
      setAsking(false);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="run-control">
      {live && !asking && <button type="button" className="danger" onClick={() => { setAsking(true); setResult(""); }}>Cancel run</button>}
      {asking && (
        <form className="confirm" onSubmit={(e) => void submit(e)} aria-label="Cancel this run">
          <p>Cancel this run? Its engines are stopped and its unfinished actions fail.</p>
          <label htmlFor="cancel-reason">Reason (optional)</label>
          <input id="cancel-reason" maxLength={500} value={reason} onChange={(e) => setReason(e.target.value)} autoFocus />
          <button type="submit" className="danger" disabled={busy}>Yes, cancel the run</button>
          <button type="button" onClick={() => setAsking(false)}>Keep it running</button>
        </form>
      )}
      {result && <p role="status" className="notice">{result}</p>}
      <ErrorBox error={error} />
    </div>
  );
}

/** The workflow instances list filtered to the runs a trigger started. */
export function runsOf(triggerId: string): string {
  return `/workflow_instance?filters=${encodeURIComponent(JSON.stringify([`trigger_id = ${triggerId}`]))}`;
}

/** A scheduled trigger's controls: pause or unpause with a reason, and a backfill over a range of times. */
export function ScheduleControls({ trigger, onDone }: { trigger: Entity; onDone: () => void }) {
  const session = useSession();
  const paused = trigger.data.paused === true;
  const [reason, setReason] = useState("");
  const [start, setStart] = useState("");
  const [end, setEnd] = useState("");
  const [dryRun, setDryRun] = useState(true);
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState("");
  const [answer, setAnswer] = useState<Backfilled | null>(null);
  const [error, setError] = useState<unknown>(null);
  const operator = may(session.role, "operator");

  const pause = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setNotice("");
    try {
      const done = await call<{ results: Entity; changed: boolean }>(`/trigger/${trigger.id}/${paused ? "unpause" : "pause"}`, {
        method: "POST", body: { reason: reason.trim() },
      });
      setNotice(`${done.results.data.paused ? "Paused" : "Unpaused"}${done.changed ? "" : " (it already was)"}.`);
      setReason("");
      onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const backfill = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setAnswer(null);
    const from = isoTime(start);
    const to = isoTime(end);
    if (!from || !to) {
      setError(new Error(`${!from ? "start" : "end"}: a time such as 2026-12-01T00:00:00Z (a date alone is its midnight UTC)`));
      return;
    }
    setBusy(true);
    try {
      setAnswer(await results<Backfilled>(`/trigger/${trigger.id}/backfill`, { method: "POST", body: { start: from, end: to, dry_run: dryRun } }));
      if (!dryRun) onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="schedule" aria-label="Schedule">
      <h2>Schedule</h2>
      <p>
        <Link to={runsOf(trigger.id)}>Its runs</Link>{" · "}
        {paused ? <><span className="state paused">PAUSED</span> {String(trigger.data.pause_note ?? "")}</>
          : <>Not paused{trigger.data.pause_note ? <span className="muted"> (last note: {String(trigger.data.pause_note)})</span> : null}.</>}
      </p>
      {operator && (
        <>
          <form className="filters inline" onSubmit={(e) => void pause(e)} aria-label={paused ? "Unpause" : "Pause"}>
            <label htmlFor="pause-reason">Reason</label>
            <input id="pause-reason" required maxLength={1000} value={reason} onChange={(e) => setReason(e.target.value)}
              placeholder={paused ? "why it resumes" : "why it is paused"} />
            <button type="submit" disabled={busy}>{paused ? "Unpause" : "Pause"}</button>
          </form>
          <form className="filters inline" onSubmit={(e) => void backfill(e)} aria-label="Backfill">
            <strong>Backfill</strong>
            <label htmlFor="backfill-start">Start</label>
            <input id="backfill-start" required value={start} onChange={(e) => setStart(e.target.value)} placeholder="2026-12-01T00:00:00Z" />
            <label htmlFor="backfill-end">End</label>
            <input id="backfill-end" required value={end} onChange={(e) => setEnd(e.target.value)} placeholder="2026-12-02T00:00:00Z" />
            <label><input type="checkbox" checked={dryRun} onChange={(e) => setDryRun(e.target.checked)} /> Dry run</label>
            <button type="submit" disabled={busy}>{dryRun ? "List the times" : "Backfill"}</button>
          </form>
        </>
      )}
      {notice && <p role="status" className="notice">{notice}</p>}
      <ErrorBox error={error} />
      {answer && (
        <div className="backfill-result" aria-label="Backfill result">
          <p role="status" className="notice">{backfillSummary(answer)}</p>
          {answer.scheduled_times.length > 0 && (
            <ol className="times">{answer.scheduled_times.map((t) => <li key={t}>{when(t)}</li>)}</ol>
          )}
          {answer.already_fired.length > 0 && (
            <details><summary>Fired before ({answer.already_fired.length})</summary>
              <ol className="times">{answer.already_fired.map((t) => <li key={t}>{when(t)}</li>)}</ol>
            </details>
          )}
          {!answer.dry_run && answer.scheduled_times.length > 0 && (
            <p>Started: <Link to={runsOf(trigger.id)}>the runs of this trigger</Link> (each with its scheduled_time).</p>
          )}
        </div>
      )}
    </section>
  );
}
