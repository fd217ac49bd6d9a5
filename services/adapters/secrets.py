"""The embedded secrets store: datastore args marked ``x-dart-secret`` live here, never in the log.

Values are kept by (name, version) in ``$DART_HOME/secrets``, encrypted with a key in ``$DART_HOME/secrets.key``
(both mode 0600). Production puts AWS Secrets Manager behind the same methods (secrets_manager.py).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

KEPT_VERSIONS = 2  # a rotation keeps the version before it, for a check-out that read the old reference


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

    def _save(self, values: dict[str, Any]) -> None:
        _write_private(self._path, self._fernet.encrypt(json.dumps(values).encode()))

    def put(self, name: str, value: Any, version: str | None = None) -> None:
        """Store ``value`` as ``version`` of ``name`` (again: the same value, idempotently). Without a version,
        the unversioned value of secrets written before versions existed."""
        with self._lock:
            values = self._load()
            if version is None:
                values[name] = value
            else:
                versions = values.get(_versioned(name)) or {}
                versions.pop(version, None)
                versions[version] = value  # newest last
                values[_versioned(name)] = dict(list(versions.items())[-KEPT_VERSIONS:])
            self._save(values)

    def get(self, name: str, version: str | None = None) -> Any:
        """The value of ``version`` of ``name``; without a version the newest (or the value of a secret written
        before versions existed); None if absent."""
        with self._lock:
            values = self._load()
        versions = values.get(_versioned(name)) or {}
        if version is None:
            return list(versions.values())[-1] if versions else values.get(name)
        return versions.get(version)

    def delete(self, name: str) -> None:
        """Forget every version of ``name``."""
        with self._lock:
            values = self._load()
            found = [values.pop(key, None) for key in (name, _versioned(name))]
            if any(v is not None for v in found):
                self._save(values)


def _versioned(name: str) -> str:
    return f"{name}#versions"


def _write_private(path: Path, content: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    os.replace(tmp, path)
