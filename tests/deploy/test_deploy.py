"""``dart deploy``: the generated templates pass cfn-lint; the command, run as a real process against moto's
server on loopback, creates the stack on moto's CloudFormation, runs the migrate task (played by the test ECS
agent, which runs the task's entry point as a local process against a SQLite file), a second run changes
nothing, an upgrade migrates before the services move to the new image, and ``--delete`` tears it down. A
wrong environment file is refused naming the field.

What moto 5.2.1 does not do, and how the test stands (the template keeps every resource; cfn-lint checks it):
- AWS::SecretsManager::Secret has no CloudFormation model in moto (skipped with a warning): the four secrets
  are asserted in the deployed template, not in Secrets Manager;
- an ECS service's LoadBalancers are dropped: the load balancer, target group and listener are checked in
  elbv2, the service's attachment in the template;
- task-level Cpu/Memory of a task definition are not kept (the containers' are);
- NoEcho parameters are answered in clear (real CloudFormation answers ****);
- an updated task definition keeps PascalCase keys, and a VPC gateway attachment cannot be deleted: the
  server here is moto's with those two fixed (tests/deploy/cfn_moto.py);
- ECS runs no containers: tests/deploy's agent runs the migrate task's entry point as a process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from bench.harness.ecs_agent import EcsAgent, set_manual_transitions
from bench.harness.moto import AWS_ENV
from engines.catalog import BUILT_IN_ENGINES
from tests.deploy.cfn_moto import cfn_moto_server

DART = str(Path(sys.executable).parent / "dart")
NAME = "dart-ci"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/dart:1.0"
IMAGE_2 = "123456789012.dkr.ecr.us-east-1.amazonaws.com/dart:1.1"
IMAGE_3 = "123456789012.dkr.ecr.us-east-1.amazonaws.com/dart:1.2"
SUBNETS = [f"subnet-0123456789abcdef{i}" for i in range(4)]
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
        # (the task's image, the image of the API family's newest revision) when each task started
        self.started: list[tuple[str, str]] = []

    def start(self) -> ContainerAgent:
        """Start (again, after a stop) without creating the cluster: the stack creates it."""
        set_manual_transitions(self.endpoint)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ecs-agent", daemon=True)
        self._thread.start()
        return self

    def _start_task(self, task: dict[str, Any]) -> None:
        image = self._definition(task["taskDefinitionArn"])["containerDefinitions"][0]["image"]
        self.started.append((image, family_image(self.client, f"dart-{self.cluster}-api")))
        super()._start_task(task)

    def _definition(self, arn: str) -> dict[str, Any]:
        if arn not in self._definitions:
            definition = self.client.describe_task_definition(taskDefinition=arn)["taskDefinition"]
            for container in definition.get("containerDefinitions") or []:
                entry = [sys.executable if part == "python" else part
                         for part in container.get("entryPoint") or [DART]]
                container["command"] = entry + list(container.get("command") or [])
                container["environment"] = [*(container.get("environment") or []),
                                            *({"name": k, "value": v} for k, v in self.extra_env.items())]
            self._definitions[arn] = definition
        return self._definitions[arn]


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with cfn_moto_server() as endpoint:
        yield endpoint


def run_dart(args: list[str], endpoint: str, home: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DART_", "AWS_"))}
    env.update(AWS_ENV, DART_HOME=str(home), DART_AWS_ENDPOINT_URL=endpoint, AWS_ENDPOINT_URL=endpoint)
    return subprocess.run([DART, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def family_image(ecs: Any, family: str) -> str:
    """The image of a task family's newest revision: what its service runs once CloudFormation updated it
    (moto does not hand the new revision on to the service itself)."""
    definition = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
    return str(definition["containerDefinitions"][0]["image"])


def in_process_aws(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """This process's environment as run_dart gives a dart process (moto's endpoint, its credentials)."""
    for name in list(os.environ):
        if name.startswith(("DART_", "AWS_")):
            monkeypatch.delenv(name)
    for name, value in {**AWS_ENV, "DART_AWS_ENDPOINT_URL": endpoint, "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(name, value)


def client(service: str, endpoint: str) -> Any:
    return boto3.client(service, region_name="us-east-1", endpoint_url=endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def dart_in_process(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``dart`` in this process (the dry runs touch no AWS API): its exit code, stdout and stderr."""
    from services.runtime.cli import main

    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


