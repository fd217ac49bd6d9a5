"""``dart deploy``: the generated template passes cfn-lint; the command, run as a real process against moto's
server on loopback, creates the stack on moto's CloudFormation, runs the migrate task (played by the test ECS
agent, which runs the task's entry point as a local process against a SQLite file), and a second run changes
nothing; ``--delete`` tears it down. A wrong environment file is refused naming the field.

What moto 5.2.1's CloudFormation does not create (it skips the resource with a warning, the template keeps
it and cfn-lint checks it): AWS::SecretsManager::Secret (no CloudFormation model in moto), so the secrets
are asserted in the template and the stack's resource list rather than in Secrets Manager.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from bench.harness.ecs_agent import EcsAgent
from bench.harness.moto import AWS_ENV, moto_server
from engines.catalog import BUILT_IN_ENGINES

DART = str(Path(sys.executable).parent / "dart")
NAME = "dart-ci"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/dart:1.0"
ENVIRONMENT = {
    "name": NAME, "region": "us-east-1", "image": IMAGE,
    "data_buckets": ["dart-ci-data"], "outside_readers": {"audit": None},
    "api": {"count": 2}, "workers": {"launcher": {"count": 1, "cpu": 512, "memory": 1024}},
    "engines": {"duckdb_engine": {"cpu": 1024, "memory": 4096}},
}


class ContainerAgent(EcsAgent):
    """The ECS agent of bench/harness, running a container as its image would: the entry point (``python``
    is this interpreter) with the command, the DART_* variables the task definition sets, plus what ECS's
    secrets injection would add (the database URL) and the AWS endpoint (moto)."""

    def __init__(self, endpoint: str, cluster: str, extra_env: dict[str, str], log_dir: Path) -> None:
        super().__init__(endpoint, cluster, log_dir=log_dir)
        self.extra_env = extra_env

    def _definition(self, arn: str) -> dict[str, Any]:
        definition = super()._definition(arn)
        for container in definition.get("containerDefinitions") or []:
            entry = [sys.executable if part == "python" else part for part in container.get("entryPoint") or [DART]]
            container["command"] = entry + list(container.get("command") or [])
            container["environment"] = [*(container.get("environment") or []),
                                        *({"name": k, "value": v} for k, v in self.extra_env.items())]
        return definition


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


def run_dart(args: list[str], endpoint: str, home: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DART_", "AWS_"))}
    env.update(AWS_ENV, DART_HOME=str(home), DART_AWS_ENDPOINT_URL=endpoint, AWS_ENDPOINT_URL=endpoint)
    return subprocess.run([DART, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def client(service: str, endpoint: str) -> Any:
    return boto3.client(service, region_name="us-east-1", endpoint_url=endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def dart_in_process(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``dart`` in this process (the dry runs touch no AWS API): its exit code, stdout and stderr."""
    from services.runtime.cli import main

    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_template_passes_cfn_lint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cfnlint.api import ManualArgs, lint

    env_file = tmp_path / "env.yaml"
    env_file.write_text(yaml.safe_dump(ENVIRONMENT))
    out = tmp_path / "template.json"
    code, stdout, stderr = dart_in_process(["deploy", "-f", str(env_file), "--dry-run", "--template-out", str(out)],
                                           capsys)
    assert code == 0, stderr
    assert f"dry run: would create or update stack {NAME}" in stdout
    problems = lint(out.read_text(), config=ManualArgs(regions=["us-east-1"]))
    assert [str(p) for p in problems] == []
    template = json.loads(out.read_text())
    types = [r["Type"] for r in template["Resources"].values()]
    for kind in ("AWS::RDS::DBInstance", "AWS::ElasticLoadBalancingV2::LoadBalancer", "AWS::ECS::Cluster",
                 "AWS::SecretsManager::Secret", "AWS::Logs::LogGroup", "AWS::SQS::Queue", "AWS::IAM::Role"):
        assert kind in types, kind
    assert "ApiUrl" in template["Outputs"]


