// The REST API under /api/1: the key from sessionStorage as HTTP Basic credentials, the envelope unwrapped,
// refusals as ApiError (status and the server's error_message).

export const API = "/api/1";
const STORAGE = "dart.apiKey";

export type Entity = {
  id: string;
  version_id?: number;
  created?: string;
  updated?: string;
  data: Record<string, unknown>;
};

export type Page<T> = { results: T[]; limit: number; offset: number; total: number };

export type LogEvent = {
  event_id: string;
  stream_id: string;
  stream_version: number;
  global_position: number;
  type: string;
  data: Record<string, unknown>;
  metadata: { actor?: string | null; correlation_id?: string | null; causation_id?: string | null };
  recorded_at: string;
};

export class ApiError extends Error {
  status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export function storedKey(): string | null {
  return sessionStorage.getItem(STORAGE);
}

export function storeKey(key: string | null): void {
  if (key) sessionStorage.setItem(STORAGE, key);
  else sessionStorage.removeItem(STORAGE);
}

export function authHeader(key: string | null = storedKey()): Record<string, string> {
  return key ? { Authorization: "Basic " + btoa(key) } : {};
}

export type Query = Record<string, string | number | undefined | null>;

export function url(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
  }
  const qs = params.toString();
  return API + path + (qs ? "?" + qs : "");
}

export type CallOptions = { method?: string; body?: unknown; query?: Query; key?: string | null };

export async function call<T>(path: string, options: CallOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json", ...authHeader(options.key ?? storedKey()) };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url(path, options.query), {
    method: options.method ?? "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) {
    const body = (parsed && typeof parsed === "object" ? parsed : {}) as Record<string, unknown>;
    const message = String(body.error_message ?? body.description ?? (text || response.statusText));
    throw new ApiError(response.status, message);
  }
  return parsed as T;
}

export async function results<T>(path: string, options: CallOptions = {}): Promise<T> {
  const body = await call<{ results: T }>(path, options);
  return body.results;
}

export type Role = "viewer" | "operator" | "editor" | "admin";
export const ROLES: Role[] = ["viewer", "operator", "editor", "admin"];

export function may(role: Role | null, least: Role): boolean {
  return role !== null && ROLES.indexOf(role) >= ROLES.indexOf(least);
}

/** The key's user and role (GET /whoami); a wrong key is a 401 (ApiError). A launch token or a key without a
 * role is treated as a viewer. */
export async function detectRole(key: string): Promise<{ role: Role; user: string }> {
  const me = await results<{ user_id: string; role: string | null }>("/whoami", { key });
  const role = (ROLES as string[]).includes(me.role ?? "") ? (me.role as Role) : "viewer";
  return { role, user: me.user_id };
}