BYO_ENVIRONMENT = {
    "name": "dart-byo", "image": IMAGE,
    "network": {"vpc_id": "vpc-0123456789abcdef0", "public_subnets": SUBNETS[:2], "task_subnets": SUBNETS[2:3],
                "database_subnets": SUBNETS[2:]},
    "database": {"url": "postgresql://dart:pw@db.example.com:5432/dart"},
    "api": {"internal": True, "certificate_arn": "arn:aws:acm:us-east-1:123456789012:certificate/abc"},
}


def test_templates_pass_cfn_lint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Both shapes of environment (VPC and RDS created; an existing VPC and database URL, HTTPS, internal)
    render, through ``dart deploy --dry-run --template-out``, templates cfn-lint finds nothing in."""
    outs = []
    for document in (ENVIRONMENT, BYO_ENVIRONMENT):
        env_file = tmp_path / f"{document['name']}.yaml"
        env_file.write_text(yaml.safe_dump(document))
        outs.append(tmp_path / f"{document['name']}.json")
        code, stdout, stderr = dart_in_process(
            ["deploy", "-f", str(env_file), "--dry-run", "--template-out", str(outs[-1])], capsys)
        assert code == 0, stderr
        assert f"dry run: would create or update stack {document['name']}" in stdout
    linted = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), *map(str, outs)], capture_output=True,
                            text=True, timeout=120, check=False)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    template = json.loads(outs[0].read_text())
    types = [r["Type"] for r in template["Resources"].values()]
    for kind in ("AWS::RDS::DBInstance", "AWS::ElasticLoadBalancingV2::LoadBalancer", "AWS::ECS::Cluster",
                 "AWS::SecretsManager::Secret", "AWS::Logs::LogGroup", "AWS::SQS::Queue", "AWS::IAM::Role"):
        assert kind in types, kind
    assert "ApiUrl" in template["Outputs"]

    # an existing VPC and database URL: the stack creates neither; the URL is a NoEcho parameter kept in the
    # stack's secret, never in the template
    byo = json.loads(outs[1].read_text())
    types = [r["Type"] for r in byo["Resources"].values()]
    assert "AWS::EC2::VPC" not in types and "AWS::RDS::DBInstance" not in types
    assert byo["Parameters"]["DatabaseUrl"]["NoEcho"] is True
    assert "db.example.com" not in outs[1].read_text()
    balancer = byo["Resources"]["LoadBalancer"]["Properties"]
    assert balancer["Scheme"] == "internal" and balancer["Subnets"] == SUBNETS[:2]
    listener = byo["Resources"]["ApiListener"]["Properties"]
    assert (listener["Port"], listener["Protocol"]) == (443, "HTTPS")
    assert byo["Outputs"]["ApiUrl"]["Value"] == {"Fn::Sub": ["${Url}/api/1", {
        "Url": {"Fn::Sub": "https://${LoadBalancer.DNSName}"}}]}


@pytest.mark.parametrize("document, field", [
    ({**ENVIRONMENT, "api": {"cpu": 300}}, "api: cpu must be one of"),
    ({**ENVIRONMENT, "workers": {"orchestratr": {}}}, "workers"),
    ({**ENVIRONMENT, "database": {"create": {}, "url_secret": "arn:x"}}, "database"),
    ({**ENVIRONMENT, "network": {"vpc_id": "vpc-0123456789abcdef0", "public_subnets": SUBNETS[:1]}}, "network"),
    ({**ENVIRONMENT, "network": {"vpc_id": "vpc-1", "public_subnets": SUBNETS[:2], "task_subnets": SUBNETS[:2]}},
     "network.vpc_id"),
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


def test_deploy_creates_upgrades_and_deletes_and_a_second_run_changes_nothing(
        moto: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
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
    in_process_aws(monkeypatch, moto)  # (the first run was a process; this one need not pay the start again)
    code, out, err = dart_in_process(["deploy", "-f", str(env_file), "--poll-seconds", "0.2"], capsys)
    assert code == 0, err
    assert f"stack {NAME}: no changes" in out
    assert cfn.describe_stack_events(StackName=NAME)["StackEvents"] == events_before
    assert cfn.describe_stacks(StackName=NAME)["Stacks"][0].get("LastUpdatedTime") == updated_before
    assert len(ecs.list_tasks(cluster=NAME, desiredStatus="STOPPED")["taskArns"]) == tasks_before

    # an upgrade: the migrate task runs on the new image while the API still runs the old one; then the
    # services and engines move to the new image
    env_file.write_text(yaml.safe_dump({**ENVIRONMENT, "image": IMAGE_2}))
    with agent:
        upgrade = run_dart(["deploy", "-f", str(env_file), "--poll-seconds", "0.2"], moto, tmp_path)
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr + "\n".join(agent.errors)
    assert f"stack {NAME}: updated" in upgrade.stdout
    assert agent.started == [(IMAGE, IMAGE), (IMAGE_2, IMAGE)]  # migrations before the new processes
    assert family_image(ecs, f"dart-{NAME}-api") == IMAGE_2
    assert ecs.describe_task_definition(taskDefinition=f"dart-{NAME}-s3_engine")["taskDefinition"][
        "containerDefinitions"][0]["image"] == IMAGE_2
    assert [t.exit_codes for t in agent.tasks.values()] == [[0], [0]], "".join(
        p.read_text() for p in tmp_path.glob("engine-*.log"))

    # a migration that fails stops the upgrade: the services keep the running image; the next deploy runs the
    # migration again (the services are not on the new image yet)
    env_file.write_text(yaml.safe_dump({**ENVIRONMENT, "image": IMAGE_3}))
    agent.extra_env["DART_DATABASE_URL"] = "postgresql://nobody@127.0.0.1:9/none?connect_timeout=1"
    with agent:
        code, _, err = dart_in_process(["deploy", "-f", str(env_file), "--poll-seconds", "0.2"], capsys)
    assert code == 1
    assert "the migrate task failed (exit codes [1]" in err and "Traceback" not in err, err
    parameters = {p["ParameterKey"]: p["ParameterValue"]
                  for p in cfn.describe_stacks(StackName=NAME)["Stacks"][0]["Parameters"]}
    assert (parameters["ServiceImage"], parameters["MigrationImage"]) == (IMAGE_2, IMAGE_3)
    agent.extra_env["DART_DATABASE_URL"] = f"sqlite:///{database}"
    agent._definitions.clear()  # (the agent's copies of the task definitions carry the environment)
    with agent:
        code, out, err = dart_in_process(["deploy", "-f", str(env_file), "--poll-seconds", "0.2"], capsys)
    assert code == 0, err
    assert "migrations applied" in out and "services running the new image" in out
    assert agent.started[-1] == (IMAGE_3, IMAGE_2)

    # tear down
    code, out, err = dart_in_process(["deploy", "-f", str(env_file), "--delete", "--poll-seconds", "0.2"], capsys)
    assert code == 0, err
    assert f"stack {NAME}: deleted" in out
    assert not [s for s in cfn.list_stacks()["StackSummaries"]
                if s["StackName"] == NAME and s["StackStatus"] != "DELETE_COMPLETE"]
    assert not sqs.list_queues(QueueNamePrefix=f"{NAME}-").get("QueueUrls")
    assert not ecs.list_task_definitions(familyPrefix=f"dart-{NAME}-", status="ACTIVE")["taskDefinitionArns"]
    code, out, _ = dart_in_process(["deploy", "-f", str(env_file), "--delete"], capsys)
    assert code == 0 and f"stack {NAME}: does not exist" in out


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


def test_the_template_follows_the_production_wiring(tmp_path: Path) -> None:
    """The stack's queues are the consumer groups the relay routes to (services.runtime.composition), its
    worker services the CLI's workers, and every built-in engine has its IAM access declared."""
    from services.runtime.composition import WORKERS, build, consumers
    from services.runtime.deploy.environment import WORKERS as DEPLOYED_WORKERS
    from services.runtime.deploy.iam import ENGINE_ACCESS
    from services.runtime.deploy.names import CONSUMER_GROUPS
    from services.runtime.settings import load_settings

    settings = load_settings({"DART_HOME": str(tmp_path)})
    container = build(settings)
    try:
        assert sorted(consumers(container)) == sorted(CONSUMER_GROUPS)
    finally:
        container.store.close()
    assert sorted(DEPLOYED_WORKERS) == sorted(WORKERS)
    assert {e.name for e in BUILT_IN_ENGINES} <= set(ENGINE_ACCESS)
