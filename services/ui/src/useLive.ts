import { useEffect, useRef } from "react";
import { follow } from "./live";

export type LiveFilter = { type?: string; stream?: string; prefix?: string };

/** Call ``reload`` (at most every 500 ms) whenever the log gets an event of these streams. */
export function useLiveReload(filter: LiveFilter | null, reload: () => unknown): void {
  const latest = useRef(reload);
  useEffect(() => { latest.current = reload; }, [reload]);
  const key = filter ? JSON.stringify(filter) : "";
  useEffect(() => {
    if (!key) return;
    const f = JSON.parse(key) as LiveFilter;
    let timer: ReturnType<typeof setTimeout> | null = null;
    const stop = follow({ type: f.type, stream: f.stream }, (event) => {
      if (event && f.prefix && !event.stream_id.startsWith(f.prefix)) return;
      if (timer) return;
      timer = setTimeout(() => { timer = null; void latest.current(); }, 500);
    });
    return () => { stop(); if (timer) clearTimeout(timer); };
  }, [key]);
}