@pytest.mark.parametrize("document, field", [
    ({**ENVIRONMENT, "api": {"cpu": 300}}, "api: cpu must be one of"),
    ({**ENVIRONMENT, "workers": {"orchestratr": {}}}, "workers"),
    ({**ENVIRONMENT, "database": {"create": {}, "url_secret": "arn:x"}}, "database"),
    ({**ENVIRONMENT, "network": {"vpc_id": "vpc-1", "public_subnets": ["subnet-a"]}}, "network"),
    ({**ENVIRONMENT, "settings": {"broker_url": "sqs://"}}, "settings"),
    ({k: v for k, v in ENVIRONMENT.items() if k != "image"}, "image"),
])
def test_a_wrong_environment_file_is_refused_by_field(tmp_path: Path, document: dict[str, Any], field: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    env_file = tmp_path / "env.yaml"
    env_file.write_text(yaml.safe_dump(document))
    code, _, stderr = dart_in_process(["deploy", "-f", str(env_file), "--dry-run"], capsys)
    assert code == 1
    assert stderr.startswith(f"dart deploy: {env_file}: ") and field in stderr, stderr


def test_an_unreadable_environment_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, stderr = dart_in_process(["deploy", "-f", str(tmp_path / "missing.yaml"), "--dry-run"], capsys)
    assert code == 1 and "missing.yaml: cannot be read" in stderr
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    code, _, stderr = dart_in_process(["deploy", "-f", str(tmp_path / "list.yaml"), "--dry-run"], capsys)
    assert code == 1 and "must hold a mapping" in stderr


def test_deploy_creates_the_stack_and_a_second_run_changes_nothing(moto: str, tmp_path: Path) -> None:
    env_file = tmp_path / "env.yaml"
    env_file.write_text(yaml.safe_dump(ENVIRONMENT))
    database = tmp_path / "dart.db"
    agent = ContainerAgent(moto, NAME, {
        "DART_DATABASE_URL": f"sqlite:///{database}", "DART_AWS_ENDPOINT_URL": moto,
        "DART_HOME": str(tmp_path / "migrate-home"), **AWS_ENV}, log_dir=tmp_path)
    with agent:
        first = run_dart(["deploy", "-f", str(env_file), "--poll-seconds", "0.2"], moto, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr + "\n".join(agent.errors)
    assert f"stack {NAME}: created" in first.stdout
    assert "ApiUrl\thttp://" in first.stdout

    cfn, sqs, ecs, iam, logs = (client(s, moto) for s in ("cloudformation", "sqs", "ecs", "iam", "logs"))
    stack = cfn.describe_stacks(StackName=NAME)["Stacks"][0]
    assert stack["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}["ServicesState"] == "running"

    # the migrate task ran once, in the image's entry point: schema applied, built-in engines registered
    # with the stack's task families
    migrate_tasks = [t for t in agent.tasks.values() if t.exit_codes]
    logs_of = "".join(p.read_text() for p in tmp_path.glob("engine-*.log"))
    assert [t.exit_codes for t in migrate_tasks] == [[0]], logs_of
    assert_engines_registered(database)

    # queues: every consumer group's and the inbox, each redriving to its dead-letter queue
    for group in ("orchestrator", "launcher", "notifier", "subscriptions", "inbox"):
        url = sqs.get_queue_url(QueueName=f"{NAME}-{group}")["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"].endswith(f":{NAME}-{group}-dead")
        assert int(redrive["maxReceiveCount"]) == 5
        assert attributes["VisibilityTimeout"] == "60"  # what kombu declares them with
    sqs.get_queue_url(QueueName=f"{NAME}-out-audit")

    # a task definition per built-in engine, on the one image, running the engine's module
    for engine in BUILT_IN_ENGINES:
        described = ecs.describe_task_definition(taskDefinition=f"dart-{NAME}-{engine.name}")["taskDefinition"]
        container = described["containerDefinitions"][0]
        assert container["image"] == IMAGE and container["entryPoint"] == ["python", "-m", engine.module]
        assert container["name"] == f"dart-{engine.name}"
    duckdb = ecs.describe_task_definition(taskDefinition=f"dart-{NAME}-duckdb_engine")["taskDefinition"]
    assert (duckdb["containerDefinitions"][0]["cpu"], duckdb["containerDefinitions"][0]["memory"]) == (1024, 4096)
    services = ecs.list_services(cluster=NAME)["serviceArns"]
    assert len(services) == 8, services  # api, relay, six workers
    api = ecs.describe_services(cluster=NAME, services=["api"])["services"][0]
    assert api["desiredCount"] == 2  # the file's count, after the migration (0 before it)
    # moto's CloudFormation drops an ECS service's LoadBalancers: the load balancer, its target group and
    # listener are checked in elbv2, the service's attachment in the template
    elbv2 = client("elbv2", moto)
    balancers = elbv2.describe_load_balancers()["LoadBalancers"]
    assert len(balancers) == 1 and balancers[0]["Scheme"] == "internet-facing"
    assert f"ApiUrl\thttp://{balancers[0]['DNSName']}/api/1" in first.stdout
    groups = elbv2.describe_target_groups(LoadBalancerArn=balancers[0]["LoadBalancerArn"])["TargetGroups"]
    assert [(g["Port"], g["TargetType"], g["HealthCheckPath"]) for g in groups] == [(5000, "ip", "/health")]

    # IAM: only the launcher may run tasks; the API keeps datastore secrets but cannot launch
    policies = role_policies(cfn, iam, NAME)
    assert "ecs:RunTask" in policies["WorkerLauncherRole"]
    assert "ecs:RunTask" not in policies["ApiRole"]
    assert "secretsmanager:PutSecretValue" in policies["ApiRole"]
    others = [r for r, actions in policies.items() if "ecs:RunTask" in actions]
    assert others == ["WorkerLauncherRole"], others
    assert "elasticmapreduce" not in policies["EngineNoOpEngineRole"] and "s3:" not in policies["EngineNoOpEngineRole"]
    assert "s3:PutObject" in policies["EngineS3EngineRole"]

    # log groups for every process and engine
    groups = {g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix=f"/dart/{NAME}/")["logGroups"]}
    assert {f"/dart/{NAME}/api", f"/dart/{NAME}/relay", f"/dart/{NAME}/migrate",
            f"/dart/{NAME}/worker-launcher"} <= groups
    assert f"/dart/{NAME}/engines" in groups  # every engine's, where GET /action/{id}/logs reads
    assert "logs:GetLogEvents" in policies["ApiRole"]

    # the secrets are in the stack's template (moto's CloudFormation has no Secrets Manager model)
    body = cfn.get_template(StackName=NAME)["TemplateBody"]
    template = json.loads(body) if isinstance(body, str) else body
    attached = template["Resources"]["ServiceApi"]["Properties"]["LoadBalancers"]
    assert attached == [{"ContainerName": "api", "ContainerPort": 5000, "TargetGroupArn": {"Ref": "ApiTargets"}}]
    secrets = sorted(k for k, r in template["Resources"].items() if r["Type"] == "AWS::SecretsManager::Secret")
    assert secrets == ["BootstrapKeySecret", "BootstrapSecretPart", "DatabaseMasterSecret", "DatabaseUrlSecret"]

    # a second run: no change set executed, no migrate task, the stack's events and update time unchanged
    events_before = cfn.describe_stack_events(StackName=NAME)["StackEvents"]
    updated_before = cfn.describe_stacks(StackName=NAME)["Stacks"][0].get("LastUpdatedTime")
    tasks_before = len(ecs.list_tasks(cluster=NAME, desiredStatus="STOPPED")["taskArns"])
    second = run_dart(["deploy", "-f", str(env_file), "--poll-seconds", "0.2"], moto, tmp_path)
    assert second.returncode == 0, second.stderr
    assert f"stack {NAME}: no changes" in second.stdout
    assert cfn.describe_stack_events(StackName=NAME)["StackEvents"] == events_before
    assert cfn.describe_stacks(StackName=NAME)["Stacks"][0].get("LastUpdatedTime") == updated_before
    assert len(ecs.list_tasks(cluster=NAME, desiredStatus="STOPPED")["taskArns"]) == tasks_before


def test_delete_tears_down_an_environment_in_an_existing_vpc(moto: str, tmp_path: Path) -> None:
    """An existing VPC and database URL (the stack creates neither), deployed then deleted. (moto cannot
    delete a VPC the stack created: it has no delete for AWS::EC2::VPCGatewayAttachment, so the gateway stays
    attached; hence the teardown is shown on an existing VPC.)"""
    ec2 = client("ec2", moto)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24", AvailabilityZone=f"us-east-1{z}")
               ["Subnet"]["SubnetId"] for i, z in enumerate("ab")]
    name = "dart-byo"
    env_file = tmp_path / "env.yaml"
    database = tmp_path / "byo.db"
    env_file.write_text(yaml.safe_dump({
        "name": name, "image": IMAGE,
        "network": {"vpc_id": vpc, "public_subnets": subnets, "task_subnets": subnets},
        "database": {"url": "postgresql://dart:pw@db.example.com:5432/dart"},
        "api": {"internal": True}}))
    agent = ContainerAgent(moto, name, {"DART_DATABASE_URL": f"sqlite:///{database}", "DART_AWS_ENDPOINT_URL": moto,
                                        "DART_HOME": str(tmp_path / "home"), **AWS_ENV}, log_dir=tmp_path)
    with agent:
        made = run_dart(["deploy", "-f", str(env_file), "--poll-seconds", "0.2"], moto, tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    cfn, sqs, ecs = client("cloudformation", moto), client("sqs", moto), client("ecs", moto)
    resources = {r.get("LogicalResourceId") for r in cfn.describe_stack_resources(StackName=name)["StackResources"]}
    assert "Vpc" not in resources and "Database" not in resources and "ServiceApi" in resources
    body = cfn.get_template(StackName=name)["TemplateBody"]
    template = json.loads(body) if isinstance(body, str) else body
    assert template["Parameters"]["DatabaseUrl"]["NoEcho"] is True  # kept in the stack's secret, never shown
    assert sqs.get_queue_url(QueueName=f"{name}-inbox")

    gone = run_dart(["deploy", "-f", str(env_file), "--delete", "--poll-seconds", "0.2"], moto, tmp_path)
    assert gone.returncode == 0, gone.stderr
    assert f"stack {name}: deleted" in gone.stdout
    assert not [s for s in cfn.list_stacks()["StackSummaries"]
                if s["StackName"] == name and s["StackStatus"] != "DELETE_COMPLETE"]
    assert not [u for u in sqs.list_queues(QueueNamePrefix=f"{name}-").get("QueueUrls", [])]
    assert not ecs.list_task_definitions(familyPrefix=f"dart-{name}-", status="ACTIVE")["taskDefinitionArns"]
    again = run_dart(["deploy", "-f", str(env_file), "--delete"], moto, tmp_path)
    assert again.returncode == 0 and f"stack {name}: does not exist" in again.stdout


def assert_engines_registered(database: Path) -> None:
    """Every built-in engine registered by the migrate task, naming its task family in the stack (ECS runs
    the family's newest revision) and described with the stack's image."""
    from services.commands.entities import EntityService
    from services.runtime.composition import build
    from services.runtime.settings import load_settings

    settings = load_settings({"DART_DATABASE_URL": f"sqlite:///{database}", "DART_HOME": str(database.parent)})
    container = build(settings, migrate=False)
    try:
        reader = EntityService(container.store, container).reader
        for engine in BUILT_IN_ENGINES:
            found = reader.find_by("engine", name=engine.name)
            assert found, f"{engine.name} is not registered"
            data = found[0]["data"]
            assert data["ecs_task_definition_arn"] == f"dart-{NAME}-{engine.name}"
            assert data["ecs_task_definition"]["containerDefinitions"][0]["image"] == IMAGE
    finally:
        container.store.close()


def role_policies(cfn: Any, iam: Any, stack: str) -> dict[str, str]:
    """Logical role id -> the JSON of its inline policies (as IAM holds them)."""
    found = {}
    for resource in cfn.describe_stack_resources(StackName=stack)["StackResources"]:
        if resource.get("ResourceType") != "AWS::IAM::Role":  # (moto lists skipped resources bare)
            continue
        name = resource["PhysicalResourceId"].rsplit("/", 1)[-1]
        documents = [iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"]
                     for p in iam.list_role_policies(RoleName=name)["PolicyNames"]]
        found[resource["LogicalResourceId"]] = json.dumps(documents)
    return found
