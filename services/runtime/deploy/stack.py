"""Creating, upgrading and deleting an environment's stack through CloudFormation (boto3 at
DART_AWS_ENDPOINT_URL when set). ``create_stack``/``update_stack`` rather than change sets: moto's
CloudFormation does not compute a stack's outputs after executing a change set, and the tests deploy there.

An upgrade runs the migrations once, before any process of the new image starts:
1. the stack is updated with the new image on the migrate task only (``MigrationImage``; the services keep
   ``ServiceImage``); a new stack is created with its services at 0 tasks (``ServicesState=stopped``);
2. ``dart deploy`` runs the migrate task (``dart db upgrade`` and the built-in engines' registration, in the
   new image) and waits for it to exit 0;
3. the stack is updated with ``ServiceImage`` = the new image and the services running: ECS replaces the tasks.
A step with nothing to change is skipped (CloudFormation's "didn't contain changes"), so a second run of the
same file changes nothing and runs no migration."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from services.runtime.deploy import names
from services.runtime.deploy.environment import DeployError, Environment
from services.runtime.deploy.tasks import MIGRATION_IMAGE, SERVICE_IMAGE, STATE

BODY_LIMIT = 51_200  # CloudFormation's TemplateBody limit; larger templates go through S3 (TemplateURL)
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
CAPABILITIES = ["CAPABILITY_IAM"]


@dataclass
class Outcome:
    status: str  # "created", "updated", "no changes", "deleted", "absent"
    outputs: dict[str, str] = field(default_factory=dict)
    migrated: bool = False
    steps: list[str] = field(default_factory=list)


class Deployer:
    def __init__(self, env: Environment, endpoint_url: str | None = None, poll_seconds: float = 5.0,
                 say: Callable[[str], None] = print, timeout_seconds: float = 3600.0) -> None:
        self.env = env
        self.stack_name = env.name
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.say = say
        session = boto3.Session(region_name=env.region)
        self.cloudformation = session.client("cloudformation", endpoint_url=endpoint_url or None)
        self.ecs = session.client("ecs", endpoint_url=endpoint_url or None)
        self.s3 = session.client("s3", endpoint_url=endpoint_url or None)
        self.sts = session.client("sts", endpoint_url=endpoint_url or None)

    # -------------------------------------------------------------------------------------- deploy
    def deploy(self, template: str, force_migrate: bool = False) -> Outcome:
        stack = self.describe()
        if stack is not None:
            status = stack["StackStatus"]
            if status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED", "REVIEW_IN_PROGRESS"):
                raise DeployError(f"stack {self.stack_name} is {status} (its creation did not finish): remove it "
                                  "with `dart deploy -f FILE --delete`, then deploy again")
            if status.endswith("_IN_PROGRESS"):
                raise DeployError(f"stack {self.stack_name} is busy ({status}); try again when it is done")
        source = self._template_source(template)
        image = self.env.image
        outcome = Outcome("no changes")
        if stack is None:
            self._apply("CREATE", source, {SERVICE_IMAGE: image, MIGRATION_IMAGE: image, STATE: "stopped"})
            outcome.status = "created"
            outcome.steps.append("stack created with its services stopped")
            running_image, was_stopped = "", True
        else:
            current = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []}
            running_image = current.get(SERVICE_IMAGE, "")
            was_stopped = current.get(STATE) == "stopped"
            prepared = {SERVICE_IMAGE: current.get(SERVICE_IMAGE) or image, MIGRATION_IMAGE: image,
                        STATE: current.get(STATE) or "running"}
            if self._apply("UPDATE", source, prepared):
                outcome.status = "updated"
                outcome.steps.append("stack updated (the migrate task on the new image)")
        # The services move to an image only after its migration succeeded: services not on this image yet
        # (a new image, or a deploy whose migration failed) mean the migration is still to run.
        if force_migrate or was_stopped or running_image != image:
            self.migrate()
            outcome.migrated = True
            outcome.status = outcome.status if outcome.status != "no changes" else "updated"
            outcome.steps.append("migrations applied and built-in engines registered (migrate task)")
        if self._apply("UPDATE", source, {SERVICE_IMAGE: image, MIGRATION_IMAGE: image, STATE: "running"}):
            outcome.status = outcome.status if outcome.status != "no changes" else "updated"
            outcome.steps.append("services running the new image")
        outcome.outputs = self.outputs()
        return outcome

    def describe(self) -> dict[str, Any] | None:
        try:
            stacks = self.cloudformation.describe_stacks(StackName=self.stack_name)["Stacks"]
        except ClientError as exc:
            if "does not exist" in str(exc):
                return None
            raise
        live = [s for s in stacks if s["StackStatus"] != "DELETE_COMPLETE"]
        return live[0] if live else None

    def outputs(self) -> dict[str, str]:
        stack = self.describe() or {}
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}

    def _parameters(self, values: dict[str, str]) -> list[dict[str, str]]:
        found = dict(values)
        if self.env.database_mode == "url":
            found["DatabaseUrl"] = self.env.database.url
        return [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(found.items())]

    def _template_source(self, template: str) -> dict[str, str]:
        """TemplateBody, or TemplateURL after an upload to the deploy bucket when the template is too long
        for a body. The key is the template's hash: the same template is the same object."""
        body = template if len(template.encode()) <= BODY_LIMIT else None
        if body is not None:
            return {"TemplateBody": body}
        bucket = self.env.template_bucket or self._default_bucket()
        key = f"dart/{self.env.name}/template-{hashlib.sha256(template.encode()).hexdigest()[:20]}.json"
        self.s3.put_object(Bucket=bucket, Key=key, Body=template.encode(), ContentType="application/json")
        # Path-style, as CloudFormation reads it (moto's CloudFormation reads the same form from its S3).
        return {"TemplateURL": f"https://s3.{self.env.region}.amazonaws.com/{bucket}/{key}"}

    def _default_bucket(self) -> str:
        account = self.sts.get_caller_identity()["Account"]
        bucket = f"dart-deploy-{account}-{self.env.region}"
        try:
            self.s3.head_bucket(Bucket=bucket)
        except ClientError:
            extra = {} if self.env.region == "us-east-1" else {
                "CreateBucketConfiguration": {"LocationConstraint": self.env.region}}
            self.s3.create_bucket(Bucket=bucket, **extra)
            self.s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
                "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True})
            self.say(f"created bucket {bucket} for templates longer than {BODY_LIMIT} bytes")
        return bucket

    def _apply(self, kind: str, source: dict[str, str], values: dict[str, str]) -> bool:
        """Create the stack, or update it and wait; False when an update would change nothing (CloudFormation
        answers "No updates are to be performed", and nothing is recorded on the stack)."""
        tags = [{"Key": k, "Value": v} for k, v in sorted({"dart": self.env.name, **self.env.tags}.items())]
        kwargs = dict(StackName=self.stack_name, Capabilities=CAPABILITIES, Parameters=self._parameters(values),
                      Tags=tags, **source)
        try:
            if kind == "CREATE":
                self.cloudformation.create_stack(**kwargs)
            else:
                self.cloudformation.update_stack(**kwargs)
        except ClientError as exc:
            if any(marker in str(exc) for marker in NO_CHANGES):
                return False
            raise DeployError(f"CloudFormation refused the {kind.lower()}: {exc}") from None
        stack = self._poll(lambda: self.describe() or {"StackStatus": "DELETE_COMPLETE"},
                           lambda s: not s["StackStatus"].endswith("_IN_PROGRESS"), f"stack {kind.lower()}")
        if stack["StackStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            raise DeployError(f"stack {self.stack_name}: {stack['StackStatus']}: {self._failures()}")
        return True

    def _failures(self) -> str:
        events = self.cloudformation.describe_stack_events(StackName=self.stack_name)["StackEvents"]
        failed = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}" for e in events
                  if e.get("ResourceStatus", "").endswith("_FAILED")]
        return "; ".join(failed[:5]) or "see the stack's events"

    def _poll(self, read: Callable[[], Any], done: Callable[[Any], bool], what: str) -> Any:
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            found = read()
            if done(found):
                return found
            if time.monotonic() > deadline:
                raise DeployError(f"{what}: still not done after {self.timeout_seconds:.0f} s")
            time.sleep(self.poll_seconds)

    # ------------------------------------------------------------------------------------- migrate
    def migrate(self) -> str:
        """Run the migrate task once and wait for it to exit 0; returns its task ARN."""
        out = self.outputs()
        network = {"awsvpcConfiguration": {"subnets": out["MigrateSubnets"].split(","),
                                           "securityGroups": [out["MigrateSecurityGroup"]],
                                           "assignPublicIp": out["MigrateAssignPublicIp"]}}
        response = self.ecs.run_task(cluster=out["Cluster"], taskDefinition=out["MigrateTaskDefinition"],
                                     launchType="FARGATE", count=1, startedBy="dart-deploy",
                                     networkConfiguration=network)
        if not response.get("tasks"):
            reasons = ", ".join(str(f.get("reason")) for f in response.get("failures") or []) or "no task"
            raise DeployError(f"the migrate task could not start: {reasons}")
        arn = response["tasks"][0]["taskArn"]
        self.say(f"migrate task {arn.rsplit('/', 1)[-1]} started; waiting for it to finish")
        task = self._poll(lambda: self.ecs.describe_tasks(cluster=out["Cluster"], tasks=[arn])["tasks"][0],
                          lambda t: t.get("lastStatus") == "STOPPED", "migrate task")
        codes = [c.get("exitCode") for c in task.get("containers") or []]
        if not codes or any(code != 0 for code in codes):
            raise DeployError(f"the migrate task failed (exit codes {codes}, {task.get('stoppedReason', '')}); "
                              f"its log is in {names.log_group(self.env, 'migrate')}. Nothing else was changed: "
                              "the services still run the previous image")
        return str(arn)

    # -------------------------------------------------------------------------------------- delete
    def delete(self) -> Outcome:
        stack = self.describe()
        if stack is None:
            return Outcome("absent")
        stack_id = stack["StackId"]
        try:
            self.cloudformation.delete_stack(StackName=stack_id)
        except ClientError as exc:
            raise DeployError(f"CloudFormation could not delete stack {self.stack_name}: {exc}") from None

        def read() -> dict[str, Any]:
            found = self.cloudformation.describe_stacks(StackName=stack_id)["Stacks"]
            return found[0] if found else {"StackStatus": "DELETE_COMPLETE"}

        done = self._poll(read, lambda s: not s["StackStatus"].endswith("_IN_PROGRESS"), "stack deletion")
        if done["StackStatus"] != "DELETE_COMPLETE":
            raise DeployError(f"stack {self.stack_name}: {done['StackStatus']}: {self._failures()}")
        return Outcome("deleted")
