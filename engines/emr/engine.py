"""The emr_engine's actions, each a short function over the EMR hook (engines.emr.cluster), the step plans
(engines.emr.steps, engines.emr.load) and the step runner. With the datastore's ``dry_run``, each writes what
it would do to the action's extra_data and submits nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from engines.data import loads
from engines.data import s3 as s3_hook
from engines.emr import cluster as emr_hook
from engines.emr import steps
from engines.emr.definition import NAME, SUPPORTED_ACTION_TYPES
from engines.emr.load import load_plan
from engines.emr.step_runner import StepFailed, StepRunner, action_ended, stop_on_sigterm, upload
from engines.runner import dispatch
from engines.sdk import ActionContext, ActionFailure, DartClient

log = logging.getLogger("dart.engine.emr")
HIVE_PORT = 10000  # HiveServer2, which every EMR release with Hive runs on the master (Impala is not shipped)


def _args(context: ActionContext) -> dict[str, Any]:
    """The action's args with its schema's defaults for those missing (dart fills them in when it validates;
    an engine driven otherwise gets the same targets)."""
    [found] = [a for a in SUPPORTED_ACTION_TYPES if a["name"] == context.action_type_name]
    properties = (found["params_json_schema"] or {}).get("properties") or {}
    args = context.action_args
    return {**{k: p["default"] for k, p in properties.items() if "default" in p and k not in args}, **args}


def _dry_run(context: ActionContext) -> bool:
    return bool(context.datastore_args.get("dry_run"))


# -- the cluster ---------------------------------------------------------------------------------------------


def pending_load_bytes(context: ActionContext, client: DartClient) -> int:
    """The bytes the datastore's loads that have not run yet will bring: each load_dataset's range, each
    consume_subscription's unconsumed elements."""
    total = 0
    s3 = None
    for state in ("HAS_NEVER_RUN", "QUEUED"):
        found = client.get("/action", {"filters": [f"datastore_id = {context.datastore_id}", f"state = {state}"],
                                       "limit": 1000}) or []
        for action in found:
            data = action["data"]
            if data.get("action_type_name") == "load_dataset":
                s3 = s3 or s3_hook.client()
                _, files = loads.dataset_files(client, dict(data.get("args") or {}), s3)
                total += sum(size for _, size in files)
            elif data.get("action_type_name") == "consume_subscription":
                subscription = (data.get("args") or {}).get("subscription_id")
                stats = client.get(f"/subscription/{subscription}/element_stats") or []
                total += sum(int(s.get("file_size_sum") or 0) for s in stats if s.get("state") == "UNCONSUMED")
    return total


def _live_cluster(emr: Any, context: ActionContext) -> str | None:
    """The cluster an earlier run of start_datastore created and that still runs: a re-run (its check-in was
    lost, the launcher started it again) waits for that one instead of paying for a second."""
    found = (context.datastore["data"].get("extra_data") or {}).get("cluster_id")
    if not found:
        return None
    state = (emr_hook.describe(emr, str(found)).get("Status") or {}).get("State")
    if state in (*emr_hook.STARTING_STATES, "WAITING"):
        log.info("EMR cluster %s of this datastore is %s: not creating another", found, state)
        return str(found)
    return None


def start_datastore(context: ActionContext, client: DartClient) -> None:
    args = context.action_args
    cores = emr_hook.core_nodes(context.datastore_args, lambda: pending_load_bytes(context, client))
    bootstrap: list[emr_hook.BootstrapAction] = []
    script = args.get("bootstrap_script")
    artifacts: dict[str, bytes] = {}
    if script:
        path = f"{steps.artifacts_root(context.datastore)}/bootstrap_actions/bootstrap_script_{context.action_id}.sh"
        artifacts[path] = str(script).encode()
        bootstrap.append(emr_hook.BootstrapAction("dart: custom bootstrap_script", path))
    request = emr_hook.run_job_flow_request(context.datastore, cores, bootstrap, args.get("configuration_overrides"))
    if _dry_run(context):
        client.report_progress(context.action_id, 1.0, {"run_job_flow": request})
        return
    client.report_progress(context.action_id, 0.0, {"run_job_flow": request})
    emr = emr_hook.client()
    cluster = _live_cluster(emr, context)
    if cluster is None:
        upload(s3_hook.client(), artifacts)
        cluster = emr_hook.create(emr, request)
        log.info("created EMR cluster %s (%s)", cluster, request["Name"])
        client.patch_datastore(context.datastore_id, extra_data={
            **(context.datastore["data"].get("extra_data") or {}), "cluster_id": cluster})
    client.report_progress(context.action_id, 0.1)

    def tick(state: str) -> None:
        ended = action_ended(client, context.action_id)
        if ended:
            raise ActionFailure(f"{ended} while EMR cluster {cluster} was {state} (it keeps running: "
                                "terminate_datastore ends it)")

    with stop_on_sigterm():
        found = emr_hook.wait_until_waiting(emr, cluster, tick)
    host = str(found.get("MasterPublicDnsName") or "")
    client.patch_datastore(context.datastore_id, host=host, port=HIVE_PORT,
                           connection_url=f"jdbc:hive2://{host}:{HIVE_PORT}/default")
    client.report_progress(context.action_id, 1.0)


