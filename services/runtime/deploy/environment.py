"""The environment file of ``dart deploy -f env.yaml``: one YAML mapping validated by pydantic, so a wrong file
is refused with the field it is about (``network.task_subnets: ...``), never a traceback."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.runtime.settings import Settings

WORKERS = ("orchestrator", "launcher", "notifier", "inbox", "scheduler", "subscriptions")
# Fargate's valid task sizes: CPU units -> the memory (MiB) each allows.
FARGATE_MEMORY: dict[int, range] = {
    256: range(512, 2049, 512),
    512: range(1024, 4097, 1024),
    1024: range(2048, 8193, 1024),
    2048: range(4096, 16385, 1024),
    4096: range(8192, 30721, 1024),
}
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                      2922, 3288, 3653)
# Settings ``dart deploy`` sets itself on every process: the file's ``settings`` may not override them.
WIRED_SETTINGS = frozenset({
    "database_url", "broker_url", "aws_region", "aws_endpoint_url", "ecs_cluster", "secrets", "queue_prefix",
    "api_url", "bootstrap_api_key", "home", "host", "port", "outside_readers", "s3_notification_queue",
    "env_name", "log_format", "s3_datastores_root",
})


class DeployError(ValueError):
    """A wrong environment file or a failed deployment; the message names the field or the resource."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskSize(Strict):
    """One Fargate task's size."""

    cpu: int = 256
    memory: int = 512

    @model_validator(mode="after")
    def _fargate_size(self) -> TaskSize:
        allowed = FARGATE_MEMORY.get(self.cpu)
        if allowed is None:
            raise ValueError(f"cpu must be one of {', '.join(map(str, FARGATE_MEMORY))} (Fargate), not {self.cpu}")
        if self.memory not in allowed:
            raise ValueError(f"memory {self.memory} does not fit cpu {self.cpu} on Fargate: "
                             f"{allowed.start}-{allowed.stop - 1} MiB in steps of {allowed.step}")
        return self


class ServiceSize(TaskSize):
    count: Annotated[int, Field(ge=0, le=50)] = 1


class ApiService(ServiceSize):
    cpu: int = 512
    memory: int = 1024
    workers: Annotated[int, Field(ge=1, le=32)] = 2
    threads: Annotated[int, Field(ge=1, le=64)] = 8
    internal: bool = False  # an internal load balancer, reachable only inside the VPC
    certificate_arn: str = ""  # HTTPS on 443 with this ACM certificate; empty: HTTP on 80
    allowed_cidr: str = "0.0.0.0/0"  # who may reach the load balancer


class Network(Strict):
    """A VPC created by the stack (``vpc_cidr``), or an existing one (``vpc_id`` and its subnets)."""

    vpc_cidr: str = "10.80.0.0/16"
    vpc_id: str = ""
    public_subnets: list[str] = []  # the load balancer's (two or more, in different zones)
    task_subnets: list[str] = []  # dart's processes and its engines
    database_subnets: list[str] = []  # RDS (default: task_subnets)
    assign_public_ip: bool = False  # tasks in public subnets need it to pull the image (no NAT gateway)

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr_16(cls, value: str) -> str:
        if not re.fullmatch(r"10\.\d{1,3}\.0\.0/16", value):
            raise ValueError("must be a 10.x.0.0/16 block (the stack cuts four /20 subnets from it)")
        return value

    @field_validator("vpc_id")
    @classmethod
    def _vpc_id(cls, value: str) -> str:
        if value and not re.fullmatch(r"vpc-([0-9a-f]{8}|[0-9a-f]{17})", value):
            raise ValueError("must be a VPC id such as vpc-0123456789abcdef0")
        return value

    @field_validator("public_subnets", "task_subnets", "database_subnets")
    @classmethod
    def _subnet_ids(cls, value: list[str]) -> list[str]:
        for subnet in value:
            if not re.fullmatch(r"subnet-([0-9a-f]{8}|[0-9a-f]{17})", subnet):
                raise ValueError(f"{subnet!r} is not a subnet id such as subnet-0123456789abcdef0")
        return value

    @model_validator(mode="after")
    def _existing_needs_subnets(self) -> Network:
        if self.vpc_id:
            for field in ("public_subnets", "task_subnets"):
                if len(getattr(self, field)) < 2 and not (field == "task_subnets" and getattr(self, field)):
                    raise ValueError(f"{field}: an existing VPC (vpc_id) needs its subnets listed here"
                                     + (" (two or more, for the load balancer)" if field == "public_subnets" else ""))
            if len(self.database_subnets or self.task_subnets) < 2:
                raise ValueError("database_subnets: RDS needs two or more subnets in different zones")
        elif self.public_subnets or self.task_subnets or self.database_subnets:
            raise ValueError("subnets are given only with vpc_id (an existing VPC); without it the stack creates "
                             "the VPC and its subnets")
        return self

    @property
    def created(self) -> bool:
        return not self.vpc_id


class CreatedDatabase(Strict):
    instance_class: str = "db.t4g.micro"
    storage_gb: Annotated[int, Field(ge=20, le=65536)] = 20
    engine_version: str = "17.6"
    multi_az: bool = False
    backup_days: Annotated[int, Field(ge=0, le=35)] = 7

    @field_validator("instance_class")
    @classmethod
    def _db_class(cls, value: str) -> str:
        if not value.startswith("db."):
            raise ValueError("must be an RDS instance class such as db.t4g.micro")
        return value


