"""One settings object (pydantic-settings) that every process reads: ``DART_*`` variables over the YAML file
named by ``DART_CONFIG`` over the defaults, checked at start so a bad value fails fast and by name."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

PREFIX = "DART_"


class SettingsError(ValueError):
    """A setting that is missing or malformed; the message names it."""


Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Port = Annotated[int, Field(gt=0, lt=65536)]


class Settings(BaseSettings):
    """Every setting, named ``DART_<NAME>`` in the environment and ``<name>`` in the YAML file."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_ignore_empty=True, extra="forbid", frozen=True,
        coerce_numbers_to_str=True,  # ``queue_prefix: 2024`` in YAML is the string "2024"
    )

    home: Path = Field(default_factory=lambda: Path.home() / ".dart")
    database_url: str = ""  # default: SQLite in ``home``
    broker_url: str = ""  # empty: embedded delivery (the store's catch-up subscription)
    aws_endpoint_url: str = ""
    aws_region: str = "us-east-1"
    ecs_cluster: str = ""  # empty: engines run as local processes and no task definitions are registered
    # How engine tasks are started (the ECS launcher): Fargate needs the awsvpc network's subnets (and security
    # groups); comma-separated ids.
    ecs_launch_type: Literal["FARGATE", "EC2"] = "FARGATE"
    ecs_subnets: str = ""
    ecs_security_groups: str = ""
    ecs_assign_public_ip: bool = False
    ecs_platform_version: str = ""
    max_task_memory_mb: int = 4000  # the original's engine_task_definition_max_total_memory_mb
    s3_datastores_root: str = "s3://dart/datastores"
    host: str = "127.0.0.1"
    port: Port = 5000
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024  # a larger request body is a 413
    read_timeout_seconds: Annotated[int, Field(ge=1)] = 30  # dart up closes a connection silent this long
    bootstrap_api_key: str = Field(default="", repr=False)
    log_format: Literal["auto", "json", "text"] = "auto"
    # OpenTelemetry traces over OTLP/HTTP (issue 15): the collector's base URL (spans go to <url>/v1/traces).
    # Empty: the standard OTEL_EXPORTER_OTLP_ENDPOINT if set, else no tracing at all.
    otel_exporter_otlp_endpoint: str = ""
    # JSON: engine name -> command (argv list) or {"module": ..., "args": [...]} (an SDK engine module, forked
    # warm) for local engine processes
    local_engines: str = ""
    # Variables of dart's own environment a local engine also gets (comma-separated names), beyond PATH, its
    # DART_* action variables and the AWS ones; nothing else of dart's environment reaches an engine.
    local_engine_env: Annotated[tuple[str, ...], NoDecode] = ()
    # Built-in (SDK-based) local engines are forked from a warm parent per engine type, not started as a new
    # interpreter (issue 16); off: every engine process starts cold. DART_LOCAL_ENGINES commands start cold.
    local_engines_warm: bool = True
    # Engines (comma-separated names) whose actions go to warm engine workers (`dart engine-worker --engine
    # NAME`) on the broker instead of an ECS task each (production, issue 16).
    warm_worker_engines: str = ""
    # Where datastores' secret args are kept: "aws" (AWS Secrets Manager at aws_endpoint_url) or "local" (an
    # encrypted file in home); empty: aws when ecs_cluster is set (production), else local.
    secrets: Literal["", "local", "aws"] = ""
    stale_pending_seconds: Seconds = 120.0
    # Between SIGTERM and SIGKILL when dart stops a local engine (a cancel, a timeout).
    engine_stop_grace_seconds: Seconds = 10.0
    # Local engines' output is kept in home/logs/actions; "on" also uploads it to the datastore's s3_logs_path
    # when the action ends ("auto": on in production, i.e. with ecs_cluster set).
    action_logs_s3: Literal["auto", "on", "off"] = "auto"
    scheduler_interval: Seconds = 30.0  # the longest a scheduler sleeps between checks
    queue_prefix: str = "dart"  # queues are <prefix>-<consumer group>, <prefix>-inbox, <prefix>-out-<reader>
    outside_readers: str = ""  # JSON: reader name -> list of event types, or null for every event
    api_url: str = ""  # how engines reach the API; default http://<host>:<port>/api/1
    relay_poll_interval: Seconds = 0.02  # the relay runs beside other writers: it polls the log this often
    sqs_visibility_timeout: int = 60  # seconds before a message whose worker died is delivered again
    poll_interval: Seconds = 0.5
    # The scheduler's clock runs this many seconds ahead of (negative: behind) the wall clock: to rehearse a
    # schedule, and so end-to-end tests reach a scheduled time without waiting for it. 0 in production.
    clock_offset_seconds: Annotated[float, Field(allow_inf_nan=False)] = 0.0
    s3_notification_queue: str = ""  # SQS queue (name or URL) of S3 ObjectCreated notifications; empty: none
    subscription_page_size: Annotated[int, Field(ge=1, le=1000)] = 1000  # keys per S3 list call

    # E-mail notifications (reference §14): no SMTP host, no mail (the notifier logs what it would send).
    smtp_host: str = ""
    smtp_port: Port = 25
    smtp_from: str = "dart@localhost"
    smtp_username: str = ""
    smtp_password: str = Field(default="", repr=False)
    smtp_starttls: bool = False
    smtp_timeout: Seconds = 10.0
    env_name: str = "local"  # in every subject: "[env_name] dart: ..."
    # Copied on every failure mail; comma-separated in the environment, a list or that string in YAML.
    email_cc_on_error: Annotated[tuple[str, ...], NoDecode] = ()
    email_base_url: str = ""  # prefixed to the API paths in bodies, e.g. https://dart.example.com
    email_max_age_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 86400.0  # older: no mail; 0: no limit

    @field_validator("home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite:", "postgresql", "postgres:")):
            raise ValueError("must be sqlite:/// or postgresql://")
        return value

    @field_validator("email_cc_on_error", mode="before")
    @classmethod
    def _address_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, (list, tuple)):
            return tuple(str(a).strip() for a in value if str(a).strip())
        return value

    @field_validator("local_engines")
    @classmethod
    def _engine_commands(cls, value: str) -> str:
        from services.adapters.local_engines import local_engine_entries

        local_engine_entries(value)  # a clear error at start, naming the engine, not at its first launch
        return value

    @field_validator("local_engine_env", mode="before")
    @classmethod
    def _name_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, (list, tuple)):
            return tuple(str(a).strip() for a in value if str(a).strip())
        return value

    @property
    def secrets_store(self) -> str:
        """Where secret args are kept: ``secrets``, or its default for this deployment."""
        return self.secrets or ("aws" if self.ecs_cluster else "local")

    @field_validator("email_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def uploads_action_logs(self) -> bool:
        return self.action_logs_s3 == "on" or (self.action_logs_s3 == "auto" and bool(self.ecs_cluster))

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'dart.db'}"

    @property
    def embedded(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest first: what the code passes, then the environment, then the YAML file; no .env, no secrets dir.
        return init_settings, env_settings, YamlFileSource(settings_cls, os.environ.get("DART_CONFIG"))


def variable(name: str) -> str:
    """The environment variable of a setting: ``smtp_port`` -> ``DART_SMTP_PORT``."""
    return f"{PREFIX}{name.upper()}"


class EnvironmentSource(EnvSettingsSource):
    """``DART_*`` variables from a given mapping instead of ``os.environ`` (a test's or a benchmark's)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.env_vars = {k.lower(): v for k, v in environ.items() if v != ""}  # env_ignore_empty, case-blind


class YamlFileSource(PydanticBaseSettingsSource):
    """The YAML file named by ``DART_CONFIG``: a mapping of setting names; a key that names no setting is
    refused by name rather than ignored, so a typo cannot silently leave a default in force."""

    def __init__(self, settings_cls: type[BaseSettings], path: str | None) -> None:
        super().__init__(settings_cls)
        self.values = self._read(path) if path else {}

    def _read(self, path: str) -> dict[str, Any]:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"DART_CONFIG {path!r} cannot be read: {exc}") from exc
        if not isinstance(loaded, dict):
            raise SettingsError(f"DART_CONFIG {path!r} must hold a mapping of settings")
        unknown = sorted(str(k) for k in set(loaded) - set(self.settings_cls.model_fields))
        if unknown:
            raise SettingsError(f"DART_CONFIG {path!r} has unknown settings: {', '.join(unknown)}")
        return {k: v for k, v in loaded.items() if v is not None}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from ``overrides`` (None means unset), then ``env`` (default ``os.environ``), then the YAML
    file its DART_CONFIG names. A bad value raises SettingsError naming the setting and its variable."""
    environ = os.environ if env is None else env
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        sources = (InitSettingsSource(Settings, given), EnvironmentSource(Settings, environ),
                   YamlFileSource(Settings, environ.get("DART_CONFIG")))
        # mypy sees only the fields in the generated __init__, not BaseSettings' own keyword arguments.
        return Settings(_build_sources=(sources, given))  # type: ignore[call-arg]
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "?"
        shown = "" if name in ("smtp_password", "bootstrap_api_key") else f"{error.get('input')!r} "
        problems.append(f"setting {name} ({variable(name)}): {shown}is not valid: {error['msg']}")
    return "; ".join(problems)