def terminate_datastore(context: ActionContext, client: DartClient) -> None:
    if _dry_run(context):
        client.report_progress(context.action_id, 1.0)
        return
    cluster = (context.datastore["data"].get("extra_data") or {}).get("cluster_id")
    if not cluster:
        raise ActionFailure("Cannot terminate datastore before starting")
    emr_hook.terminate(emr_hook.client(), str(cluster))
    client.patch_datastore(context.datastore_id, state="DONE")
    client.report_progress(context.action_id, 1.0, {"cluster_id": cluster})


# -- steps ---------------------------------------------------------------------------------------------------


def run_steps(context: ActionContext, client: DartClient, plan: steps.Plan) -> None:
    """Submit and follow the plan's steps, or with dry_run write them to the action."""
    if _dry_run(context):
        client.report_progress(context.action_id, 1.0, plan.as_extra_data())
        return
    cluster = emr_hook.cluster_id(context.datastore)
    StepRunner(emr_hook.client(), cluster, context, client).run(plan, s3_hook.client())


def run(context: ActionContext, client: DartClient, plan: steps.Plan) -> None:
    run_steps(context, client, plan)
    if not _dry_run(context):
        client.report_progress(context.action_id, 1.0)


def _script(build: Callable[[str, str, str], steps.Plan]) -> Callable[[ActionContext, DartClient], None]:
    def handle(context: ActionContext, client: DartClient) -> None:
        root = steps.steps_root(context.datastore)
        run(context, client, build(root, context.action_id, str(context.action_args["script_contents"])))

    return handle


def copy_hdfs_to_s3(context: ActionContext, client: DartClient) -> None:
    args = context.action_args
    run(context, client, steps.copy_hdfs_to_s3(context.action_id, args["source_hdfs_path"],
                                               args["destination_s3_path"]))


def load_dataset(context: ActionContext, client: DartClient) -> None:
    args = _args(context)
    dataset, files = loads.dataset_files(client, args)
    run(context, client, load_plan(steps.steps_root(context.datastore), dataset, files, args, context.action_id))


def consume_subscription(context: ActionContext, client: DartClient) -> None:
    """The original's partial-success rule: when the important steps completed before a later one failed, the
    action fails but its elements are CONSUMED (check-in's consume_subscription_state SUCCESS)."""
    try:
        dataset, elements = loads.subscription_files(client, context.action_id,
                                                     str(context.action_args["subscription_id"]))
        if elements:
            run_steps(context, client, load_plan(steps.steps_root(context.datastore), dataset, elements,
                                                 _args(context), context.action_id))
    except StepFailed as exc:
        if exc.considered_successful:
            context.consume_subscription_state = "SUCCESS"
            raise ActionFailure("Although the following error occurred, the important EMR steps completed "
                                f"successfully and the subscription elements have been marked as CONSUMED: "
                                f"{exc}") from exc
        raise ActionFailure("The following error occurred, and the subscription elements have been reverted "
                            f"to UNCONSUMED: {exc}") from exc
    except ActionFailure as exc:
        raise ActionFailure("The following error occurred, and the subscription elements have been reverted "
                            f"to UNCONSUMED: {exc}") from exc
    # Loaded: whatever happens from here (the report below failing), the elements are CONSUMED.
    context.consume_subscription_state = "SUCCESS"
    if not elements:
        log.info("no subscription elements are assigned to this action: nothing to load")
        client.report_progress(context.action_id, 1.0, {"files": 0})
    elif not _dry_run(context):
        client.report_progress(context.action_id, 1.0)


HANDLERS: dict[str, Callable[[ActionContext, DartClient], Any]] = {
    "start_datastore": start_datastore,
    "terminate_datastore": terminate_datastore,
    "load_dataset": load_dataset,
    "consume_subscription": consume_subscription,
    "run_hive_script": _script(steps.hive_script),
    "run_impala_script": _script(steps.impala_script),
    "run_pyspark_script": _script(steps.pyspark_script),
    "copy_hdfs_to_s3": copy_hdfs_to_s3,
}
HANDLER = dispatch(NAME, HANDLERS)