class Database(Strict):
    """Exactly one of: ``create`` (an RDS PostgreSQL the stack owns), ``url_secret`` (an existing Secrets
    Manager secret whose value is the database URL), ``url`` (kept in a secret the stack creates)."""

    create: CreatedDatabase | None = None
    url_secret: str = ""
    url: str = Field(default="", repr=False)

    @model_validator(mode="before")
    @classmethod
    def _default_create(cls, data: Any) -> Any:
        if isinstance(data, dict) and not any(data.get(k) for k in ("create", "url_secret", "url")):
            return {**data, "create": data.get("create") or {}}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> Database:
        given = [k for k in ("create", "url_secret", "url") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of create, url_secret, url (given: {', '.join(given)})")
        if self.url and not self.url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            raise ValueError("url must be a postgresql:// URL")
        return self


class Environment(Strict):
    name: str
    region: str = "us-east-1"
    image: str
    network: Network = Network()
    database: Database = Database()
    api: ApiService = ApiService()
    relay: ServiceSize = ServiceSize()
    workers: dict[str, ServiceSize] = {}
    engines: dict[str, TaskSize] = {}  # per engine name, and "default"
    data_buckets: list[str] = []  # S3 buckets dart's engines and subscriptions work on
    s3_datastores_root: str = ""  # default s3://<first data bucket>/dart/datastores
    s3_notification_queue: str = ""  # an existing SQS queue of S3 ObjectCreated notifications
    # Task families (wildcards allowed) of engines registered through the API that the launcher may run,
    # beyond the built-in engines' own.
    extra_engine_families: list[str] = []
    outside_readers: dict[str, list[str] | None] = {}  # reader -> event types (null: every event)
    log_retention_days: int = 30
    # Where templates longer than CloudFormation's 51,200-byte body go; default dart-deploy-<account>-<region>,
    # created on first use.
    template_bucket: str = ""
    settings: dict[str, str | int | float | bool] = {}  # more dart settings for every process (smtp_host ...)
    tags: dict[str, str] = {}

    @field_validator("name")
    @classmethod
    def _stack_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,22}", value) or value.endswith("-"):
            raise ValueError("must be 1-23 lower-case letters, digits or '-', starting with a letter (it names the "
                             "stack, its queues and its task families)")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z]{2}(-gov)?-[a-z]+-\d", value):
            raise ValueError("must be an AWS region such as us-east-1")
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value):
            raise ValueError("must be an image URI such as 123456789012.dkr.ecr.us-east-1.amazonaws.com/dart:1.0")
        return value

    @field_validator("workers")
    @classmethod
    def _known_workers(cls, value: dict[str, ServiceSize]) -> dict[str, ServiceSize]:
        unknown = sorted(set(value) - set(WORKERS))
        if unknown:
            raise ValueError(f"unknown workers {', '.join(unknown)}; dart's workers are {', '.join(WORKERS)}")
        return value

    @field_validator("data_buckets")
    @classmethod
    def _bucket_names(cls, value: list[str]) -> list[str]:
        for bucket in value:
            if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
                raise ValueError(f"{bucket!r} is not an S3 bucket name")
        return value

    @field_validator("extra_engine_families")
    @classmethod
    def _families(cls, value: list[str]) -> list[str]:
        for family in value:
            if not re.fullmatch(r"[A-Za-z0-9_*-]{1,255}", family):
                raise ValueError(f"{family!r} is not an ECS task family (letters, digits, '-', '_', '*')")
        return value

    @field_validator("s3_datastores_root")
    @classmethod
    def _s3_url(cls, value: str) -> str:
        if value and not value.startswith("s3://"):
            raise ValueError("must be an s3:// URL")
        return value.rstrip("/")

    @field_validator("outside_readers")
    @classmethod
    def _reader_names(cls, value: dict[str, list[str] | None]) -> dict[str, list[str] | None]:
        for reader in value:
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", reader):
                raise ValueError(f"reader name {reader!r} must be 1-40 letters, digits, '-' or '_'")
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"must be one of CloudWatch's retention periods: {LOG_RETENTION_DAYS}")
        return value

    @field_validator("settings")
    @classmethod
    def _dart_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if name not in Settings.model_fields:
                raise ValueError(f"{name!r} is not a dart setting")
            if name in WIRED_SETTINGS:
                raise ValueError(f"{name!r} is set by dart deploy itself")
        return value

    def worker(self, name: str) -> ServiceSize:
        return self.workers.get(name) or ServiceSize()

    def engine_size(self, engine: str) -> TaskSize:
        return self.engines.get(engine) or self.engines.get("default") or TaskSize()

    @property
    def datastores_root(self) -> str:
        if self.s3_datastores_root:
            return self.s3_datastores_root
        return f"s3://{self.data_buckets[0]}/dart/datastores" if self.data_buckets else "s3://dart/datastores"

    @property
    def queue_prefix(self) -> str:
        return self.name

    @property
    def database_mode(self) -> Literal["create", "url_secret", "url"]:
        if self.database.create is not None:
            return "create"
        return "url_secret" if self.database.url_secret else "url"


def load_environment(path: str | Path) -> Environment:
    """The environment file at ``path``, validated; DeployError names the file and every wrong field."""
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise DeployError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise DeployError(f"{path}: is not YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise DeployError(f"{path}: must hold a mapping (name, image, network, database, ...)")
    try:
        return Environment.model_validate(loaded)
    except ValidationError as exc:
        raise DeployError(f"{path}: " + "; ".join(_problem(e) for e in exc.errors())) from None


def _problem(error: Any) -> str:
    field = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "is not a field of the environment file"
    return f"{field}: {message}"
