// Run control in the app (issue 15): an action's engine output read in chunks from a byte offset, cancelling a
// run, a schedule's pause and backfill. Pure helpers; the pages call the API.
import { may, type Role } from "./api";

/** GET /action/{id}/logs?offset=N's results. */
export type LogChunk = {
  action_id: string;
  text: string;
  offset: number;
  next_offset: number;
  source: string | null;
  state: string | null;
  finished: boolean;
};

export type LogView = { text: string; offset: number; source: string | null; state: string | null; finished: boolean };

export const EMPTY_LOG: LogView = { text: "", offset: 0, source: null, state: null, finished: false };

/** The log so far with the next chunk appended; a chunk for another offset (an answer to an older request
 * arriving late) is ignored. The panel keeps at most ``keep`` characters, dropping the oldest. */
export function appendChunk(view: LogView, chunk: LogChunk, keep = 2_000_000): LogView {
  if (chunk.offset !== view.offset) return view;
  const text = view.text + chunk.text;
  return {
    text: text.length > keep ? text.slice(text.length - keep) : text,
    offset: chunk.next_offset,
    source: chunk.source ?? view.source,
    state: chunk.state,
    finished: chunk.finished,
  };
}

/** Whether to ask again at once (the chunk was not all there is: the server sends at most 1 MiB a time), after
 * the poll interval (the action runs), or never (it ended and everything is read). */
export function nextRead(chunk: LogChunk): "now" | "later" | "done" {
  const more = chunk.text.length > 0 && chunk.next_offset > chunk.offset;
  if (more && (chunk.finished || chunk.next_offset - chunk.offset >= 512 * 1024)) return "now";
  return chunk.finished ? "done" : "later";
}

export const LIVE_INSTANCE = ["QUEUED", "RUNNING"];

/** A run may be cancelled by an operator (or more) while it is QUEUED or RUNNING. */
export function canCancel(state: unknown, role: Role | null): boolean {
  return may(role, "operator") && LIVE_INSTANCE.includes(String(state ?? ""));
}

/** POST /workflow/instance/{id}/cancel's answer. */
export type Cancelled = {
  results: string;
  workflow_instance_id: string;
  state: string;
  error_message?: string;
  cancelled_actions?: string[];
  already_cancelled?: boolean;
};

export function cancelSummary(answer: Cancelled): string {
  const message = answer.error_message || "cancelled";
  const head = message.charAt(0).toUpperCase() + message.slice(1);
  if (answer.already_cancelled) return `${head} (it already was).`;
  const n = answer.cancelled_actions?.length ?? 0;
  return `${head}: ${answer.state}, ${n} action${n === 1 ? "" : "s"} stopped.`;
}

/** A time typed into a form as the API takes it (ISO 8601 with an offset): a date alone is its midnight UTC, a
 * time without an offset is UTC. null when it is not a time. */
export function isoTime(typed: string): string | null {
  let value = typed.trim().replace(" ", "T");
  if (!value) return null;
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) value += "T00:00:00";
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/.test(value)) value += ":00";
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$/.test(value)) return null;
  if (!/(Z|[+-]\d{2}:\d{2})$/.test(value)) value += "Z";
  return isNaN(Date.parse(value)) ? null : value;
}

/** POST /trigger/{id}/backfill's results. */
export type Backfilled = { dry_run: boolean; scheduled_times: string[]; already_fired: string[] };

export function backfillSummary(answer: Backfilled): string {
  const n = answer.scheduled_times.length;
  const times = `${n} scheduled time${n === 1 ? "" : "s"}`;
  const head = answer.dry_run ? `Dry run: it would fire ${times}` : `Fired ${times}`;
  const skipped = answer.already_fired.length ? `; ${answer.already_fired.length} fired before, not again` : "";
  return `${head}${skipped}.`;
}

/** A run's definition as one line: "version 3 at commit abc1234" (null when neither is known). */
export function definitionOf(data: Record<string, unknown>): string | null {
  const version = data.workflow_version;
  const commit = typeof data.definition_commit === "string" && data.definition_commit ? data.definition_commit : null;
  if (version === null || version === undefined) return commit ? `commit ${commit.slice(0, 12)}` : null;
  return `version ${String(version)}` + (commit ? ` at commit ${commit.slice(0, 12)}` : "");
}
