import { useState, type FormEvent } from "react";
import { useNavigate } from "react-router-dom";
import { results, type Entity } from "../api";
import EntityForm from "./EntityForm";
import { ErrorBox } from "./common";

/** Guess a dataset from the first object under an S3 prefix, edit the proposal, save it. */
export default function GuessPage() {
  const navigate = useNavigate();
  const [s3Path, setS3Path] = useState("");
  const [maxLines, setMaxLines] = useState("");
  const [guess, setGuess] = useState<Record<string, unknown> | null>(null);
  const [schema, setSchema] = useState<Record<string, unknown> | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const [found, datasetSchema] = await Promise.all([
        results<{ data: Record<string, unknown> }>("/dataset/guess", { query: { s3_path: s3Path, max_lines: maxLines || undefined } }),
        schema ? Promise.resolve(schema) : results<Record<string, unknown>>("/schema/dataset"),
      ]);
      setSchema(datasetSchema);
      setGuess(found.data);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section>
      <h1>Guess a dataset</h1>
      <form onSubmit={submit} className="filters inline">
        <label htmlFor="s3-path">S3 prefix</label>
        <input id="s3-path" value={s3Path} onChange={(e) => setS3Path(e.target.value)} placeholder="s3://bucket/prefix/" required />
        <label htmlFor="max-lines">Lines to read</label>
        <input id="max-lines" type="number" min={1} value={maxLines} onChange={(e) => setMaxLines(e.target.value)} />
        <button type="submit" disabled={busy}>Guess</button>
      </form>
      <ErrorBox error={error} />
      {guess && schema && (
        <EntityForm key={JSON.stringify(guess)} schema={schema} data={guess} creating submitLabel="Save dataset"
          onSubmit={async (data) => {
            const created = await results<Entity>("/dataset", { method: "POST", body: { data } });
            navigate(`/dataset/${created.id}`);
          }} />
      )}
    </section>
  );
}
