"""What the manager's wait says of a change from the targets' status overviews, as the
controller sends them (`get_serve_statuses`: serialized protobuf), lifecycle/pending.py."""

from ray.serve._private.application_state import ApplicationStatusInfo, StatusOverview
from ray.serve._private.common import DeploymentStatus, DeploymentStatusInfo, DeploymentStatusTrigger
from ray.serve.schema import ApplicationStatus

from serve_app.lifecycle.pending import Progress, pending_reason


def overview(status: ApplicationStatus, at: float = 100.0, message: str = "", deployments=()) -> Progress:
    blob = StatusOverview(
        name="m", app_status=ApplicationStatusInfo(status=status, message=message, deployment_timestamp=at),
        deployment_statuses=[DeploymentStatusInfo(name=name, status=s, message=msg,
                                                  status_trigger=DeploymentStatusTrigger.CONFIG_UPDATE_STARTED)
                             for name, s, msg in deployments],
    ).to_proto().SerializeToString()
    return Progress.from_bytes(blob)


def test_a_start_is_done_once_the_app_runs_and_its_deployment_is_healthy():
    running = overview(ApplicationStatus.RUNNING, deployments=[("llm", DeploymentStatus.HEALTHY, "")])
    assert running == Progress("RUNNING", "", 100.0, (("llm", "HEALTHY", ""),))
    assert pending_reason(running, removed=False, applied_at=100.5, config=None) is None
    upscaling = overview(ApplicationStatus.RUNNING, deployments=[("llm", DeploymentStatus.UPSCALING, "")])
    assert pending_reason(upscaling, False, 100.5, None) == "deployment llm is UPSCALING"


def test_what_a_start_waits_for_and_why_it_failed():
    older = overview(ApplicationStatus.RUNNING, at=50.0, deployments=[("llm", DeploymentStatus.HEALTHY, "")])
    assert pending_reason(older, False, 100.0, None) == "waits for the controller to take the new config"
    deploying = overview(ApplicationStatus.DEPLOYING, deployments=[("llm", DeploymentStatus.UPDATING, "1 replica")])
    assert pending_reason(deploying, False, 100.0, None) == "is DEPLOYING: 1 replica"
    failed = overview(ApplicationStatus.DEPLOY_FAILED, message="Traceback\nImportError: nope")
    assert pending_reason(failed, False, 100.0, None) == "failed to deploy: ImportError: nope"
    unhealthy = overview(ApplicationStatus.RUNNING, deployments=[("llm", DeploymentStatus.UNHEALTHY, "a\nOOM")])
    assert pending_reason(unhealthy, False, 100.0, None) == "failed: deployment llm is unhealthy: OOM"
    gone = overview(ApplicationStatus.NOT_STARTED)  # what the controller says of a name it lacks
    assert pending_reason(gone, False, 100.0, None) == "cancelled: it was stopped before it was ready"


def test_a_stop_is_done_once_the_app_is_gone():
    assert pending_reason(overview(ApplicationStatus.DELETING), True, 100.0, None) == "is still DELETING"
    assert pending_reason(overview(ApplicationStatus.NOT_STARTED), True, 100.0, None) is None
