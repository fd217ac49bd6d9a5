"""The secrets store: datastore args marked ``x-dart-secret`` live here, never in the log.

Embedded mode keeps them in ``$DART_HOME/secrets`` encrypted with a key in ``$DART_HOME/secrets.key``
(both mode 0600). Production would put AWS Secrets Manager behind the same two methods.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet


class LocalSecrets:
    def __init__(self, home: Path) -> None:
        self._path = home / "secrets"
        self._key_path = home / "secrets.key"
        self._lock = threading.Lock()
        home.mkdir(parents=True, exist_ok=True)
        if not self._key_path.exists():
            _write_private(self._key_path, Fernet.generate_key())
        self._fernet = Fernet(self._key_path.read_bytes())

    def _load(self) -> dict[str, Any]:
        if not self._path.exists():
            return {}
        return json.loads(self._fernet.decrypt(self._path.read_bytes()))

    def put(self, name: str, value: Any) -> None:
        with self._lock:
            values = self._load()
            values[name] = value
            _write_private(self._path, self._fernet.encrypt(json.dumps(values).encode()))

    def get(self, name: str) -> Any:
        with self._lock:
            return self._load().get(name)


def _write_private(path: Path, content: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    os.replace(tmp, path)
