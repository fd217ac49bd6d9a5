// The Gantt timeline's geometry: each action as a wait bar (queued -> start) and a run bar (start -> end, or
// now while it runs), placed on one time axis in percent.
export type Bar = {
  id: string;
  label: string;
  state: string;
  waitLeft: number;
  waitWidth: number;
  runLeft: number;
  runWidth: number;
  progress: number | null;
  error: string | null;
  attempt: number;
  // a retry's wait for its not_before (from the failure it follows); zero width when there is none
  holdLeft: number;
  holdWidth: number;
  notBefore: string | null;
};

type ActionData = Record<string, unknown>;

function time(v: unknown): number | null {
  if (typeof v !== "string" || !v) return null;
  const t = Date.parse(v);
  return isNaN(t) ? null : t;
}

/** An action's attempt number: a retried action is a new action (``attempt`` 2, 3 …, ``retry_of`` the first). */
export function attemptOf(data: ActionData): number {
  return typeof data.attempt === "number" ? data.attempt : 1;
}

/** Actions in timeline order: by their place in the run, each one's attempts one after another. */
export function ordered<T extends { data: ActionData }>(actions: T[]): T[] {
  const idx = (a: T) => (typeof a.data.order_idx === "number" ? a.data.order_idx : 0);
  return [...actions].sort((a, b) => idx(a) - idx(b) || attemptOf(a.data) - attemptOf(b.data));
}

export function bars(unordered: { id: string; data: ActionData }[], now: number): { bars: Bar[]; start: number; end: number } {
  const actions = ordered(unordered);
  const times = actions.flatMap((a) => [time(a.data.queued_time), time(a.data.start_time), time(a.data.end_time), time(a.data.not_before)]).filter((t): t is number => t !== null);
  const idx = (a: { data: ActionData }) => (typeof a.data.order_idx === "number" ? a.data.order_idx : 0);
  // order_idx values with more than one attempt, or whose action may be retried: their bars say "attempt n"
  const retried = new Set(actions.filter((a) => attemptOf(a.data) > 1 || (typeof a.data.retries === "number" && a.data.retries > 0)).map(idx));
  const previous = (a: { data: ActionData }) => actions.find((b) => idx(b) === idx(a) && attemptOf(b.data) === attemptOf(a.data) - 1);
  const running = actions.some((a) => time(a.data.start_time) !== null && time(a.data.end_time) === null);
  const start = times.length ? Math.min(...times) : now;
  const end = Math.max(start + 1000, ...(times.length ? times : [now]), running ? now : start);
  const span = end - start;
  const pct = (t: number) => ((t - start) / span) * 100;
  const result = actions.map((a) => {
    const queued = time(a.data.queued_time);
    const began = time(a.data.start_time);
    const ended = time(a.data.end_time) ?? (began !== null ? now : null);
    // a retry waits from its not_before's start (the failure it follows) until it is queued and started
    const waitFrom = queued ?? began;
    const waitTo = began ?? (queued !== null ? now : null);
    const progress = typeof a.data.progress === "number" ? a.data.progress : null;
    const notBefore = time(a.data.not_before);
    const before = previous(a);
    const holdFrom = (before ? time(before.data.end_time) : null) ?? queued ?? (notBefore !== null ? start : null);
    const holdTo = notBefore !== null ? Math.min(notBefore, began ?? notBefore) : null;
    return {
      id: a.id,
      label: String(a.data.name ?? a.data.action_type_name ?? a.id) + (retried.has(idx(a)) ? ` · attempt ${attemptOf(a.data)}` : ""),
      state: String(a.data.state ?? ""),
      waitLeft: waitFrom !== null ? pct(waitFrom) : 0,
      waitWidth: waitFrom !== null && waitTo !== null ? Math.max(0, pct(waitTo) - pct(waitFrom)) : 0,
      runLeft: began !== null ? pct(began) : 0,
      runWidth: began !== null && ended !== null ? Math.max(0.5, pct(ended) - pct(began)) : 0,
      progress,
      error: typeof a.data.error_message === "string" && a.data.error_message ? a.data.error_message : null,
      attempt: attemptOf(a.data),
      holdLeft: holdFrom !== null && holdTo !== null ? pct(holdFrom) : 0,
      holdWidth: holdFrom !== null && holdTo !== null ? Math.max(0, pct(holdTo) - pct(holdFrom)) : 0,
      notBefore: typeof a.data.not_before === "string" && a.data.not_before ? a.data.not_before : null,
    };
  });
  return { bars: result, start, end };
}
