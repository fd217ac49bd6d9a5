// Following the log as it grows, one connection per tab: GET /api/1/log/stream (Server-Sent Events, read with
// fetch so the key goes in the Authorization header, which EventSource cannot send), resumed after a drop
// from the last position seen (Last-Event-ID), and shared by every page that listens (the server serves a
// few streams per process). Where the stream is not served, /api/1/log is polled; a key that may read
// neither (the log is admin's) gets a reload signal (null) every few seconds instead.
import { API, ApiError, authHeader, call, type LogEvent } from "./api";

export type Filter = { types?: string[]; streams?: string[]; prefix?: string };
export type Listener = (event: LogEvent | null) => void;

/** Parse a chunk of an event stream; returns the complete messages and the unparsed rest. */
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

export function matches(filter: Filter, event: LogEvent): boolean {
  if (filter.types?.length && !filter.types.includes(event.type)) return false;
  if (filter.streams?.length && !filter.streams.includes(event.stream_id)) return false;
  if (filter.prefix && !event.stream_id.startsWith(filter.prefix)) return false;
  return true;
}

/** The log's last global position now (the open readiness probe reports it). */
export async function headPosition(): Promise<number> {
  const response = await fetch("/ready", { headers: { Accept: "application/json" } });
  const body = (await response.json()) as { head_position?: number };
  return Number(body.head_position ?? 0);
}

// Whether the signed-in key may read the log (admins): others are told to reload every few seconds, without
// asking for what they would be refused.
let logAccess = true;
export function setLogAccess(allowed: boolean): void {
  if (allowed !== logAccess) hub.stop(); // the next listener starts the right way
  logAccess = allowed;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Hub {
  private subs = new Set<{ filter: Filter; listener: Listener }>();
  private abort: AbortController | null = null;
  private generation = 0;
  private started = false;
  position = -1;

  subscribe(filter: Filter, listener: Listener): () => void {
    const sub = { filter, listener };
    this.subs.add(sub);
    if (!this.started) {
      this.started = true;
      void this.run(++this.generation);
    }
    return () => {
      // the stream stays open for the next page's listeners: a server notices a closed stream only at its
      // next write (a keep-alive), and until then the stream holds one of the few it serves
      this.subs.delete(sub);
    };
  }

  /** Close the stream (signing out). */
  stop(): void {
    this.generation++;
    this.abort?.abort();
    this.abort = null;
    this.position = -1;
    this.started = false;
  }

  private dispatch(event: LogEvent | null): void {
    for (const sub of [...this.subs]) if (event === null || matches(sub.filter, event)) sub.listener(event);
  }

  private alive(generation: number): boolean {
    return generation === this.generation;
  }

  private async run(generation: number): Promise<void> {
    while (!logAccess && this.alive(generation)) {
      await sleep(5000);
      if (this.alive(generation)) this.dispatch(null);
    }
    if (this.position < 0) {
      try {
        this.position = await headPosition();
      } catch {
        this.position = 0;
      }
    }
    while (this.alive(generation)) {
      const outcome = await this.stream(generation);
      if (!this.alive(generation)) return;
      if (outcome === "unsupported") break;
      await sleep(1000);
    }
    while (this.alive(generation)) {
      await this.poll();
      await sleep(2000);
    }
  }

  private async stream(generation: number): Promise<"dropped" | "unsupported"> {
    const abort = new AbortController();
    this.abort = abort;
    let response: Response;
    try {
      response = await fetch(`${API}/log/stream?after=${this.position}`, {
        headers: { Accept: "text/event-stream", ...authHeader() },
        signal: abort.signal,
      });
    } catch {
      return "dropped";
    }
    if (!response.ok || !response.body) {
      await response.body?.cancel().catch(() => undefined);
      return response.status >= 500 || response.status === 429 ? "dropped" : "unsupported";
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || !this.alive(generation)) return "dropped";
        const parsed = parseSse(buffer + value);
        buffer = parsed.rest;
        for (const message of parsed.events) {
          let event: LogEvent;
          try {
            event = JSON.parse(message.data) as LogEvent;
          } catch {
            continue;
          }
          if (event.global_position <= this.position) continue;
          this.position = event.global_position;
          this.dispatch(event);
        }
      }
    } catch {
      return "dropped";
    }
  }

  private async poll(): Promise<void> {
    try {
      const page = await call<{ results: LogEvent[]; next_after: number }>("/log", { query: { after: this.position, limit: 1000 } });
      for (const event of page.results) this.dispatch(event);
      this.position = page.next_after;
    } catch (e) {
      if (e instanceof ApiError && (e.status === 403 || e.status === 404)) {
        this.dispatch(null); // no log for this key: every listener reloads
        await sleep(3000);
      }
    }
  }
}

const hub = new Hub();

/** Listen to the log's new events (those matching ``filter``); returns a function that stops listening. A
 * ``null`` event means "something may have changed" (a key that cannot read the log). */
export function follow(filter: Filter, listener: Listener): () => void {
  return hub.subscribe(filter, listener);
}

/** Stop following the log (the key is gone). */
export function stopFollowing(): void {
  hub.stop();
}
