"""The ECS side: the cluster, one Fargate task definition per process (API, relay, each worker, the one-off
migrate task) and per built-in engine, all from one image, and the services that keep the processes running
(the API's behind the load balancer)."""

from __future__ import annotations

import json
from typing import Any

from troposphere import FindInMap, GetAtt, Join, Ref, Region, Template, ecs

from services.runtime.deploy import names
from services.runtime.deploy.data import Shared, add_log_group
from services.runtime.deploy.environment import WORKERS, Environment, ServiceSize, TaskSize
from services.runtime.deploy.iam import Roles
from services.runtime.deploy.network import API_PORT, Net
from services.runtime.settings import Settings, variable

STATE = "ServicesState"  # running: services at their counts; stopped: 0 (a new stack, before its migration)
COUNTS = "ServiceCounts"  # the mapping state -> service -> desired count
SERVICE_IMAGE = "ServiceImage"
MIGRATION_IMAGE = "MigrationImage"
MIGRATE_ENTRY = ["python", "-m", "services.runtime.deploy.bootstrap"]


def add_cluster(t: Template, env: Environment) -> Any:
    return t.add_resource(ecs.Cluster("Cluster", ClusterName=env.name, ClusterSettings=[
        ecs.ClusterSetting(Name="containerInsights", Value="disabled")]))  # metrics cost; enable when needed


def process_environment(env: Environment, cluster: Any, net: Net, api_url: Any,
                        engines: list[str]) -> dict[str, Any]:
    """The DART_* settings every dart process of the stack runs with (services/runtime/settings.py)."""
    values: dict[str, Any] = {
        "env_name": env.name, "aws_region": env.region, "ecs_cluster": Ref(cluster), "secrets": "aws",
        "broker_url": "sqs://",  # credentials from the task role
        "queue_prefix": env.queue_prefix, "api_url": api_url, "s3_datastores_root": env.datastores_root,
        "log_format": "json",
    }
    if env.outside_readers:
        values["outside_readers"] = json.dumps(env.outside_readers, sort_keys=True)
    if env.s3_notification_queue:
        values["s3_notification_queue"] = env.s3_notification_queue
    for name, value in sorted(env.settings.items()):
        values[name] = str(value).lower() if isinstance(value, bool) else str(value)
    # An engine's registration is refused past max_task_memory_mb: let the largest engine of the file fit.
    limit = int(env.settings.get("max_task_memory_mb", Settings.model_fields["max_task_memory_mb"].default))
    largest = max([env.engine_size(e).memory for e in engines] or [0])
    values["max_task_memory_mb"] = str(max(limit, largest))
    found = {variable(k): v for k, v in values.items()}
    # The launcher's Fargate network for engine tasks (read by ecs_launcher_from_settings when settings carry
    # them; see docs/deploy.md).
    found["DART_ECS_SUBNETS"] = _joined(net.task_subnets)
    found["DART_ECS_SECURITY_GROUPS"] = net.task_group
    found["DART_ECS_ASSIGN_PUBLIC_IP"] = "true" if net.assign_public_ip else "false"
    found["DART_ECS_LAUNCH_TYPE"] = "FARGATE"
    return found


def _joined(items: list[Any]) -> Any:
    if all(isinstance(i, str) for i in items):
        return ",".join(items)
    return Join(",", items)


def _task(t: Template, env: Environment, shared: Shared, *, process: str, family: str, container: str,
          size: TaskSize, image: Any, role: Any, execution: Any, environment: dict[str, Any],
          secrets: dict[str, Any], command: list[str] | None = None, entry: list[str] | None = None,
          port: int | None = None, log_group: Any = None, stream_prefix: str = "") -> Any:
    log_group = log_group or add_log_group(t, env, shared, process)
    definition = ecs.ContainerDefinition(
        Name=container, Image=image, Essential=True,
        Cpu=size.cpu, Memory=size.memory,  # the whole task's: one container per task
        Environment=[ecs.Environment(Name=k, Value=v) for k, v in sorted(environment.items())],
        Secrets=[ecs.Secret(Name=k, ValueFrom=v) for k, v in sorted(secrets.items())],
        LogConfiguration=ecs.LogConfiguration(LogDriver="awslogs", Options={
            "awslogs-group": Ref(log_group), "awslogs-region": Region, "awslogs-stream-prefix": stream_prefix or process}),
        StopTimeout=30,
    )
    if command:
        definition.Command = command
    if entry:
        definition.EntryPoint = entry
    if port:
        definition.PortMappings = [ecs.PortMapping(ContainerPort=port, Protocol="tcp")]
    return t.add_resource(ecs.TaskDefinition(
        names.logical("task", process), Family=family, Cpu=str(size.cpu), Memory=str(size.memory),
        NetworkMode="awsvpc", RequiresCompatibilities=["FARGATE"], ExecutionRoleArn=GetAtt(execution, "Arn"),
        TaskRoleArn=role, ContainerDefinitions=[definition],
        RuntimePlatform=ecs.RuntimePlatform(CpuArchitecture="X86_64", OperatingSystemFamily="LINUX")))


