"""Where an action's engine output is kept, and how it is read back (issue 15).

- A local engine's stdout and stderr go to ``$DART_HOME/logs/actions/<action id>.log`` (the launcher opens it
  before the engine starts; a retry is its own action, so its own file). When the action ends they are also
  uploaded to ``<datastore s3_logs_path>/<action id>.log`` when S3 uploads are on (``DART_ACTION_LOGS_S3``).
- An ECS engine logs through the ``awslogs`` driver (engines/runner.py's task definition): CloudWatch Logs,
  group and stream prefix from the engine's task definition, stream ``<prefix>/<container>/<task id>``.

Reading takes a byte offset and answers the text from there (at most ``MAX_CHUNK``) with the next offset, so
a reader can follow a running action by asking again from where it stopped."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from services.domain.s3_range import split_s3

log = logging.getLogger("dart.action_logs")
MAX_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class LogChunk:
    text: str
    offset: int
    next_offset: int
    source: str | None  # local, s3, cloudwatch; None: nothing logged (yet)


def local_log_path(home: Path, action_id: str) -> Path:
    return home / "logs" / "actions" / f"{action_id}.log"


def s3_log_path(datastore: dict[str, Any] | None, action_id: str) -> str | None:
    base = (datastore or {}).get("s3_logs_path")
    return f"{str(base).rstrip('/')}/{action_id}.log" if base else None


def _decode(raw: bytes, offset: int) -> LogChunk:
    return LogChunk(raw.decode("utf-8", errors="replace"), offset, offset + len(raw), None)


class ActionLogs:
    """Reads (and, for local engines, uploads) action logs. ``aws`` gives boto3 clients by service name."""

    def __init__(self, home: Path, aws: Any, upload_to_s3: bool) -> None:
        self.home = home
        self.aws = aws
        self.upload_to_s3 = upload_to_s3

    # --------------------------------------------------------------------------------------- writing
    def open_for(self, action_id: str) -> Any:
        path = local_log_path(self.home, action_id)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return open(path, "ab")  # handed to the engine process; the launcher closes its copy

    def upload(self, action_id: str, datastore: dict[str, Any] | None) -> str | None:
        """Copy the local log to the datastore's s3_logs_path (when uploads are on); the S3 path, or None."""
        target = s3_log_path(datastore, action_id)
        path = local_log_path(self.home, action_id)
        if not (self.upload_to_s3 and target and path.is_file()):
            return None
        bucket, key = split_s3(target)
        try:
            self.aws.client("s3").upload_file(str(path), bucket, key)
        except (BotoCoreError, ClientError, OSError) as exc:
            log.warning("could not upload the log of action %s to %s: %s", action_id, target, exc)
            return None
        return target

    # --------------------------------------------------------------------------------------- reading
    def read(self, action: dict[str, Any], engine: dict[str, Any] | None, datastore: dict[str, Any] | None,
             offset: int = 0) -> LogChunk:
        action_id = str(action["id"])
        path = local_log_path(self.home, action_id)
        if path.is_file():
            with open(path, "rb") as f:
                f.seek(offset)
                return _with_source(_decode(f.read(MAX_CHUNK), offset), "local")
        task = str(action.get("ecs_task_arn") or "")
        if task.startswith("arn:"):
            found = self._cloudwatch(task, engine, offset)
            if found is not None:
                return found
        s3_path = s3_log_path(datastore, action_id)
        if s3_path and self.upload_to_s3:
            found = self._s3(s3_path, offset)
            if found is not None:
                return found
        return LogChunk("", offset, offset, None)

    def _s3(self, path: str, offset: int) -> LogChunk | None:
        bucket, key = split_s3(path)
        try:
            body = self.aws.client("s3").get_object(Bucket=bucket, Key=key,
                                                    Range=f"bytes={offset}-{offset + MAX_CHUNK - 1}")["Body"]
            return _with_source(_decode(body.read(), offset), "s3")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("InvalidRange", "416"):
                return LogChunk("", offset, offset, "s3")
            return None
        except BotoCoreError:
            return None

    def _cloudwatch(self, task_arn: str, engine: dict[str, Any] | None, offset: int) -> LogChunk | None:
        where = awslogs_stream(engine, task_arn)
        if where is None:
            return None
        group, stream = where
        client = self.aws.client("logs")
        lines: list[str] = []
        token: str | None = None
        try:
            while True:
                kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
                if token:
                    kwargs["nextToken"] = token
                page = client.get_log_events(**kwargs)
                lines += [e["message"] for e in page.get("events", [])]
                if not page.get("events") or page.get("nextForwardToken") in (None, token):
                    break
                token = page["nextForwardToken"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return LogChunk("", offset, offset, "cloudwatch")
            return None
        except BotoCoreError:
            return None
        raw = "".join(line + "\n" for line in lines).encode()
        return _with_source(_decode(raw[offset:offset + MAX_CHUNK], offset), "cloudwatch")


def _with_source(chunk: LogChunk, source: str) -> LogChunk:
    return LogChunk(chunk.text, chunk.offset, chunk.next_offset, source)


def awslogs_stream(engine: dict[str, Any] | None, task_arn: str) -> tuple[str, str] | None:
    """(log group, log stream) of an ECS task's first container logging with ``awslogs``, per its engine's
    task definition; None when it does not log there."""
    definition = (engine or {}).get("ecs_task_definition") or {}
    for container in definition.get("containerDefinitions") or []:
        config = container.get("logConfiguration") or {}
        options = config.get("options") or {}
        if config.get("logDriver") == "awslogs" and options.get("awslogs-group"):
            prefix = options.get("awslogs-stream-prefix")
            task_id = task_arn.rsplit("/", 1)[-1]
            stream = f"{prefix}/{container.get('name')}/{task_id}" if prefix else task_id
            return str(options["awslogs-group"]), stream
    return None
