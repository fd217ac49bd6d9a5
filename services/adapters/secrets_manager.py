"""Production's secrets store: AWS Secrets Manager (through DART_AWS_ENDPOINT_URL when set), with the same
methods as the embedded LocalSecrets. A secret is named as in the original (``dart-datastore-<id>-<arg>``);
dart chooses each version's id (the ClientRequestToken), so the log can name a version before it is written."""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.exceptions import ClientError

RECOVERY_DAYS = 7  # a deleted datastore's secrets can still be restored by an operator for a week


class SecretsManagerSecrets:
    def __init__(self, region: str, endpoint_url: str | None = None, client: Any = None) -> None:
        self.client = client or boto3.client("secretsmanager", region_name=region, endpoint_url=endpoint_url or None)

    def put(self, name: str, value: Any, version: str | None = None) -> None:
        """``value`` (as JSON) as ``version`` of ``name``, creating the secret on its first value; the same
        version again is a no-op (Secrets Manager's idempotency token)."""
        text = json.dumps(value)
        token = {"ClientRequestToken": version} if version else {}
        try:
            self.client.put_secret_value(SecretId=name, SecretString=text, **token)
            return
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise
        try:
            self.client.create_secret(Name=name, SecretString=text, **token)
        except ClientError as exc:
            if _code(exc) != "ResourceExistsException":  # another writer created it meanwhile
                raise
            self.client.put_secret_value(SecretId=name, SecretString=text, **token)

    def get(self, name: str, version: str | None = None) -> Any:
        """The value of ``version`` of ``name`` (the current one without a version); None if absent."""
        try:
            found = self.client.get_secret_value(SecretId=name, **({"VersionId": version} if version else {}))
        except ClientError as exc:
            if _code(exc) in ("ResourceNotFoundException", "InvalidRequestException"):  # gone, or being deleted
                return None
            raise
        return json.loads(found["SecretString"])

    def delete(self, name: str) -> None:
        try:
            self.client.delete_secret(SecretId=name, RecoveryWindowInDays=RECOVERY_DAYS)
        except ClientError as exc:
            if _code(exc) not in ("ResourceNotFoundException", "InvalidRequestException"):
                raise


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
