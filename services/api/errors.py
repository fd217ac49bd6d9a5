"""Every error mapped to one status and the original's envelope, in one place."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import falcon

from events.errors import EventSchemaError, UnknownEventType
from services.domain.errors import DartError, NotAuthenticated

log = logging.getLogger("dart.api")


def _body(message: str) -> dict[str, Any]:
    return {"results": "ERROR", "error_message": message}


def handle_dart_error(req: falcon.Request, resp: falcon.Response, exc: DartError, params: Any) -> None:
    resp.status = falcon.code_to_http_status(exc.status)
    body = _body(exc.message)
    if isinstance(exc, NotAuthenticated):
        # The original's 401 body, typo included, for scripts that look for it; plus our envelope.
        body = {"restults": "Error", "results": "ERROR",
                "error_message": f"DART was unable to authenticate your request: {exc.message}"}
        resp.set_header("WWW-Authenticate", 'Basic realm="dart"')
    resp.media = body


def handle_http_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError, params: Any) -> None:
    resp.status = exc.status
    message = exc.description or exc.title or str(exc.status)
    if isinstance(exc, falcon.MediaMalformedError):
        message = f"body: malformed JSON: {exc.description or ''}".rstrip(": ")
    resp.media = _body(message)
    headers = exc.headers or {}
    for name, value in headers.items() if isinstance(headers, Mapping) else headers:
        resp.set_header(name, value)


def handle_event_error(req: falcon.Request, resp: falcon.Response, exc: Exception, params: Any) -> None:
    resp.status = falcon.HTTP_400
    resp.media = _body(str(exc))


def handle_unexpected(req: falcon.Request, resp: falcon.Response, exc: Exception, params: Any) -> None:
    log.exception("unhandled error on %s %s", req.method, req.path)
    resp.status = falcon.HTTP_500
    resp.media = _body("internal error; the server log has the details")


def install(app: falcon.App) -> None:
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(falcon.HTTPError, handle_http_error)
    app.add_error_handler(DartError, handle_dart_error)
    app.add_error_handler(EventSchemaError, handle_event_error)
    app.add_error_handler(UnknownEventType, handle_event_error)
