"""moto's server with two fixes its CloudFormation needs for ``dart deploy``'s tests (moto 5.2.1):
``python -m tests.deploy.cfn_moto -H 127.0.0.1 -p PORT`` runs the real moto server with

- an **updated** ``AWS::ECS::TaskDefinition`` registered with camelCase container definitions, as a created one
  is (moto's update passes CloudFormation's PascalCase keys through: ``describe_task_definition`` then answers
  ``Image`` instead of ``image`` and every reader of the new revision breaks);
- ``AWS::EC2::VPCGatewayAttachment`` and ``AWS::EC2::RouteTable`` deletable: deleting the attachment detaches
  the internet gateway, a route table is deleted once its subnets are (moto has no delete for either, so a
  stack that created its VPC could never be deleted: the gateway and the tables kept the VPC).

- a task stopped with the reason ``... (code N)`` (what the tests' ECS agent says when a container exits)
  reports exit code N for its containers, as ECS does; moto reports 0 whatever happened.

Everything else is moto's own CloudFormation, ECS, EC2, SQS, IAM ... over the real wire protocol."""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from typing import Any

from bench.harness.moto import moto_server, serve


def patch() -> None:
    from moto.core.utils import pascal_to_camelcase, remap_nested_keys
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.route_tables import RouteTable
    from moto.ec2.models.vpn_gateway import VPCGatewayAttachment
    from moto.ecs.models import EC2ContainerServiceBackend, TaskDefinition

    update = TaskDefinition.update_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def update_camelcase(cls: Any, original_resource: Any, new_resource_name: str, cloudformation_json: Any,
                         account_id: str, region_name: str) -> Any:
        properties = dict(cloudformation_json["Properties"])
        for key in ("ContainerDefinitions", "Volumes"):
            if key in properties:
                properties[key] = remap_nested_keys(properties[key], pascal_to_camelcase)
        return update(cls, original_resource, new_resource_name, {**cloudformation_json, "Properties": properties},
                      account_id, region_name)

    TaskDefinition.update_from_cloudformation_json = classmethod(update_camelcase)  # type: ignore[method-assign,assignment]

    def delete(self: Any, account_id: str, region_name: str) -> None:
        if self.gateway_id and self.gateway_id.startswith("igw-"):
            ec2_backends[account_id][region_name].detach_internet_gateway(self.gateway_id, self.vpc_id)

    VPCGatewayAttachment.delete = delete  # type: ignore[attr-defined]

    def delete_table(self: Any, account_id: str, region_name: str) -> None:
        ec2_backends[account_id][region_name].delete_route_table(self.id)

    RouteTable.delete = delete_table  # type: ignore[attr-defined]

    stop_task = EC2ContainerServiceBackend.stop_task

    def stop_task_with_exit_code(self: Any, cluster_str: str, task_str: str, reason: str) -> Any:
        task = stop_task(self, cluster_str, task_str, reason)
        found = re.search(r"\(code (-?\d+)\)", reason or "")
        if found:
            for container in task.containers:
                container.exitCode = int(found.group(1))
        return task

    EC2ContainerServiceBackend.stop_task = stop_task_with_exit_code  # type: ignore[method-assign]


def cfn_moto_server() -> AbstractContextManager[str]:
    """This module's server on a free port; yields its endpoint URL."""
    return moto_server("tests.deploy.cfn_moto")


if __name__ == "__main__":
    serve(patch)
