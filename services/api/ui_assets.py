"""The web UI (services/ui, built by ./dart into services/ui/dist, package data): every GET outside ``/api/``
that no route answers is the single-page app, a built file when one exists under that path (hashed assets
cached for a year, other files revalidated), else index.html, so a deep link such as ``/datastore/<id>`` opens
the app at that page. The API keeps its routes and its JSON 404s: this is a sink, which falcon consults only
after every route has missed."""

from __future__ import annotations

import mimetypes
import os
import re
from pathlib import Path

import falcon

# Not /api/1/... (the API's own 404s stay JSON) and not the open probes, which are routes matched first anyway.
PREFIX = re.compile(r"^/(?!api(?:/|$))")
DEFAULT_DIST = Path(__file__).resolve().parent.parent / "ui" / "dist"
IMMUTABLE = "public, max-age=31536000, immutable"  # Vite's assets/ names carry a hash of their content
REVALIDATE = "no-cache"
NOT_BUILT = (b"<!doctype html><title>dart</title><p>The web UI is not built: run <code>./dart</code> once "
             b"(it builds services/ui), or <code>npm ci &amp;&amp; npm run build</code> in services/ui.</p>")


def ui_dist() -> Path:
    """Where the built UI is: ``DART_UI_DIST`` or the package's services/ui/dist."""
    return Path(os.environ.get("DART_UI_DIST") or DEFAULT_DIST)


class UiAssets:
    """The sink: ``GET``/``HEAD`` only (the app changes nothing without the API); no key needed, the app
    asks for one."""

    def __init__(self, dist: Path | None = None) -> None:
        self.dist = (dist or ui_dist()).resolve()

    def __call__(self, req: falcon.Request, resp: falcon.Response, **_: str) -> None:
        if req.method not in ("GET", "HEAD"):
            raise falcon.HTTPMethodNotAllowed(["GET", "HEAD"])
        relative = req.path.lstrip("/")
        found = self._file(relative) if relative else None
        if found is None:
            index = self.dist / "index.html"
            if not index.is_file():
                resp.status = falcon.HTTP_503
                resp.content_type = falcon.MEDIA_HTML
                resp.data = NOT_BUILT
                return
            if relative.startswith("assets/") or Path(relative).suffix in (".js", ".css", ".map", ".png", ".svg"):
                raise falcon.HTTPNotFound(description=f"no such file: /{relative}")  # a missing asset, not a page
            found = index
        resp.content_type = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        resp.cache_control = [IMMUTABLE if relative.startswith("assets/") and found.name != "index.html"
                              else REVALIDATE]
        resp.data = found.read_bytes()

    def _file(self, relative: str) -> Path | None:
        """The built file at ``relative``, never one outside the build folder."""
        candidate = (self.dist / relative).resolve()
        if not candidate.is_relative_to(self.dist) or not candidate.is_file():
            return None
        return candidate


def add_ui(app: falcon.App) -> None:
    app.add_sink(UiAssets(), PREFIX)
