import { useEffect, useRef } from "react";
import { follow, type Filter } from "./live";

/** Call ``reload`` (at most every 500 ms) whenever the log gets an event matching ``filter``. */
export function useLiveReload(filter: Filter | null, reload: () => unknown): void {
  const latest = useRef(reload);
  useEffect(() => { latest.current = reload; }, [reload]);
  const key = filter ? JSON.stringify(filter) : "";
  useEffect(() => {
    if (!key) return;
    let timer: ReturnType<typeof setTimeout> | null = null;
    const stop = follow(JSON.parse(key) as Filter, () => {
      if (timer) return;
      timer = setTimeout(() => { timer = null; void latest.current(); }, 500);
    });
    return () => { stop(); if (timer) clearTimeout(timer); };
  }, [key]);
}
