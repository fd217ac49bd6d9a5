// The entity kinds the UI shows: their API paths, list columns and how each is created.

export type Kind = {
  name: string; // as in the API and the UI's routes: /datastore/<id>
  title: string;
  path: string; // under /api/1
  columns: string[]; // data paths shown in lists (beside id and updated)
  create?: "plain" | "engine" | "trigger_type" | "workflow" | "subscription";
  least: "editor" | "admin"; // the role that may create and edit it
  orderable?: boolean; // the API takes order_by (actions only)
  graph?: boolean; // /graph/<kind>/<id> exists
  history?: boolean;
};

/** List columns holding times (shown as UTC times, not as the ISO strings). */
export const TIME_COLUMNS = new Set(["start_time", "end_time", "scheduled_time", "queued_time", "not_before"]);

export const KINDS: Kind[] = [
  { name: "engine", title: "Engines", path: "engine", columns: ["name", "description"], create: "plain", least: "admin" },
  { name: "dataset", title: "Datasets", path: "dataset", columns: ["name", "location"], create: "plain", least: "editor", graph: true },
  { name: "datastore", title: "Datastores", path: "datastore", columns: ["name", "engine_name", "state"], create: "engine", least: "editor", graph: true },
  { name: "action", title: "Actions", path: "action", columns: ["name", "action_type_name", "state", "workflow_instance_id"], least: "editor", orderable: true, graph: true },
  { name: "workflow", title: "Workflows", path: "workflow", columns: ["name", "state", "datastore_id"], create: "workflow", least: "editor", graph: true },
  { name: "workflow_instance", title: "Workflow instances", path: "workflow/instance", columns: ["workflow_id", "state", "trigger_type", "workflow_version", "definition_commit", "scheduled_time", "start_time", "end_time", "cancelled_by"], least: "editor" },
  { name: "trigger", title: "Triggers", path: "trigger", columns: ["name", "trigger_type_name", "state"], create: "trigger_type", least: "editor", graph: true },
  { name: "subscription", title: "Subscriptions", path: "subscription", columns: ["name", "dataset_id", "state"], create: "subscription", least: "editor", graph: true },
  { name: "event", title: "Events", path: "event", columns: ["name", "state"], create: "plain", least: "editor", graph: true },
];

export function kindOf(name: string | undefined): Kind | undefined {
  return KINDS.find((k) => k.name === name);
}

/** A dotted path's value in an object (``args.dataset_id``). */
export function pick(value: unknown, path: string): unknown {
  let at: unknown = value;
  for (const part of path.split(".")) {
    if (at === null || typeof at !== "object") return undefined;
    at = (at as Record<string, unknown>)[part];
  }
  return at;
}

/** The id fields whose values are links to another entity's page. */
export const REFERENCES: Record<string, string> = {
  datastore_id: "datastore",
  workflow_id: "workflow",
  workflow_instance_id: "workflow_instance",
  dataset_id: "dataset",
  subscription_id: "subscription",
  event_id: "event",
  completed_workflow_id: "workflow",
  workflow_datastore_id: "datastore",
  trigger_id: "trigger",
  retry_of: "action",
};

export const STATE_COLOURS: Record<string, string> = {
  ACTIVE: "#2e7d32",
  COMPLETED: "#2e7d32",
  RUNNING: "#1565c0",
  PENDING: "#6a1b9a",
  QUEUED: "#8e24aa",
  GENERATING: "#8e24aa",
  FAILED: "#c62828",
  INACTIVE: "#757575",
  HAS_NEVER_RUN: "#9e9e9e",
  SKIPPED: "#ef6c00",
  TEMPLATE: "#546e7a",
  DONE: "#455a64",
  UNSAVED: "#f9a825",
};

export function stateColour(state: unknown): string {
  return STATE_COLOURS[String(state ?? "")] ?? "#607d8b";
}
