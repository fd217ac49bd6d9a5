"""Engine task definitions on ECS: registered when an engine is created or its definition changes,
deregistered when it is replaced or deleted. Talks boto3 to DART_AWS_ENDPOINT_URL (AWS, or a local server)."""

from __future__ import annotations

from typing import Any

import boto3


class EcsTaskDefinitions:
    def __init__(self, cluster: str, region: str, endpoint_url: str | None = None) -> None:
        self.cluster = cluster
        self._client = boto3.client("ecs", region_name=region, endpoint_url=endpoint_url or None)

    def register(self, definition: dict[str, Any]) -> str:
        """Register a task definition ({family, containerDefinitions, volumes}); returns its ARN."""
        kwargs: dict[str, Any] = {
            "family": definition["family"],
            "containerDefinitions": definition.get("containerDefinitions") or [],
        }
        if definition.get("volumes"):
            kwargs["volumes"] = definition["volumes"]
        response = self._client.register_task_definition(**kwargs)
        return str(response["taskDefinition"]["taskDefinitionArn"])

    def deregister(self, arn: str) -> None:
        self._client.deregister_task_definition(taskDefinition=arn)