def _count(t: Template, process: str, count: int) -> Any:
    """The service's desired count looked up by the state parameter (a mapping, not a condition: the count
    then refers to the parameter directly, which moto's CloudFormation needs to see a change)."""
    key = names.logical(process)
    counts = t.mappings.setdefault(COUNTS, {"running": {}, "stopped": {}})
    counts["running"][key] = count
    counts["stopped"][key] = 0
    return FindInMap(COUNTS, Ref(STATE), key)


def _service(t: Template, env: Environment, cluster: Any, net: Net, process: str, task: Any, size: ServiceSize,
             security_group: Any, *, single_writer: bool = False, **extra: Any) -> Any:
    # A single writer (the relay) is stopped before its replacement starts; two would publish the same events
    # twice (harmless, consumers skip repeats, but pointless).
    minimum, maximum = (0, 100) if single_writer else (100, 200)
    return t.add_resource(ecs.Service(
        names.logical("service", process), Cluster=Ref(cluster), ServiceName=process, LaunchType="FARGATE",
        TaskDefinition=Ref(task), DesiredCount=_count(t, process, size.count),
        NetworkConfiguration=ecs.NetworkConfiguration(AwsvpcConfiguration=ecs.AwsvpcConfiguration(
            Subnets=net.task_subnets, SecurityGroups=[security_group],
            AssignPublicIp="ENABLED" if net.assign_public_ip else "DISABLED")),
        DeploymentConfiguration=ecs.DeploymentConfiguration(
            MinimumHealthyPercent=minimum, MaximumPercent=maximum,
            DeploymentCircuitBreaker=ecs.DeploymentCircuitBreaker(Enable=True, Rollback=True)),
        EnableECSManagedTags=True, PropagateTags="SERVICE", **extra))


def add_processes(t: Template, env: Environment, shared: Shared, roles: Roles, cluster: Any, net: Net,
                  api_url: Any, target_group: Any, listener: Any, engines: list[str]) -> Any:
    """Every dart process's task definition and service, and the migrate task; returns the migrate task."""
    base = process_environment(env, cluster, net, api_url, engines)
    database = {"DART_DATABASE_URL": shared.database_url_secret}
    image = Ref(SERVICE_IMAGE)
    api_task = _task(t, env, shared, process="api", family=f"dart-{env.name}-api", container="api", size=env.api,
                     image=image, role=roles.tasks["api"], execution=roles.api_execution, environment=base,
                     secrets={**database, "DART_BOOTSTRAP_API_KEY": shared.bootstrap_secret},
                     command=["api", "--host", "0.0.0.0", "--port", str(API_PORT), "--workers", str(env.api.workers),
                              "--threads", str(env.api.threads)], port=API_PORT)
    _service(t, env, cluster, net, "api", api_task, env.api, net.api_group, DependsOn=listener.title,
             HealthCheckGracePeriodSeconds=60,
             LoadBalancers=[ecs.LoadBalancer(ContainerName="api", ContainerPort=API_PORT,
                                             TargetGroupArn=Ref(target_group))])
    relay = _task(t, env, shared, process="relay", family=f"dart-{env.name}-relay", container="relay",
                  size=env.relay, image=image, role=roles.tasks["relay"], execution=roles.server_execution,
                  environment=base, secrets=database, command=["relay"])
    _service(t, env, cluster, net, "relay", relay, env.relay, net.task_group, single_writer=True)
    for worker in WORKERS:
        size = env.worker(worker)
        task = _task(t, env, shared, process=f"worker-{worker}", family=f"dart-{env.name}-worker-{worker}",
                     container=worker, size=size, image=image, role=roles.tasks[f"worker-{worker}"],
                     execution=roles.server_execution, environment=base, secrets=database,
                     command=["worker", worker])
        _service(t, env, cluster, net, f"worker-{worker}", task, size, net.task_group)
    return _task(t, env, shared, process="migrate", family=names.migrate_family(env), container="migrate",
                 size=TaskSize(cpu=256, memory=1024), image=Ref(MIGRATION_IMAGE), role=roles.tasks["migrate"],
                 execution=roles.server_execution, environment=base, secrets=database, entry=MIGRATE_ENTRY)


def add_engines(t: Template, env: Environment, shared: Shared, roles: Roles, engines: dict[str, str]) -> list[Any]:
    """One task definition per built-in engine (``python -m <module>`` in the one image); the launcher runs
    them with the action's variables as container overrides. They log to one group, ``/dart/<env>/engines``,
    stream ``<engine>/<container>/<task id>``: where the API reads an action's log (engines/runner.awslogs)."""
    group = add_log_group(t, env, shared, "engines")
    found = []
    for engine, module in engines.items():
        found.append(_task(
            t, env, shared, process=f"engine-{engine}", family=names.engine_family(env, engine),
            container=names.container_name(engine), size=env.engine_size(engine), image=Ref(SERVICE_IMAGE),
            role=roles.tasks[f"engine-{engine}"], execution=roles.engine_execution,
            environment={"AWS_DEFAULT_REGION": env.region, "DART_ENGINE_DATA_DIR": "/tmp/dart-engine"},
            secrets={}, entry=["python", "-m", module], log_group=group, stream_prefix=engine))
    return found
