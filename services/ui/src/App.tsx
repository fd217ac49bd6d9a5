import { lazy, Suspense, useEffect, useState, type FormEvent } from "react";
import { Link, NavLink, Route, Routes } from "react-router-dom";
import { ApiError, detectRole, may, storedKey, storeKey } from "./api";
import { setLogAccess, stopFollowing } from "./live";
import { KINDS } from "./entities";
import { SessionContext, useSession, type Session } from "./session";
import ListPage from "./pages/ListPage";
import DetailPage from "./pages/DetailPage";
import CreatePage from "./pages/CreatePage";
import LogPage from "./pages/LogPage";
import EntitySearch from "./pages/EntitySearch";
import GuessPage from "./pages/GuessPage";

const GraphPage = lazy(() => import("./pages/GraphPage"));
const ApiDocs = lazy(() => import("./pages/ApiDocs"));

export function SignIn({ onSignedIn, error }: { onSignedIn: (key: string) => void; error?: string }) {
  const [key, setKey] = useState("");
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (key.trim()) onSignedIn(key.trim());
  };
  return (
    <main className="signin">
      <h1>dart</h1>
      <form onSubmit={submit}>
        <label htmlFor="api-key">API key</label>
        <input id="api-key" type="password" autoComplete="off" placeholder="key:secret" value={key}
          onChange={(e) => setKey(e.target.value)} autoFocus />
        <button type="submit">Sign in</button>
        {error && <p role="alert" className="error">{error}</p>}
        <p className="hint">The key is kept for this tab only (sessionStorage). <code>dart up</code> prints the
          admin key on its first start.</p>
      </form>
    </main>
  );
}

function Home() {
  const session = useSession();
  return (
    <section>
      <h1>dart</h1>
      <p>Signed in as <strong>{session.user}</strong> with role <strong>{session.role}</strong>.</p>
      <ul className="tiles">
        {KINDS.map((k) => (
          <li key={k.name}><Link to={`/${k.name}`}>{k.title}</Link></li>
        ))}
        <li><Link to="/log">Log</Link></li>
        <li><Link to="/apidocs">API docs</Link></li>
      </ul>
      <EntitySearch />
      <p>The seed demo: <Link to="/datastore">Datastores</Link> → create a <code>no_op_engine</code> datastore →
        its graph → Add › no_op_engine › workflow chaining demo → Save → open the first workflow → Run.</p>
    </section>
  );
}

export default function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [error, setError] = useState<string>();
  const [checking, setChecking] = useState<boolean>(!!storedKey());

  const signIn = async (key: string) => {
    setError(undefined);
    setChecking(true);
    try {
      const { role, user } = await detectRole(key);
      storeKey(key);
      setLogAccess(role === "admin");
      const next: Session = { key, role, user, signOut: () => { storeKey(null); stopFollowing(); setSession(null); } };
      setSession(next);
    } catch (e) {
      storeKey(null);
      setError(e instanceof ApiError && e.status === 401 ? "That key or secret is not valid." : String(e instanceof Error ? e.message : e));
    } finally {
      setChecking(false);
    }
  };

  useEffect(() => {
    const key = storedKey();
    if (key) void signIn(key);
  }, []);

  if (!session) {
    if (checking) return <p className="loading">Signing in…</p>;
    return <SignIn onSignedIn={(k) => void signIn(k)} error={error} />;
  }
  return (
    <SessionContext.Provider value={session}>
      <a className="skip" href="#content">Skip to content</a>
      <header className="top">
        <Link to="/" className="brand">dart</Link>
        <nav aria-label="Entities">
          {KINDS.map((k) => (
            <NavLink key={k.name} to={`/${k.name}`}>{k.title}</NavLink>
          ))}
          {may(session.role, "admin") && <NavLink to="/log">Log</NavLink>}
          {may(session.role, "editor") && <NavLink to="/dataset/guess">Guess a dataset</NavLink>}
          <NavLink to="/apidocs">API docs</NavLink>
        </nav>
        <span className="who">{session.user} ({session.role})
          <button type="button" onClick={session.signOut}>Sign out</button></span>
      </header>
      <main id="content">
        <Suspense fallback={<p className="loading">Loading…</p>}>
        <Routes>
          <Route path="/" element={<Home />} />
          <Route path="/log" element={<LogPage />} />
          <Route path="/apidocs" element={<ApiDocs />} />
          <Route path="/dataset/guess" element={<GuessPage />} />
          <Route path="/graph/:kind/:id" element={<GraphPage />} />
          <Route path="/:kind" element={<ListPage />} />
          <Route path="/:kind/new" element={<CreatePage />} />
          <Route path="/:kind/:id" element={<DetailPage />} />
          <Route path="*" element={<p>No such page.</p>} />
        </Routes>
        </Suspense>
      </main>
    </SessionContext.Provider>
  );
}
