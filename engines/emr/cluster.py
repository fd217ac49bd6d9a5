"""The EMR API hook for one datastore's cluster: its size (from the pending loads and data_to_freespace_ratio, or
instance_count), the RunJobFlow request (release label, instance groups, bootstrap actions, configurations with
the action's overrides merged in), the wait for WAITING, and termination."""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from engines.data import s3 as s3_hook
from engines.emr.definition import DEFAULT_INSTANCE_TYPE, DEFAULT_RELEASE_LABEL
from engines.sdk import ActionFailure

log = logging.getLogger("dart.engine.emr")

POLL_ENV = "DART_EMR_POLL_SECONDS"  # tests shorten the wait between EMR polls
DEFAULT_POLL_SECONDS = 30.0
STARTING_STATES = ("STARTING", "BOOTSTRAPPING", "RUNNING")
APPLICATIONS = ("Hadoop", "Hive", "Spark")

# HDFS space per core node: instance store for the original's m3 (its mappings.py), EMR's default EBS volumes
# for the EBS-only types (EMR's "default Amazon EBS storage for instances" table).
GB = 1000 ** 3
DISK_BYTES = {
    "m3.2xlarge": 160 * GB,
    "m5.xlarge": 64 * GB, "m5.2xlarge": 128 * GB, "m5.4xlarge": 256 * GB, "m5.8xlarge": 512 * GB,
    "m6g.xlarge": 64 * GB, "m6g.2xlarge": 128 * GB, "m6g.4xlarge": 256 * GB,
    "r5.xlarge": 64 * GB, "r5.2xlarge": 128 * GB, "r5.4xlarge": 256 * GB,
}

# The original's start_configs.json: HDFS with one replica and short-circuit reads, Spark's dynamic allocation.
BASE_CONFIGURATIONS: list[dict[str, Any]] = [
    {"Classification": "hdfs-site", "Configurations": [], "Properties": {
        "dfs.replication": "1",
        "dfs.client.file-block-storage-locations.timeout.millis": "10000",
        "dfs.client.read.shortcircuit": "true",
        "dfs.datanode.hdfs-blocks-metadata.enabled": "true",
        "dfs.domain.socket.path": "/var/run/hadoop-hdfs/domain_socket._PORT"}},
    {"Classification": "core-site", "Configurations": [], "Properties": {
        "dfs.client.read.shortcircuit": "true", "fs.permissions.umask-mode": "000"}},
    {"Classification": "spark-defaults", "Configurations": [], "Properties": {
        "spark.dynamicAllocation.enabled": "true", "spark.executor.memory": "2G", "spark.executor.cores": "2"}},
]


def poll_seconds() -> float:
    return float(os.environ.get(POLL_ENV) or DEFAULT_POLL_SECONDS)


def client() -> Any:
    """An EMR client from the standard boto3 chain, at the local endpoint when there is one."""
    return boto3.client("emr", endpoint_url=s3_hook.aws_endpoint("emr"), region_name=s3_hook.aws_region(),
                        config=Config(retries={"max_attempts": 5, "mode": "standard"}))


def reason(exc: ClientError) -> str:
    error = exc.response.get("Error") or {}
    return f"{error.get('Code') or 'error'}: {error.get('Message') or exc}"


def cluster_name(datastore: dict[str, Any]) -> str:
    return f"dart-datastore-{datastore['id']}-{datastore['data'].get('name') or ''}"


def cluster_id(datastore: dict[str, Any]) -> str:
    """The cluster start_datastore recorded; a user error when there is none."""
    found = (datastore["data"].get("extra_data") or {}).get("cluster_id")
    if not found:
        raise ActionFailure(f"datastore {datastore['id']} has no EMR cluster: run start_datastore first")
    return str(found)


# -- sizing -------------------------------------------------------------------------------------------------


def core_nodes(args: dict[str, Any], pending_bytes: Callable[[], int]) -> int:
    """instance_count less the master, else enough cores for the pending data at data_to_freespace_ratio (the
    original's prepare_instance_groups); ``pending_bytes`` is only asked when the ratio decides."""
    if args.get("instance_count"):
        return max(int(args["instance_count"]) - 1, 1)
    instance_type = args.get("instance_type") or DEFAULT_INSTANCE_TYPE
    disk = DISK_BYTES.get(instance_type)
    if disk is None:
        raise ActionFailure(f"cannot size a cluster of {instance_type} from data_to_freespace_ratio (its HDFS "
                            f"space is not known here): set the datastore's instance_count")
    ratio = float(args["data_to_freespace_ratio"] if args.get("data_to_freespace_ratio") is not None else 0.5)
    size = pending_bytes()
    cores = max(1, math.ceil(size / (disk * ratio))) if ratio > 0 else 1
    limit = int(args.get("core_node_limit") or 30)
    if cores > limit:
        raise ActionFailure(f"too many nodes required: {size:,} bytes to load need {cores} {instance_type} core "
                            f"nodes at data_to_freespace_ratio {ratio}, above core_node_limit {limit}")
    return cores


