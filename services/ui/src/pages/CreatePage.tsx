import { useEffect, useState } from "react";
import { useNavigate, useParams, useSearchParams } from "react-router-dom";
import { call, results, type Entity, type Page } from "../api";
import { kindOf } from "../entities";
import EntityForm from "./EntityForm";
import { ErrorBox } from "./common";

type Choice = { value: string; label: string };

/** Creating an entity: for a datastore the engine comes first (its options shape the form), for a trigger its
 * type, for a workflow its datastore, for a subscription its dataset. */
export default function CreatePage() {
  const { kind: kindName } = useParams();
  const kind = kindOf(kindName);
  const navigate = useNavigate();
  const [params, setParams] = useSearchParams();
  const [choices, setChoices] = useState<Choice[] | null>(null);
  const [schema, setSchema] = useState<Record<string, unknown> | null>(null);
  const [error, setError] = useState<unknown>(null);
  const choiceParam = { engine: "engine_name", trigger_type: "trigger_type_name", workflow: "datastore_id", subscription: "dataset_id", plain: "" }[kind?.create ?? "plain"];
  const chosen = choiceParam ? params.get(choiceParam) : null;

  useEffect(() => {
    if (!kind?.create || kind.create === "plain") return;
    const load = async () => {
      if (kind.create === "engine") {
        const page = await call<Page<Entity>>("/engine", { query: { limit: 100 } });
        return page.results.map((e) => ({ value: String(e.data.name), label: String(e.data.name) }));
      }
      if (kind.create === "trigger_type") {
        const types = await results<{ name: string; description: string }[]>("/trigger_type", { query: { limit: 100 } });
        return types.filter((t) => t.name !== "retry").map((t) => ({ value: t.name, label: `${t.name}: ${t.description}` }));
      }
      const path = kind.create === "workflow" ? "/datastore" : "/dataset";
      const page = await call<Page<Entity>>(path, { query: { limit: 100 } });
      return page.results.map((e) => ({ value: e.id, label: `${e.data.name} (${e.id})` }));
    };
    load().then(setChoices, setError);
  }, [kind]);

  useEffect(() => {
    if (!kind) return;
    setSchema(null);
    let path = `/schema/${kind.name === "workflow_instance" ? "workflow/instance" : kind.name}`;
    const query: Record<string, string> = {};
    if (kind.create === "engine") {
      if (!chosen) return;
      path = `/schema/engine/${chosen}/datastore`;
    } else if (kind.create === "trigger_type") {
      if (!chosen) return;
      query.trigger_type_name = chosen;
    } else if (kind.create !== "plain" && !chosen) {
      return;
    }
    results<Record<string, unknown>>(path, { query }).then(setSchema, setError);
  }, [kind, chosen]);

  if (!kind?.create) return <p>{kind ? `A ${kind.name} is not created on its own.` : "No such page."}</p>;

  const initial: Record<string, unknown> = {};
  if (kind.create === "engine" && chosen) initial.engine_name = chosen;
  if (kind.create === "trigger_type" && chosen) initial.trigger_type_name = chosen;

  const save = async (data: Record<string, unknown>) => {
    let path = `/${kind.path}`;
    if (kind.create === "workflow") path = `/datastore/${chosen}/workflow`;
    if (kind.create === "subscription") path = `/dataset/${chosen}/subscription`;
    const created = await results<Entity>(path, { method: "POST", body: { data } });
    navigate(`/${kind.name}/${created.id}`);
  };

  const labels = { engine: "Engine", trigger_type: "Trigger type", workflow: "Datastore", subscription: "Dataset", plain: "" };
  return (
    <section>
      <h1>New {kind.name}</h1>
      <ErrorBox error={error} />
      {choiceParam && (
        <p>
          <label htmlFor="choice">{labels[kind.create]}</label>{" "}
          <select id="choice" value={chosen ?? ""} onChange={(e) => setParams({ [choiceParam]: e.target.value })}>
            <option value="">choose…</option>
            {choices?.map((c) => <option key={c.value} value={c.value}>{c.label}</option>)}
          </select>
        </p>
      )}
      {schema && <EntityForm key={chosen ?? "plain"} schema={schema} data={initial} creating submitLabel="Save" onSubmit={save} />}
    </section>
  );
}
