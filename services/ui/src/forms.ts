// Forms from the API's JSON schemas: the entity schema's ``data`` part, its ``readonly`` fields shown but not
// editable, ``x-dart-secret`` fields as password inputs never filled from the server, and a server refusal
// ("data.args.port: ...") placed on the field it names.
import type { ErrorSchema, RJSFSchema, UiSchema } from "@rjsf/utils";

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** The form's schema: the ``data`` property of an entity schema (or the schema itself), with the original's
 * lowercase ``readonly`` as JSON schema's ``readOnly``. */
export function dataSchema(entitySchema: Json): RJSFSchema {
  const props = isObject(entitySchema.properties) ? entitySchema.properties : {};
  const data = isObject(props.data) ? props.data : entitySchema;
  return normalise(structuredClone(data)) as RJSFSchema;
}

function normalise(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(normalise);
  if (!isObject(node)) return node;
  const out: Json = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === "readonly") out.readOnly = v;
    else out[k] = normalise(v);
  }
  return out;
}

/** Paths (dotted, under data) of every secret field. */
export function secretPaths(schema: Json, prefix = ""): string[] {
  const found: string[] = [];
  const props = isObject(schema.properties) ? schema.properties : {};
  for (const [name, sub] of Object.entries(props)) {
    if (!isObject(sub)) continue;
    const path = prefix ? `${prefix}.${name}` : name;
    if (sub["x-dart-secret"]) found.push(path);
    found.push(...secretPaths(sub, path));
  }
  return found;
}

/** rjsf's uiSchema: secrets as password widgets, readonly fields read-only, long text as text areas. */
export function uiSchemaFor(schema: Json, creating: boolean): UiSchema {
  const ui: UiSchema = {};
  const props = isObject(schema.properties) ? schema.properties : {};
  for (const [name, sub] of Object.entries(props)) {
    if (!isObject(sub)) continue;
    const entry: UiSchema = {};
    if (sub["x-dart-secret"]) entry["ui:widget"] = "password";
    if (sub.readOnly && !creating) entry["ui:readonly"] = true;
    if (sub.readOnly && creating) entry["ui:widget"] = "hidden"; // filled by the server or the page
    if (isObject(sub.properties)) Object.assign(entry, uiSchemaFor(sub, creating));
    if (Object.keys(entry).length) ui[name] = entry;
  }
  return ui;
}

/** A copy of ``data`` without its secrets (they are never shown back). */
export function withoutSecrets(data: Json, paths: string[]): Json {
  const copy = structuredClone(data);
  for (const path of paths) {
    const parts = path.split(".");
    let at: unknown = copy;
    for (const part of parts.slice(0, -1)) at = isObject(at) ? at[part] : undefined;
    if (isObject(at)) delete at[parts[parts.length - 1]];
  }
  return copy;
}

/** A server message ``data.args.port: 70000 is greater than ...`` as rjsf's extraErrors on that field; a
 * message naming no field of the form goes on the form as a whole. */
export function serverErrors(message: string, schema: Json): { errors: ErrorSchema; field: string | null } {
  const match = /^([A-Za-z0-9_.[\]]+): (.+)$/s.exec(message.trim());
  if (match) {
    const parts = match[1].replace(/\[(\d+)\]/g, ".$1").split(".").filter(Boolean);
    if (parts[0] === "data") parts.shift();
    if (parts.length && fieldExists(schema, parts)) {
      const errors: Json = {};
      let at = errors;
      for (const part of parts) {
        at[part] = at[part] ?? {};
        at = at[part] as Json;
      }
      at.__errors = [match[2]];
      return { errors: errors as ErrorSchema, field: parts.join(".") };
    }
  }
  return { errors: { __errors: [message] } as ErrorSchema, field: null };
}

function fieldExists(schema: Json, parts: string[]): boolean {
  let at: unknown = schema;
  for (const part of parts) {
    if (!isObject(at)) return false;
    if (isObject(at.properties) && part in at.properties) at = at.properties[part];
    else if (/^\d+$/.test(part) && isObject(at.items)) at = at.items;
    else return false;
  }
  return true;
}

/** The leaves of a JSON value as dotted paths -> JSON text, for comparing two versions of an entity. */
export function flatten(value: unknown, prefix = ""): Map<string, string> {
  const out = new Map<string, string>();
  if (isObject(value) && Object.keys(value).length) {
    for (const [k, v] of Object.entries(value)) {
      for (const [p, t] of flatten(v, prefix ? `${prefix}.${k}` : k)) out.set(p, t);
    }
  } else if (prefix) {
    out.set(prefix, JSON.stringify(value));
  }
  return out;
}

/** What changed from ``before`` to ``after``: the paths added, removed or given another value. */
export function changedPaths(before: unknown, after: unknown): Set<string> {
  const a = flatten(before);
  const b = flatten(after);
  const changed = new Set<string>();
  for (const [k, v] of b) if (a.get(k) !== v) changed.add(k);
  for (const k of a.keys()) if (!b.has(k)) changed.add(k);
  return changed;
}
