import { useEffect, useRef } from "react";
import "swagger-ui-dist/swagger-ui.css";
import { authHeader } from "../api";

/** Swagger UI (bundled from npm) over /api/1/openapi.json; "Try it out" sends the signed-in key. */
export default function ApiDocs() {
  const target = useRef<HTMLDivElement>(null);
  useEffect(() => {
    let cancelled = false;
    import("swagger-ui-dist/swagger-ui-es-bundle.js").then((module) => {
      if (cancelled || !target.current) return;
      const SwaggerUIBundle = (module.default ?? module) as unknown as (options: Record<string, unknown>) => unknown;
      SwaggerUIBundle({
        domNode: target.current,
        url: "/api/1/openapi.json",
        deepLinking: false,
        defaultModelsExpandDepth: -1,
        requestInterceptor: (request: { headers: Record<string, string> }) => {
          Object.assign(request.headers, authHeader());
          return request;
        },
      });
    });
    return () => { cancelled = true; };
  }, []);
  return (
    <section>
      <h1>API docs</h1>
      <div ref={target} className="apidocs" />
    </section>
  );
}
