"""One settings object, from the environment (``DART_*``) or a YAML file (``DART_CONFIG``), checked at start
so a bad value fails fast and by name."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml


class SettingsError(ValueError):
    """A setting that is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=lambda: Path.home() / ".dart")
    database_url: str = ""  # default: SQLite in ``home``
    broker_url: str = ""  # empty: embedded delivery (the store's catch-up subscription)
    aws_endpoint_url: str = ""
    aws_region: str = "us-east-1"
    ecs_cluster: str = ""  # empty: engines run as local processes and no task definitions are registered
    max_task_memory_mb: int = 4000  # the original's engine_task_definition_max_total_memory_mb
    s3_datastores_root: str = "s3://dart/datastores"
    host: str = "127.0.0.1"
    port: int = 5000
    bootstrap_api_key: str = ""
    log_format: str = "auto"  # auto | json | text
    local_engines: str = ""  # JSON: engine name -> command (argv list) for local engine processes
    stale_pending_seconds: float = 120.0
    scheduler_interval: float = 30.0  # the longest a scheduler sleeps between checks
    queue_prefix: str = "dart"  # queues are <prefix>-<consumer group>, <prefix>-inbox, <prefix>-out-<reader>
    outside_readers: str = ""  # JSON: reader name -> list of event types, or null for every event
    api_url: str = ""  # how engines reach the API; default http://<host>:<port>/api/1
    relay_poll_interval: float = 0.02  # the relay runs beside other writers: it polls the log this often
    sqs_visibility_timeout: int = 60  # seconds before a message whose worker died is delivered again
    poll_interval: float = 0.5
    # The scheduler's clock runs this many seconds ahead of (negative: behind) the wall clock: to rehearse a
    # schedule, and so end-to-end tests reach a scheduled time without waiting for it. 0 in production.
    clock_offset_seconds: float = 0.0
    s3_notification_queue: str = ""  # SQS queue (name or URL) of S3 ObjectCreated notifications; empty: none
    subscription_page_size: int = 1000  # keys per S3 list call during generation (1-1000)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'dart.db'}"

    @property
    def embedded(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


_ENV = {f.name: f"DART_{f.name.upper()}" for f in fields(Settings)}


def _coerce(name: str, raw: Any) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    try:
        if kind in ("int", int):
            value = int(raw)
            if name == "port" and not 0 < value < 65536:
                raise ValueError("must be 1..65535")
            return value
        if kind in ("float", float):
            value = float(raw)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError("must be a finite number")
            if value <= 0 and name != "clock_offset_seconds":
                raise ValueError("must be positive")
            return value
        if kind in ("Path", Path):
            return Path(str(raw)).expanduser()
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"setting {name} ({_ENV[name]}): {raw!r} is not valid: {exc}") from exc


def load_settings(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from a YAML file named by DART_CONFIG, then the environment, then ``overrides``."""
    env = dict(os.environ if env is None else env)
    values: dict[str, Any] = {}
    config_path = env.get("DART_CONFIG")
    if config_path:
        try:
            loaded = yaml.safe_load(Path(config_path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"DART_CONFIG {config_path!r} cannot be read: {exc}") from exc
        if not isinstance(loaded, dict):
            raise SettingsError(f"DART_CONFIG {config_path!r} must hold a mapping of settings")
        unknown = sorted(set(loaded) - set(_ENV))
        if unknown:
            raise SettingsError(f"DART_CONFIG {config_path!r} has unknown settings: {', '.join(unknown)}")
        values.update(loaded)
    for name, var in _ENV.items():
        if env.get(var):
            values[name] = env[var]
    values.update({k: v for k, v in overrides.items() if v is not None})
    settings = Settings(**{k: _coerce(k, v) for k, v in values.items()})
    if settings.log_format not in ("auto", "json", "text"):
        raise SettingsError(f"setting log_format (DART_LOG_FORMAT) must be auto, json or text, not {settings.log_format!r}")
    if not 1 <= settings.subscription_page_size <= 1000:
        raise SettingsError(f"setting subscription_page_size (DART_SUBSCRIPTION_PAGE_SIZE) must be 1..1000, "
                            f"not {settings.subscription_page_size}")
    url = settings.effective_database_url
    if not url.startswith(("sqlite:", "postgresql", "postgres:")):
        raise SettingsError(f"setting database_url (DART_DATABASE_URL) must be sqlite:/// or postgresql://, not {url!r}")
    return settings
