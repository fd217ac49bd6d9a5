// Following the log as it grows: GET /api/1/log/stream (Server-Sent Events; read with fetch so the key goes in
// the Authorization header, which EventSource cannot send), resumed from the last id after a drop; where the
// stream is not served (an older server, or a key that may not read the log), /api/1/log is polled, and a
// key that may not read the log at all is told to reload every few seconds.
import { API, ApiError, authHeader, call, type LogEvent } from "./api";

export type Filter = { type?: string; stream?: string };
export type Listener = (event: LogEvent | null) => void;

/** Parse a chunk of an event stream; returns the complete events and the unparsed rest. */
export function parseSse(buffer: string): { events: { id?: string; data: string }[]; rest: string } {
  const events: { id?: string; data: string }[] = [];
  const blocks = buffer.replace(/\r\n/g, "\n").split("\n\n");
  const rest = blocks.pop() ?? "";
  for (const block of blocks) {
    let id: string | undefined;
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") id = value;
      else if (field === "data") data.push(value);
    }
    if (data.length) events.push({ id, data: data.join("\n") });
  }
  return { events, rest };
}

function query(after: number, filter: Filter): string {
  const params = new URLSearchParams({ after: String(after) });
  if (filter.type) params.set("type", filter.type);
  if (filter.stream) params.set("stream", filter.stream);
  return params.toString();
}

/** Follow the log from ``after`` (a global position; -1: from now); returns a function that stops. */
export function follow(filter: Filter, listener: Listener, after = -1): () => void {
  const abort = new AbortController();
  let position = after;
  let stopped = false;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  async function start(): Promise<void> {
    if (position < 0) {
      position = await lastPosition();
    }
    while (!stopped) {
      const mode = await stream();
      if (stopped) return;
      if (mode === "unsupported") break;
      await sleep(1000);
    }
    while (!stopped) {
      await poll();
      await sleep(2000);
    }
  }

  async function lastPosition(): Promise<number> {
    try {
      let at = 0;
      for (;;) {
        const page = await call<{ results: LogEvent[]; next_after: number }>("/log", { query: { after: at, limit: 10000, ...filterQuery() } });
        if (!page.results.length) return at;
        at = page.next_after;
        if (page.results.length < 10000) return at;
      }
    } catch {
      return 0;
    }
  }

  function filterQuery(): Record<string, string> {
    const q: Record<string, string> = {};
    if (filter.type) q.type = filter.type;
    if (filter.stream) q.stream = filter.stream;
    return q;
  }

  async function stream(): Promise<"dropped" | "unsupported"> {
    let response: Response;
    try {
      response = await fetch(`${API}/log/stream?${query(position, filter)}`, {
        headers: { Accept: "text/event-stream", ...authHeader(), ...(position > 0 ? { "Last-Event-ID": String(position) } : {}) },
        signal: abort.signal,
      });
    } catch {
      return "dropped";
    }
    if (!response.ok || !response.body) {
      await response.body?.cancel().catch(() => undefined);
      return response.status >= 500 ? "dropped" : "unsupported";
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return "dropped";
        const parsed = parseSse(buffer + value);
        buffer = parsed.rest;
        for (const event of parsed.events) {
          try {
            const item = JSON.parse(event.data) as LogEvent;
            position = Math.max(position, Number(event.id ?? item.global_position) || position);
            listener(item);
          } catch {
            // a comment or keep-alive that is not an event
          }
        }
      }
    } catch {
      return "dropped";
    }
  }

  async function poll(): Promise<void> {
    try {
      const page = await call<{ results: LogEvent[]; next_after: number }>("/log", {
        query: { after: position, limit: 500, ...filterQuery() },
      });
      for (const item of page.results) listener(item);
      position = page.next_after;
    } catch (e) {
      if (e instanceof ApiError && e.status === 403) listener(null); // no log for this key: just reload
    }
  }

  void start();
  return () => {
    stopped = true;
    abort.abort();
  };
}
