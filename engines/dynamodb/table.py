"""The DynamoDB hook: the client from the engine's environment (``aws_endpoint("dynamodb")``, so `dart up`'s
local engines reach moto or the sandbox), and one table's life: create, delete, its key schema, its write
capacity changed and waited for, and the capacity a load must restore kept in a tag on the table itself."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from engines.data.s3 import aws_endpoint, aws_region

log = logging.getLogger("dart.engine.dynamodb")
# The write capacity a load found before it raised it. A tag, not the action: a killed load's re-run is another
# action, and it must still put the table back where the first one found it.
RESTORE_TAG = "dart:restore_write_capacity_units"
WAIT_SECONDS = 600.0  # how long a table may stay CREATING, UPDATING or DELETING
POLL_SECONDS = 1.0


class TableError(RuntimeError):
    """A DynamoDB call on the table failed; the message names the table and DynamoDB's own reason."""


def client(max_pool_connections: int = 10, validate: bool = True) -> Any:
    """A DynamoDB client from the standard boto3 chain. botocore retries throttling and 5xx itself (standard
    mode); UnprocessedItems are the writer's to retry. ``validate=False`` skips botocore's walk over every
    parameter, for the writer's requests, which attributes.py builds well-formed (a fifth of the load's CPU)."""
    return boto3.client("dynamodb", endpoint_url=aws_endpoint("dynamodb"), region_name=aws_region(),
                        config=Config(max_pool_connections=max_pool_connections, parameter_validation=validate,
                                      retries={"max_attempts": 8, "mode": "standard"}))


def reason(exc: ClientError) -> str:
    error = exc.response.get("Error") or {}
    return f"{error.get('Code') or 'error'}: {error.get('Message') or exc}"


def error_code(exc: ClientError) -> str:
    return str((exc.response.get("Error") or {}).get("Code") or "")


@dataclass(frozen=True)
class Capacity:
    """The table's billing and throughput as DescribeTable gives them."""

    provisioned: bool
    read: int
    write: int


class Table:
    """One DynamoDB table by name."""

    def __init__(self, dynamodb: Any, name: str, sleep: Callable[[float], None] = time.sleep,
                 poll_seconds: float = POLL_SECONDS) -> None:
        self.dynamodb, self.name, self.sleep, self.poll_seconds = dynamodb, name, sleep, poll_seconds

    def describe(self) -> dict[str, Any] | None:
        """DescribeTable's ``Table``, or None when there is no such table."""
        try:
            return dict(self.dynamodb.describe_table(TableName=self.name)["Table"])
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise TableError(f'cannot describe DynamoDB table "{self.name}": {reason(exc)}') from exc

    def require(self) -> dict[str, Any]:
        found = self.describe()
        if found is None:
            raise TableError(f'DynamoDB table "{self.name}" does not exist (create_table creates it)')
        return found

    def create(self, key_types: dict[str, str], read: int, write: int) -> bool:
        """Create the table with the key (hash first) and capacity, and wait until it is ACTIVE; False when a table
        of that name and key already exists (a re-run), a failure when its key differs."""
        existing = self.describe()
        if existing is not None:
            found = key_types_of(existing)
            if found != key_types:
                raise TableError(f'DynamoDB table "{self.name}" already exists with key {_key_text(found)}, not '
                                 f"{_key_text(key_types)}")
            log.info("table %s already exists with the same key", self.name)
            self.wait(lambda t: t is not None and t["TableStatus"] == "ACTIVE", "ACTIVE")
            return False
        schema = [{"AttributeName": name, "KeyType": kind}
                  for name, kind in zip(key_types, ("HASH", "RANGE"))]
        definitions = [{"AttributeName": name, "AttributeType": kind} for name, kind in key_types.items()]
        try:
            self.dynamodb.create_table(TableName=self.name, KeySchema=schema, AttributeDefinitions=definitions,
                                       ProvisionedThroughput={"ReadCapacityUnits": read,
                                                              "WriteCapacityUnits": write})
        except ClientError as exc:
            raise TableError(f'cannot create DynamoDB table "{self.name}": {reason(exc)}') from exc
        self.wait(lambda t: t is not None and t["TableStatus"] == "ACTIVE", "ACTIVE")
        return True

    def delete(self) -> bool:
        """Delete the table and wait until it is gone; False when there was none (a re-run)."""
        try:
            self.dynamodb.delete_table(TableName=self.name)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return False
            raise TableError(f'cannot delete DynamoDB table "{self.name}": {reason(exc)}') from exc
        self.wait(lambda t: t is None, "deleted")
        return True

    def capacity(self, description: dict[str, Any] | None = None) -> Capacity:
        table = description or self.require()
        mode = (table.get("BillingModeSummary") or {}).get("BillingMode") or "PROVISIONED"
        throughput = table.get("ProvisionedThroughput") or {}
        return Capacity(mode == "PROVISIONED", int(throughput.get("ReadCapacityUnits") or 0),
                        int(throughput.get("WriteCapacityUnits") or 0))

    def set_write_capacity(self, units: int) -> None:
        """Change the write capacity (the read capacity kept) and wait until the table is ACTIVE again."""
        current = self.capacity()
        if current.write == units:
            return
        log.info("table %s: write capacity %d -> %d", self.name, current.write, units)
        try:
            self.dynamodb.update_table(TableName=self.name, ProvisionedThroughput={
                "ReadCapacityUnits": current.read, "WriteCapacityUnits": units})
        except ClientError as exc:
            raise TableError(f'cannot set the write capacity of DynamoDB table "{self.name}" to {units}: '
                             f"{reason(exc)}") from exc
        self.wait(lambda t: t is not None and t["TableStatus"] == "ACTIVE", "ACTIVE")

    def restore_tag(self, arn: str) -> int | None:
        """The write capacity an earlier load promised to restore (its run was killed), if any."""
        try:
            tags = self.dynamodb.list_tags_of_resource(ResourceArn=arn).get("Tags") or []
        except ClientError as exc:
            raise TableError(f'cannot read the tags of DynamoDB table "{self.name}": {reason(exc)}') from exc
        found = [t["Value"] for t in tags if t["Key"] == RESTORE_TAG]
        return int(found[0]) if found and found[0].isdigit() else None

    def tag_restore(self, arn: str, units: int | None) -> None:
        """Record (or, with None, forget) the write capacity to restore after the load."""
        try:
            if units is None:
                self.dynamodb.untag_resource(ResourceArn=arn, TagKeys=[RESTORE_TAG])
            else:
                self.dynamodb.tag_resource(ResourceArn=arn, Tags=[{"Key": RESTORE_TAG, "Value": str(units)}])
        except ClientError as exc:
            raise TableError(f'cannot tag DynamoDB table "{self.name}": {reason(exc)}') from exc

    def wait(self, done: Callable[[dict[str, Any] | None], bool], what: str,
             timeout: float = WAIT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while not done(self.describe()):
            if time.monotonic() > deadline:
                raise TableError(f'DynamoDB table "{self.name}" was not {what} after {timeout:.0f} s')
            self.sleep(self.poll_seconds)


def key_types_of(table: dict[str, Any]) -> dict[str, str]:
    """The table's key attributes, hash first, with their types (S, N or B)."""
    types = {d["AttributeName"]: d["AttributeType"] for d in table.get("AttributeDefinitions") or []}
    schema = sorted(table.get("KeySchema") or [], key=lambda k: k["KeyType"] != "HASH")
    return {k["AttributeName"]: types.get(k["AttributeName"], "S") for k in schema}


def _key_text(key_types: dict[str, str]) -> str:
    return ", ".join(f"{name} ({kind})" for name, kind in key_types.items())
