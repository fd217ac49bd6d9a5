"""The Redshift API hook: one datastore's cluster (``dart-datastore-<id>`` unless named) created, restored
from its named or latest manual snapshot, snapshotted, deleted with a final snapshot, and its endpoint;
snapshots past ``snapshot_retention`` are deleted, newest kept."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, WaiterError

from engines.data import s3 as s3_hook
from engines.sdk import ActionFailure

log = logging.getLogger("dart.engine.redshift")

# Creating or restoring a cluster takes minutes; the first poll is immediate, so a ready cluster never waits.
WAIT = {"Delay": 30, "MaxAttempts": 120}


def client() -> Any:
    """A Redshift client from the standard boto3 chain, at the S3 hook's local endpoint when there is one."""
    return boto3.client(
        "redshift",
        endpoint_url=s3_hook.aws_endpoint("redshift"),
        region_name=s3_hook.aws_region(),
        config=Config(retries={"max_attempts": 5, "mode": "standard"}),
    )


def _reason(exc: ClientError) -> str:
    error = exc.response.get("Error") or {}
    return f"{error.get('Code') or 'error'}: {error.get('Message') or exc}"


class Cluster:
    """The cluster of one datastore envelope (``{id, data: {args, workflow_datastore_id ...}}``)."""

    def __init__(
        self, api: Any, datastore: dict[str, Any], now: Callable[[], datetime] | None = None
    ) -> None:
        self.api, self.now = api, now or (lambda: s3_hook.utcnow())
        self.args: dict[str, Any] = dict((datastore.get("data") or {}).get("args") or {})
        self.identifier = str(self.args.get("cluster_identifier") or f"dart-datastore-{datastore['id']}")
        self.database = str(self.args.get("master_db_name") or "dart")

    def _call(self, what: str, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.api, method)(**kwargs)
        except ClientError as exc:
            raise ActionFailure(f"cannot {what} Redshift cluster {self.identifier}: {_reason(exc)}") from exc

    def describe(self) -> dict[str, Any] | None:
        try:
            found = self.api.describe_clusters(ClusterIdentifier=self.identifier)["Clusters"]
        except ClientError as exc:
            if (exc.response.get("Error") or {}).get("Code") == "ClusterNotFound":
                return None
            raise ActionFailure(
                f"cannot describe Redshift cluster {self.identifier}: {_reason(exc)}"
            ) from exc
        return dict(found[0]) if found else None

    def snapshots(self) -> list[dict[str, Any]]:
        """The cluster's manual snapshots, newest first (automated ones go with the cluster)."""
        found = self._call(
            "list the snapshots of",
            "describe_cluster_snapshots",
            ClusterIdentifier=self.identifier,
            SnapshotType="manual",
        )["Snapshots"]
        # Filtered here too: moto answers a missing cluster's query with every cluster's snapshots.
        mine = [
            s
            for s in found
            if s.get("ClusterIdentifier") == self.identifier and s.get("SnapshotType", "manual") == "manual"
        ]
        return sorted(mine, key=lambda s: s["SnapshotCreateTime"], reverse=True)

    def _placement(self) -> dict[str, Any]:
        found = {
            "ClusterSubnetGroupName": self.args.get("cluster_subnet_group_name"),
            "VpcSecurityGroupIds": self.args.get("vpc_security_group_ids") or None,
            "AvailabilityZone": self.args.get("availability_zone"),
            "PubliclyAccessible": bool(self.args.get("publicly_accessible")),
        }
        return {k: v for k, v in found.items() if v is not None}

    def start(self, snapshot_name: str | None = None) -> str:
        """Restore from ``snapshot_name``, else from the latest snapshot, else create; returns what it did. A
        cluster that exists already (a re-run) is left as it is."""
        if self.describe() is not None:
            return f"cluster {self.identifier} is already running"
        snapshots = self.snapshots()
        if snapshot_name:
            if not any(s["SnapshotIdentifier"] == snapshot_name for s in snapshots):
                raise ActionFailure(
                    f"cluster {self.identifier} has no snapshot {snapshot_name!r} (it has: "
                    f"{', '.join(s['SnapshotIdentifier'] for s in snapshots) or 'none'})"
                )
            chosen: str | None = snapshot_name
        else:
            chosen = snapshots[0]["SnapshotIdentifier"] if snapshots else None
        if chosen:
            self._call(
                "restore",
                "restore_from_cluster_snapshot",
                ClusterIdentifier=self.identifier,
                SnapshotIdentifier=chosen,
                **self._placement(),
            )
            return f"restored cluster {self.identifier} from snapshot {chosen}"
        password = self.args.get("master_user_password")
        if not password:
            raise ActionFailure(
                f"cannot create Redshift cluster {self.identifier}: the datastore has no master_user_password"
            )
        nodes = int(self.args.get("nodes") or 2)
        self._call(
            "create",
            "create_cluster",
            ClusterIdentifier=self.identifier,
            DBName=self.database,
            ClusterType="multi-node" if nodes > 1 else "single-node",
            NodeType=self.args.get("node_type") or "ds2.xlarge",
            NumberOfNodes=nodes,
            MasterUsername=self.args.get("master_user_name") or "admin",
            MasterUserPassword=password,
            PreferredMaintenanceWindow=self.args.get("preferred_maintenance_window") or "sat:03:30-sat:04:00",
            AutomatedSnapshotRetentionPeriod=0,
            AllowVersionUpgrade=False,
            Encrypted=False,
            **self._placement(),
        )
        return f"created cluster {self.identifier}"

    def wait(self, waiter: str, **kwargs: Any) -> None:
        try:
            self.api.get_waiter(waiter).wait(WaiterConfig=WAIT, **kwargs)
        except WaiterError as exc:
            raise ActionFailure(f"Redshift cluster {self.identifier}: {waiter} never came: {exc}") from exc

    def endpoint(self) -> tuple[str, int]:
        """Host and port, once the cluster is available."""
        self.wait("cluster_available", ClusterIdentifier=self.identifier)
        cluster = self.describe()
        endpoint = (cluster or {}).get("Endpoint") or {}
        if not endpoint.get("Address"):
            raise ActionFailure(f"Redshift cluster {self.identifier} has no endpoint")
        return str(endpoint["Address"]), int(endpoint.get("Port") or 5439)

    def snapshot_name(self) -> str:
        """``<cluster>-<YYYYmmddHHMMSS>``; a second already taken (a snapshot then a stop within one second)
        moves the name on a second, so it stays unique and in order."""
        taken = {s["SnapshotIdentifier"] for s in self.snapshots()}
        moment = self.now()
        while (name := f"{self.identifier}-{moment.strftime('%Y%m%d%H%M%S')}") in taken:
            moment += timedelta(seconds=1)
        return name

    def create_snapshot(self) -> str:
        name = self.snapshot_name()
        self._call(
            "snapshot", "create_cluster_snapshot", ClusterIdentifier=self.identifier, SnapshotIdentifier=name
        )
        self.wait("snapshot_available", SnapshotIdentifier=name)
        self.purge_snapshots()
        return name

    def stop(self) -> str:
        """Delete the cluster with a final snapshot; returns the snapshot's name."""
        if self.describe() is None:
            raise ActionFailure(f"Redshift cluster {self.identifier} was not found")
        name = self.snapshot_name()
        self._call(
            "delete",
            "delete_cluster",
            ClusterIdentifier=self.identifier,
            SkipFinalClusterSnapshot=False,
            FinalClusterSnapshotIdentifier=name,
        )
        self.wait("cluster_deleted", ClusterIdentifier=self.identifier)
        self.purge_snapshots()
        return name

    def purge_snapshots(self) -> list[str]:
        """Delete the snapshots past snapshot_retention (the newest are kept); returns their names."""
        keep = int(self.args.get("snapshot_retention") or 2)
        purged = []
        for snapshot in self.snapshots()[keep:]:
            name = snapshot["SnapshotIdentifier"]
            self.wait("snapshot_available", SnapshotIdentifier=name)
            self._call(
                "delete a snapshot of",
                "delete_cluster_snapshot",
                SnapshotIdentifier=name,
                SnapshotClusterIdentifier=self.identifier,
            )
            purged.append(name)
        if purged:
            log.info("deleted snapshot(s) past the retention of %d: %s", keep, ", ".join(purged))
        return purged
