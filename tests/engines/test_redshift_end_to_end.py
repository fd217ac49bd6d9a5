"""The redshift_engine's cluster lifecycle run by a real `dart up` (SQLite) as a local engine process against
moto's Redshift API: the master password reaches the engine only through the check-out (dart keeps it as a
secret), start_datastore patches the datastore's host, port and connection_url, create_snapshot and
stop_datastore leave their snapshots, and a second start restores from the latest."""

from __future__ import annotations

import uuid

import boto3
import pytest

from bench.harness.api_client import Api
from bench.harness.moto import AWS_ENV
from tests.engines.test_end_to_end import _run, _states, _store

pytestmark = pytest.mark.slow
# run by conftest's dart fixture, registered by its api fixture
ENGINES = {"redshift_engine": "engines.redshift"}


def test_the_cluster_lifecycle_through_dart_up(api: Api, moto_url: str) -> None:
    name = f"dart-e2e-{uuid.uuid4().hex[:8]}"
    store = _store(
        api,
        "redshift_engine",
        {
            "cluster_identifier": name,
            "master_user_password": "Passw0rd1x",
            "master_db_name": "mart",
            "snapshot_retention": 3,
        },
    )
    assert (
        "master_user_password" not in api.get(f"/datastore/{store['id']}")["data"]["args"]
    )  # kept as a secret
    started, snapshot, stopped, restarted = _run(
        api,
        store,
        ("start_datastore", {}),
        ("create_snapshot", {}),
        ("stop_datastore", {}),
        ("start_datastore", {}),
    )
    assert _states([started, snapshot, stopped, restarted]) == ["COMPLETED"] * 4, [
        a["data"].get("error_message") for a in (started, snapshot, stopped, restarted)
    ]
    redshift = boto3.client(
        "redshift",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    )
    [cluster] = redshift.describe_clusters(ClusterIdentifier=name)["Clusters"]
    assert cluster["RestoreStatus"]["Status"] == "completed"  # the second start restored it
    data = api.get(f"/datastore/{store['id']}")["data"]
    host = cluster["Endpoint"]["Address"]
    assert (data["host"], data["port"], data["connection_url"]) == (
        host,
        5439,
        f"jdbc:redshift://{host}:5439/mart",
    )
    manual = {
        s["SnapshotIdentifier"]
        for s in redshift.describe_cluster_snapshots(ClusterIdentifier=name, SnapshotType="manual")[
            "Snapshots"
        ]
        if s["ClusterIdentifier"] == name
    }
    assert {
        snapshot["data"]["extra_data"]["snapshot"],
        stopped["data"]["extra_data"]["final_snapshot"],
    } <= manual
