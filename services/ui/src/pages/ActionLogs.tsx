import { useEffect, useLayoutEffect, useRef, useState } from "react";
import { useLocation } from "react-router-dom";
import { ApiError, results } from "../api";
import { appendChunk, EMPTY_LOG, nextRead, type LogChunk, type LogView } from "../runs";
import { StateBadge } from "./common";

const POLL_MS = 1000;

/** An action's engine output (GET /action/{id}/logs?offset=N): read from offset 0, then, while the action runs,
 * again every second from where the last read stopped, until the server says it is finished. */
export default function ActionLogs({ actionId }: { actionId: string }) {
  const [view, setView] = useState<LogView>(EMPTY_LOG);
  const [error, setError] = useState<string>("");
  const [follow, setFollow] = useState(true); // keep the newest line in sight
  const panel = useRef<HTMLPreElement>(null);
  const section = useRef<HTMLElement>(null);
  const location = useLocation();

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | null = null;
    let current: LogView = EMPTY_LOG;
    setView(EMPTY_LOG);
    setError("");
    const read = async () => {
      try {
        const chunk = await results<LogChunk>(`/action/${actionId}/logs`, { query: { offset: current.offset } });
        if (stopped) return;
        current = appendChunk(current, chunk);
        setView(current);
        setError("");
        const next = nextRead(chunk);
        if (next !== "done") timer = setTimeout(() => void read(), next === "now" ? 0 : POLL_MS);
      } catch (e) {
        if (stopped) return;
        setError(e instanceof ApiError ? e.message : String(e));
        if (!(e instanceof ApiError) || e.status >= 500) timer = setTimeout(() => void read(), POLL_MS * 3);
      }
    };
    void read();
    return () => { stopped = true; if (timer) clearTimeout(timer); };
  }, [actionId]);

  useLayoutEffect(() => {
    if (follow && panel.current) panel.current.scrollTop = panel.current.scrollHeight;
  }, [view.text, follow]);

  useEffect(() => {
    if (location.hash === "#logs") section.current?.scrollIntoView({ block: "start" });
  }, [location.hash]);

  const onScroll = () => {
    const el = panel.current;
    if (el) setFollow(el.scrollHeight - el.scrollTop - el.clientHeight < 24);
  };

  return (
    <section id="logs" className="action-logs" aria-label="Logs" ref={section}>
      <h2>Logs</h2>
      <p className="muted" role="status" aria-label="Log status">
        {view.finished ? "Finished" : view.state === null ? "Reading…" : "Following"}
        {view.state !== null && <> <StateBadge state={view.state} /></>}
        {view.source && <> · from {view.source}</>}
        {view.offset > 0 && <> · {view.offset} bytes</>}
      </p>
      {error && <p role="alert" className="error">{error}</p>}
      <pre className="log-panel" tabIndex={0} ref={panel} onScroll={onScroll} aria-label="Engine output">
        {view.text || (view.finished ? "(no output)" : "(no output yet)")}
      </pre>
    </section>
  );
}
