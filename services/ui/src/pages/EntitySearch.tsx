import { useEffect, useState } from "react";
import { Link } from "react-router-dom";
import { results } from "../api";

type Found = { entity_type: string; entity_id: string; name: string };

/** The original graph's search box: entities whose id or name contains the text, each a link to its graph. */
export default function EntitySearch() {
  const [text, setText] = useState("");
  const [found, setFound] = useState<Found[]>([]);
  useEffect(() => {
    if (!text.trim()) {
      setFound([]);
      return;
    }
    let current = true;
    const timer = setTimeout(() => {
      results<Found[]>("/graph/entity_identifiers", { query: { search: text.trim() } })
        .then((list) => { if (current) setFound(list); }, () => { if (current) setFound([]); });
    }, 250);
    return () => { current = false; clearTimeout(timer); };
  }, [text]);
  return (
    <div className="entity-search">
      <label htmlFor="entity-search">Find an entity's graph</label>{" "}
      <input id="entity-search" type="search" value={text} onChange={(e) => setText(e.target.value)} placeholder="name or id" />
      {found.length > 0 && (
        <ul aria-label="Found">
          {found.map((f) => (
            <li key={`${f.entity_type}-${f.entity_id}`}>
              <Link to={`/graph/${f.entity_type}/${f.entity_id}`}>{f.entity_type}: {f.name}</Link> <span className="muted mono">{f.entity_id}</span>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