def instance_groups(args: dict[str, Any], cores: int) -> list[dict[str, Any]]:
    instance_type = args.get("instance_type") or DEFAULT_INSTANCE_TYPE
    return [
        {"Name": "master", "Market": "ON_DEMAND", "InstanceRole": "MASTER", "InstanceType": instance_type,
         "InstanceCount": 1},
        {"Name": "core", "Market": "ON_DEMAND", "InstanceRole": "CORE", "InstanceType": instance_type,
         "InstanceCount": cores},
    ]


# -- configurations -----------------------------------------------------------------------------------------


def configurations(overrides: str | None) -> list[dict[str, Any]]:
    """The base configurations with ``configuration_overrides`` (a JSON array of EMR Configuration objects)
    merged in: the same Classification merges Properties (the override wins) and nested Configurations."""
    merged = copy.deepcopy(BASE_CONFIGURATIONS)
    if overrides:
        try:
            parsed = json.loads(overrides)
        except ValueError as exc:
            raise ActionFailure(f"configuration_overrides is not JSON: {exc}") from exc
        if not isinstance(parsed, list) or not all(isinstance(c, dict) and c.get("Classification")
                                                   for c in parsed):
            raise ActionFailure("configuration_overrides must be a JSON array of objects with a Classification")
        merge_configurations(parsed, merged)
    return merged


def merge_configurations(source: list[dict[str, Any]], target: list[dict[str, Any]]) -> None:
    by_classification = {c["Classification"]: c for c in target}
    for config in source:
        found = by_classification.get(config["Classification"])
        if found is None:
            target.append(copy.deepcopy(config))
            continue
        found.setdefault("Properties", {}).update(config.get("Properties") or {})
        if config.get("Configurations"):
            merge_configurations(config["Configurations"], found.setdefault("Configurations", []))


# -- the cluster --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapAction:
    name: str
    path: str
    args: tuple[str, ...] = ()

    def request(self) -> dict[str, Any]:
        return {"Name": self.name, "ScriptBootstrapAction": {"Path": self.path, "Args": list(self.args)}}


def run_job_flow_request(datastore: dict[str, Any], cores: int, bootstrap: Iterable[BootstrapAction],
                         overrides: str | None) -> dict[str, Any]:
    """The RunJobFlow request of start_datastore (also what dry_run writes to the action)."""
    data = datastore["data"]
    args = dict(data.get("args") or {})
    instances: dict[str, Any] = {"InstanceGroups": instance_groups(args, cores),
                                 "KeepJobFlowAliveWhenNoSteps": True, "TerminationProtected": False}
    if args.get("ec2_keyname"):
        instances["Ec2KeyName"] = args["ec2_keyname"]
    if args.get("subnet_id"):
        instances["Ec2SubnetId"] = args["subnet_id"]
    tags = {**(args.get("cluster_tags") or {}), "dart:datastore_id": str(datastore["id"])}
    request: dict[str, Any] = {
        "Name": cluster_name(datastore),
        "ReleaseLabel": args.get("release_label") or DEFAULT_RELEASE_LABEL,
        "Instances": instances,
        "Applications": [{"Name": name} for name in APPLICATIONS],
        "BootstrapActions": [b.request() for b in bootstrap],
        "Configurations": configurations(overrides),
        "JobFlowRole": args.get("instance_profile") or "EMR_EC2_DefaultRole",
        "ServiceRole": args.get("service_role") or "EMR_DefaultRole",
        "VisibleToAllUsers": True,
        "Tags": [{"Key": k, "Value": str(v)} for k, v in sorted(tags.items())],
    }
    if data.get("s3_logs_path"):
        request["LogUri"] = data["s3_logs_path"]
    return request


def create(emr: Any, request: dict[str, Any]) -> str:
    try:
        return str(emr.run_job_flow(**request)["JobFlowId"])
    except ClientError as exc:
        raise ActionFailure(f"cannot create EMR cluster {request['Name']}: {reason(exc)}") from exc


def describe(emr: Any, cluster: str) -> dict[str, Any]:
    try:
        return dict(emr.describe_cluster(ClusterId=cluster)["Cluster"])
    except ClientError as exc:
        raise ActionFailure(f"cannot describe EMR cluster {cluster}: {reason(exc)}") from exc


def wait_until_waiting(emr: Any, cluster: str, tick: Callable[[str], None],
                       sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Poll until the cluster leaves STARTING/BOOTSTRAPPING/RUNNING; it must be WAITING. ``tick`` is called with
    each state seen (progress, and the chance to notice the action was ended elsewhere)."""
    while True:
        found = describe(emr, cluster)
        status = found.get("Status") or {}
        state = str(status.get("State"))
        tick(state)
        if state not in STARTING_STATES:
            break
        sleep(poll_seconds())
    if state != "WAITING":
        why = (status.get("StateChangeReason") or {}).get("Message")
        raise ActionFailure(f"EMR cluster {cluster} is {state}, not WAITING" + (f": {why}" if why else ""))
    return found


def terminate(emr: Any, cluster: str) -> None:
    try:
        emr.terminate_job_flows(JobFlowIds=[cluster])
    except ClientError as exc:
        raise ActionFailure(f"cannot terminate EMR cluster {cluster}: {reason(exc)}") from exc
