"""The two secrets stores behind one contract (issue 11): the embedded encrypted file and AWS Secrets Manager
(moto's server over loopback): versions named by dart, the same version again a no-op, the version before a
rotation kept, deletion, and the file never holding a value in clear."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from bench.harness.moto import AWS_ENV
from services.adapters.secrets import LocalSecrets
from services.adapters.secrets_manager import SecretsManagerSecrets
from services.runtime.composition import secrets_store
from services.runtime.settings import load_settings


@pytest.fixture(params=["local", "aws"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "local":
        yield LocalSecrets(tmp_path)
        return
    endpoint = request.getfixturevalue("moto_endpoint")
    client = boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"])
    yield SecretsManagerSecrets("us-east-1", endpoint, client=client)


def test_versions_are_kept_by_the_id_dart_gives_them(store: Any) -> None:
    name = f"dart-datastore-{uuid.uuid4().hex[:10]}-password"
    first, second, third = (str(uuid.uuid4()) for _ in range(3))
    assert store.get(name, first) is None and store.get(name) is None
    store.put(name, "one-one-one", first)
    store.put(name, "one-one-one", first)  # a retry of the same write
    store.put(name, {"nested": 2}, second)
    assert store.get(name, first) == "one-one-one"  # the version before a rotation is still there
    assert store.get(name, second) == {"nested": 2} and store.get(name) == {"nested": 2}
    store.put(name, "three", third)
    assert store.get(name, third) == "three"
    store.delete(name)
    assert store.get(name, third) is None and store.get(name) is None
    store.delete(name)  # deleting again is no error


def test_an_unversioned_value_from_before_versions_is_read_by_its_name(store: Any) -> None:
    name = f"dart-datastore-{uuid.uuid4().hex[:10]}-password"
    store.put(name, "legacy-value")
    assert store.get(name) == "legacy-value"


def test_the_local_file_holds_no_value_in_clear_and_is_private(tmp_path: Path) -> None:
    LocalSecrets(tmp_path).put("dart-datastore-X-password", "clear-text-value", "v1")
    assert b"clear-text-value" not in (tmp_path / "secrets").read_bytes()
    assert os.stat(tmp_path / "secrets").st_mode & 0o777 == 0o600
    assert os.stat(tmp_path / "secrets.key").st_mode & 0o777 == 0o600


@pytest.mark.parametrize(("env", "kind"), [
    ({}, LocalSecrets),
    ({"DART_ECS_CLUSTER": "dart"}, SecretsManagerSecrets),
    ({"DART_ECS_CLUSTER": "dart", "DART_SECRETS": "local"}, LocalSecrets),
    ({"DART_SECRETS": "aws"}, SecretsManagerSecrets),
])
def test_production_keeps_secrets_in_secrets_manager_and_embedded_mode_in_the_file(
        tmp_path: Path, env: dict[str, str], kind: type) -> None:
    settings = load_settings(env={"DART_HOME": str(tmp_path), **AWS_ENV, **env})
    assert isinstance(secrets_store(settings), kind)
