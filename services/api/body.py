"""Request bodies: a size limit (413, from Content-Length before reading, and while reading a chunked body) and
a JSON handler that refuses what the stores cannot hold or the code cannot walk (non-finite numbers, nesting
deeper than ``MAX_DEPTH``, lone surrogates), each a 400 naming the field."""

from __future__ import annotations

import io
import json
import math
from typing import Any

import falcon
from falcon.media import BaseHandler

from services.domain.errors import BadRequest

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# Far beyond any entity's shape; below the depth at which jsonschema, jsonpatch or deepcopy would recurse
# past Python's limit (a RecursionError is a 500).
MAX_DEPTH = 100


class _NonFinite:
    """Stands in, while parsing, for a number JSON cannot carry, so the walk can name its field."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _float(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)  # 1e999 reads as inf


def parse_json(text: str) -> Any:
    """``text`` parsed and checked (BadRequest naming the field); RecursionError on absurd nesting is a 400."""
    try:
        value = json.loads(text, parse_constant=_NonFinite, parse_float=_float)
    except RecursionError:
        raise BadRequest(f"body: JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise BadRequest(f"body: malformed JSON: {exc}") from None
    check_value(value)
    return value


def _name(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "body"


def _check_text(text: str, path: tuple[str | int, ...]) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{_name(path)}: contains a lone surrogate (\\ud800-\\udfff), which is not text") from None


def check_value(value: Any) -> None:
    """Walk a parsed body without recursion: depth, finite numbers, real text in keys and strings."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _NonFinite):
            raise BadRequest(f"{_name(path)}: {node.text} is not a finite number")
        if isinstance(node, str):
            _check_text(node, path)
            continue
        if not isinstance(node, dict | list):
            continue
        if len(path) >= MAX_DEPTH:
            raise BadRequest(f"{_name(path)}: JSON nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            for key, child in node.items():
                _check_text(key, path)
                stack.append((child, (*path, key)))
        else:
            stack.extend((child, (*path, index)) for index, child in enumerate(node))


class JsonBody(BaseHandler):
    """The JSON media handler for request bodies (responses keep falcon's)."""

    def deserialize(self, stream: Any, content_type: str | None, content_length: int | None) -> Any:
        data = stream.read()
        if not data:
            raise falcon.MediaNotFoundError("JSON")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequest(f"body: not UTF-8 ({exc.reason} at byte {exc.start})") from None
        return parse_json(text)


class BodyLimit:
    """Middleware: a body past ``max_bytes`` is a 413, known from Content-Length before anything is read; a
    chunked body (no Content-Length) is read here up to the limit, so no handler ever reads past it."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def _refuse(self) -> falcon.HTTPError:
        return falcon.HTTPContentTooLarge(
            description=f"body: larger than the limit of {self.max_bytes} bytes (DART_MAX_BODY_BYTES)")

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        length = req.content_length
        if length is not None:
            if length > self.max_bytes:
                raise self._refuse()
            return
        if "chunked" not in (req.get_header("Transfer-Encoding") or "").lower():
            return
        # The WSGI server has taken the chunking off; falcon's bounded stream would read nothing without a
        # Content-Length, so the body read here is handed on as if it had come with one.
        data = req.stream.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            raise self._refuse()
        req.stream = req.env["wsgi.input"] = io.BytesIO(data)
        req.env["CONTENT_LENGTH"] = str(len(data))
