"""``GET /whoami``: the calling key's user and role, so a client (the web UI, services/ui) offers only what
that key may do without trying each thing and reading refusals."""

from __future__ import annotations

import falcon

from services.api.resources import who


class WhoAmI:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        principal = who(req)
        resp.media = {"results": {"key": principal.key, "user_id": principal.user_id, "role": principal.role}}
