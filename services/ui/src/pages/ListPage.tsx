import { useCallback, useEffect, useState, type FormEvent } from "react";
import { Link, useParams, useSearchParams } from "react-router-dom";
import { call, may, type Entity, type Page } from "../api";
import { kindOf, pick, TIME_COLUMNS } from "../entities";
import { useSession } from "../session";
import { useLiveReload } from "../useLive";
import { ErrorBox, Value, when } from "./common";

const LIMIT = 20;

export default function ListPage() {
  const { kind: kindName } = useParams();
  const kind = kindOf(kindName);
  const session = useSession();
  const [params, setParams] = useSearchParams();
  const offset = Number(params.get("offset") ?? 0) || 0;
  const filters = params.get("filters") ?? "";
  const orderBy = params.get("order_by") ?? "";
  const [page, setPage] = useState<Page<Entity> | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [draft, setDraft] = useState(filters ? (JSON.parse(filters) as string[]).join("\n") : "");

  const load = useCallback(async () => {
    if (!kind) return;
    try {
      const query: Record<string, string | number> = { limit: LIMIT, offset };
      if (filters) query.filters = filters;
      if (orderBy && kind.orderable) query.order_by = orderBy;
      setPage(await call<Page<Entity>>(`/${kind.path}`, { query }));
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [kind, offset, filters, orderBy]);

  useEffect(() => { void load(); }, [load]);
  useLiveReload(kind ? { prefix: `${kind.name}-` } : null, load);

  if (!kind) return <p>No such page.</p>;

  const applyFilters = (e: FormEvent) => {
    e.preventDefault();
    const list = draft.split("\n").map((l) => l.trim()).filter(Boolean);
    const next = new URLSearchParams(params);
    if (list.length) next.set("filters", JSON.stringify(list));
    else next.delete("filters");
    next.delete("offset");
    setParams(next);
  };
  const go = (to: number) => {
    const next = new URLSearchParams(params);
    next.set("offset", String(Math.max(0, to)));
    setParams(next);
  };
  const sortBy = (column: string) => {
    const next = new URLSearchParams(params);
    const current = orderBy ? (JSON.parse(orderBy) as string[])[0] : "";
    next.set("order_by", JSON.stringify([`${column} ${current === `${column} ASC` ? "DESC" : "ASC"}`]));
    next.delete("offset");
    setParams(next);
  };
  const sortMark = (column: string) => {
    const current = orderBy ? (JSON.parse(orderBy) as string[])[0] : "";
    return current === `${column} ASC` ? " ▲" : current === `${column} DESC` ? " ▼" : "";
  };
  const total = page?.total ?? 0;

  return (
    <section>
      <div className="heading">
        <h1>{kind.title}</h1>
        {kind.create && may(session.role, kind.least) && (
          <Link className="button" to={`/${kind.name}/new`}>New {kind.name}</Link>
        )}
      </div>
      <form className="filters" onSubmit={applyFilters}>
        <label htmlFor="filters">Filters (one a line: <code>state = ACTIVE</code>, <code>name ~ demo</code>,
          <code>tags = x</code>; operators = != &lt; &lt;= &gt; &gt;= IN LIKE NOT_LIKE ~)</label>
        <textarea id="filters" rows={2} value={draft} onChange={(e) => setDraft(e.target.value)} />
        <button type="submit">Apply</button>
      </form>
      <ErrorBox error={error} />
      <table className="list" aria-label={kind.title}>
        <thead>
          <tr>
            <th scope="col">id</th>
            {kind.columns.map((c) => (
              <th scope="col" key={c}>
                {kind.orderable ? <button type="button" className="link" onClick={() => sortBy(c)}>{c}{sortMark(c)}</button> : c}
              </th>
            ))}
            {kind.name === "action" && <th scope="col">logs</th>}
            <th scope="col">
              {kind.orderable ? <button type="button" className="link" onClick={() => sortBy("updated")}>updated{sortMark("updated")}</button> : "updated"}
            </th>
          </tr>
        </thead>
        <tbody>
          {page?.results.map((row) => (
            <tr key={row.id}>
              <td><Link to={`/${kind.name}/${row.id}`}>{row.id}</Link></td>
              {kind.columns.map((c) => (
                <td key={c}>{TIME_COLUMNS.has(c) ? when(pick(row.data, c)) : <Value field={c} value={pick(row.data, c)} />}</td>
              ))}
              {kind.name === "action" && <td>{row.data.state !== "TEMPLATE" && <Link to={`/action/${row.id}#logs`} aria-label={`logs of ${row.id}`}>logs</Link>}</td>}
              <td>{when(row.updated)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {page && page.results.length === 0 && <p className="muted">Nothing here{filters ? " with these filters" : ""}.</p>}
      <nav className="pager" aria-label="Pages">
        <button type="button" disabled={offset === 0} onClick={() => go(offset - LIMIT)}>Previous</button>
        <span>{total ? `${offset + 1}–${Math.min(offset + LIMIT, total)} of ${total}` : "0"}</span>
        <button type="button" disabled={offset + LIMIT >= total} onClick={() => go(offset + LIMIT)}>Next</button>
      </nav>
    </section>
  );
}
