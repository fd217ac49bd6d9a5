"""IAM roles, least privilege per process: each ECS task gets a role with only what that process's code calls
(the API registers task definitions and keeps datastore secrets but cannot run a task; only the launcher runs
tasks, and only the engines' families on this cluster; each engine only what its actions need), and the
execution roles hand a task only the secrets its process reads."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from troposphere import GetAtt, Sub, Template, iam

from services.runtime.deploy import names
from services.runtime.deploy.data import Shared
from services.runtime.deploy.environment import DeployError, Environment

ARN = "arn:${AWS::Partition}"
# What each built-in engine's actions touch. An engine missing here cannot be deployed: its access must be
# decided, not defaulted.
ENGINE_ACCESS: dict[str, tuple[str, ...]] = {
    "no_op_engine": (),
    "s3_engine": ("s3_read", "s3_write"),
    "postgresql_engine": ("s3_read", "s3_write"),  # load from S3, copy_to_s3
    "duckdb_engine": ("s3_read", "s3_write"),
    "redshift_engine": ("s3_read", "s3_write"),  # manifests and unloads on the datasets' buckets
    "emr_engine": ("s3_read", "s3_write", "emr"),
    "dynamodb_engine": ("s3_read", "dynamodb"),
}
SQS_CONSUME = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueUrl",
               "sqs:GetQueueAttributes", "sqs:SendMessage"]  # SendMessage: a retry or a dead letter republished
SQS_LIST = {"Effect": "Allow", "Action": ["sqs:ListQueues"], "Resource": "*"}  # kombu looks queues up by prefix


@dataclass
class Roles:
    api_execution: Any
    server_execution: Any
    engine_execution: Any
    tasks: dict[str, Any] = field(default_factory=dict)  # process -> task role ARN


def add_roles(t: Template, env: Environment, shared: Shared, cluster: Any, engines: list[str]) -> Roles:
    logs = _log_writes(env)
    pull = _image_pull(env)
    roles = Roles(
        _role(t, "ApiExecutionRole", [*logs, *pull, _read_secrets(shared.database_url_secret, shared.bootstrap_secret)]),
        _role(t, "ServerExecutionRole", [*logs, *pull, _read_secrets(shared.database_url_secret)]),
        _role(t, "EngineExecutionRole", [*logs, *pull]),
    )
    for engine in engines:
        if engine not in ENGINE_ACCESS:
            raise DeployError(f"engine {engine}: its IAM access is not declared (ENGINE_ACCESS in "
                              "services/runtime/deploy/iam.py)")
        statements = [s for need in ENGINE_ACCESS[engine] for s in _engine_statements(env, need)]
        roles.tasks[f"engine-{engine}"] = _task_role(t, names.logical("engine", engine, "role"), statements)
    q = names.queue_names(env)
    own = {g: _queue_arns(shared, q.group(g), q.dead(g)) for g in (*names.CONSUMER_GROUPS, "inbox")}
    roles.tasks["api"] = _task_role(t, "ApiRole", [
        {"Effect": "Allow", "Action": ["secretsmanager:CreateSecret", "secretsmanager:PutSecretValue",
                                       "secretsmanager:GetSecretValue", "secretsmanager:DeleteSecret",
                                       "secretsmanager:DescribeSecret"],
         "Resource": Sub(f"{ARN}:secretsmanager:${{AWS::Region}}:${{AWS::AccountId}}:secret:{names.DATASTORE_SECRETS}")},
        # engines registered with an ecs_task_definition get it registered; running one is the launcher's
        {"Effect": "Allow", "Action": ["ecs:RegisterTaskDefinition", "ecs:DeregisterTaskDefinition",
                                       "ecs:DescribeTaskDefinition"], "Resource": "*"},
        *_s3(env, write=False),  # POST /dataset/guess reads a sample; local engines' logs on S3
        {"Effect": "Allow", "Action": ["logs:GetLogEvents"],  # GET /action/{id}/logs of an ECS engine
         "Resource": Sub(f"{ARN}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:"
                         f"{names.log_group(env, 'engines')}:log-stream:*")},
    ])
    roles.tasks["relay"] = _task_role(t, "RelayRole", [
        {"Effect": "Allow", "Action": ["sqs:SendMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"],
         "Resource": [arn for name, arn in shared.queues.items()
                      if not name.endswith("-dead") and name != q.inbox()]},
        SQS_LIST,
    ])
    roles.tasks["migrate"] = _task_role(t, "MigrateRole", [
        {"Effect": "Allow", "Action": ["ecs:DescribeTaskDefinition"], "Resource": "*"}])
    for worker in ("orchestrator", "notifier", "inbox"):
        roles.tasks[f"worker-{worker}"] = _task_role(t, names.logical("worker", worker, "role"),
                                                     [_consume(own[worker]), SQS_LIST])
    roles.tasks["worker-scheduler"] = _task_role(t, "WorkerSchedulerRole", [])  # the database only
    notifications = _notification_queue(env)
    roles.tasks["worker-subscriptions"] = _task_role(t, "WorkerSubscriptionsRole", [
        _consume(own["subscriptions"] + notifications), SQS_LIST,
        *_s3(env, write=False, objects=False),  # listings only
    ])
    roles.tasks["worker-launcher"] = _task_role(t, "WorkerLauncherRole", [
        _consume(own["launcher"]), SQS_LIST, *_launch(env, cluster, roles, engines)])
    return roles


def _launch(env: Environment, cluster: Any, roles: Roles, engines: list[str]) -> list[dict[str, Any]]:
    families = [names.engine_family(env, e) for e in engines] + list(env.extra_engine_families)
    on_cluster = {"ArnEquals": {"ecs:cluster": GetAtt(cluster, "Arn")}}
    engine_roles = [roles.tasks[f"engine-{e}"] for e in engines] + [GetAtt(roles.engine_execution, "Arn")]
    return [
        {"Effect": "Allow", "Action": ["ecs:RunTask"], "Condition": on_cluster,
         "Resource": [Sub(f"{ARN}:ecs:${{AWS::Region}}:${{AWS::AccountId}}:task-definition/{f}:*") for f in families]},
        {"Effect": "Allow", "Action": ["ecs:ListTasks"], "Resource": "*", "Condition": on_cluster},
        {"Effect": "Allow", "Action": ["ecs:DescribeTasks", "ecs:StopTask"],
         "Resource": Sub(f"{ARN}:ecs:${{AWS::Region}}:${{AWS::AccountId}}:task/${{{cluster.title}}}/*")},
        {"Effect": "Allow", "Action": ["ecs:DescribeTaskDefinition"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["iam:PassRole"], "Resource": engine_roles,
         "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}},
    ]


def _engine_statements(env: Environment, need: str) -> list[dict[str, Any]]:
    if need == "s3_read":
        return _s3(env, write=False)
    if need == "s3_write":
        return [s for s in _s3(env, write=True) if "s3:PutObject" in s["Action"]]
    if need == "emr":
        return [
            {"Effect": "Allow", "Action": [
                "elasticmapreduce:RunJobFlow", "elasticmapreduce:DescribeCluster", "elasticmapreduce:ListClusters",
                "elasticmapreduce:AddJobFlowSteps", "elasticmapreduce:DescribeStep", "elasticmapreduce:ListSteps",
                "elasticmapreduce:CancelSteps", "elasticmapreduce:TerminateJobFlows", "elasticmapreduce:AddTags",
                "elasticmapreduce:ListInstances"], "Resource": "*"},
            {"Effect": "Allow", "Action": ["iam:PassRole"],
             "Resource": [Sub(f"{ARN}:iam::${{AWS::AccountId}}:role/EMR_DefaultRole"),
                          Sub(f"{ARN}:iam::${{AWS::AccountId}}:role/EMR_EC2_DefaultRole")],
             "Condition": {"StringEquals": {"iam:PassedToService": ["elasticmapreduce.amazonaws.com",
                                                                    "ec2.amazonaws.com"]}}},
        ]
    if need == "dynamodb":
        return [{"Effect": "Allow", "Action": [
            "dynamodb:CreateTable", "dynamodb:DeleteTable", "dynamodb:DescribeTable", "dynamodb:UpdateTable",
            "dynamodb:BatchWriteItem", "dynamodb:PutItem"],
            "Resource": Sub(f"{ARN}:dynamodb:${{AWS::Region}}:${{AWS::AccountId}}:table/*")}]
    raise DeployError(f"unknown engine access {need!r}")


def buckets(env: Environment) -> list[str]:
    root = env.datastores_root.removeprefix("s3://").split("/", 1)[0]
    return list(dict.fromkeys([*env.data_buckets, root]))


def _s3(env: Environment, write: bool, objects: bool = True) -> list[dict[str, Any]]:
    found = buckets(env)
    statements: list[dict[str, Any]] = [{"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                                         "Resource": [Sub(f"{ARN}:s3:::{b}") for b in found]}]
    if objects:
        actions = ["s3:GetObject"] + (["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                                       "s3:ListMultipartUploadParts"] if write else [])
        statements.append({"Effect": "Allow", "Action": actions, "Resource": [Sub(f"{ARN}:s3:::{b}/*") for b in found]})
    return statements


def _consume(queues: list[Any]) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": SQS_CONSUME, "Resource": queues}


def _queue_arns(shared: Shared, *queue_names: str) -> list[Any]:
    return [shared.queues[n] for n in queue_names]


def _notification_queue(env: Environment) -> list[Any]:
    if not env.s3_notification_queue:
        return []
    name = env.s3_notification_queue.rstrip("/").rsplit("/", 1)[-1]
    return [Sub(f"{ARN}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:{name}")]


def _read_secrets(*secrets: Any) -> dict[str, Any]:
    arns = [s if not isinstance(s, str) or s.startswith("arn:")
            else Sub(f"{ARN}:secretsmanager:${{AWS::Region}}:${{AWS::AccountId}}:secret:{s}-*") for s in secrets]
    return {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": arns}


def _log_writes(env: Environment) -> list[dict[str, Any]]:
    group = Sub(f"{ARN}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{names.log_group(env, '')}*")
    return [{"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": group}]


def _image_pull(env: Environment) -> list[dict[str, Any]]:
    """ECR pulls when the image lives in ECR (its repository only); a public image needs nothing."""
    found = re.fullmatch(r"(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com/([^:@]+)(?:[:@].*)?", env.image)
    if not found:
        return []
    account, region, repository = found.groups()
    return [
        {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                                       "ecr:BatchCheckLayerAvailability"],
         "Resource": Sub(f"{ARN}:ecr:{region}:{account}:repository/{repository}")},
    ]


def _role(t: Template, title: str, statements: list[dict[str, Any]]) -> Any:
    policies = [iam.Policy(PolicyName=title, PolicyDocument={"Version": "2012-10-17", "Statement": statements})]
    return t.add_resource(iam.Role(title, AssumeRolePolicyDocument={
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                       "Action": "sts:AssumeRole"}],
    }, Policies=policies if statements else []))


def _task_role(t: Template, title: str, statements: list[dict[str, Any]]) -> Any:
    return GetAtt(_role(t, title, statements), "Arn")
