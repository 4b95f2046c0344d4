"""The registry's handles: one per model called, shut down once Serve no longer lists it."""

import asyncio

from serve_app.serving.registry import ModelEntry, ModelRegistry


def test_registry_shuts_down_the_handles_of_models_gone_from_serve():
    class FakeHandle:  # stands in for a DeploymentHandle: only its shutdown is under test
        closed = False

        async def shutdown_async(self):
            self.closed = True

    async def scenario():
        registry = ModelRegistry()
        kept, gone, retyped = FakeHandle(), FakeHandle(), FakeHandle()
        registry._handles = {("a", "llm"): kept, ("b", "text2vec"): gone, ("c", "text2vec"): retyped}
        # "b" was stopped; "c" was restarted under the same name as a reranker
        registry._models = {"a": ModelEntry("a", "llm", "RUNNING", ""), "c": ModelEntry("c", "reranker", "RUNNING", "")}
        registry._forget_gone_handles()
        await asyncio.sleep(0)  # let the shutdown tasks run
        return registry, kept, gone, retyped

    registry, kept, gone, retyped = asyncio.run(scenario())
    assert list(registry._handles) == [("a", "llm")]
    assert gone.closed and retyped.closed and not kept.closed


def controller_answer(state="RUNNING", replica_state="RUNNING", autoscaling=None, config=True) -> dict:
    """The shape of the controller's `get_serve_instance_details` answer (JSON-serializable), trimmed
    to two applications: a model and the ingress."""
    model = {
        "name": "m1", "status": state, "message": "", "last_deployed_time_s": 12.5,
        "deployments": {"llm": {
            "name": "llm", "status": "HEALTHY", "message": "first line\nlast line",
            "deployment_config": {"autoscaling_config": autoscaling},
            "required_resources": {"CPU": 1, "GPU": 1},
            "replicas": [{"replica_id": "r1", "state": replica_state, "pid": 7},
                         {"replica_id": "r2", "state": "STARTING"}],
        }},
    }
    if config:
        model["deployed_app_config"] = {"name": "m1", "args": {"source": "simulated"}}
    ingress = {"name": "router", "status": "RUNNING", "message": "", "last_deployed_time_s": 1.0,
               "deployments": {"SMMFIngress": {"name": "SMMFIngress", "replicas": []}}}
    return {"applications": {"m1": model, "router": ingress}}


def test_the_table_is_read_from_the_controllers_plain_answer():
    from ray.serve.schema import ApplicationStatus, ReplicaState

    from serve_app.serving.registry import entries_from_raw

    [entry] = entries_from_raw(controller_answer()).values()
    assert entry == ModelEntry(
        name="m1", worker_type="llm", status="RUNNING", message="last line", args={"source": "simulated"},
        running_replicas=1, created=12.5, replicas=(("r1", "RUNNING", True), ("r2", "STARTING", False)),
        needs={"CPU": 1, "GPU": 1}, sleeps=False)
    # The same answer with enums where the controller's own objects would hold them.
    as_enums = controller_answer(state=ApplicationStatus.RUNNING, replica_state=ReplicaState.RECOVERING)
    assert entries_from_raw(as_enums)["m1"].running_replicas == 1, "a recovering replica still serves"
    asleep = entries_from_raw(controller_answer(autoscaling={"min_replicas": 0}, replica_state="STOPPING", config=False))
    assert asleep["m1"].sleeps and asleep["m1"].asleep and asleep["m1"].args == {}


def test_an_llms_lora_adapters_are_models_on_its_replicas():
    from serve_app.serving.registry import entries_from_raw

    raw = controller_answer()
    raw["applications"]["m1"]["deployed_app_config"]["args"]["lora_modules"] = {"sql": "/a/sql", "m1": "/a/same"}
    table = entries_from_raw(raw)
    assert set(table) == {"m1", "sql"}, "an adapter named as a model stays that model"
    sql, base = table["sql"], table["m1"]
    assert sql.parent == "m1" and base.parent == ""
    assert (sql.worker_type, sql.status, sql.replicas, sql.running_replicas) == (
        base.worker_type, base.status, base.replicas, base.running_replicas), "it runs where its base runs"


def test_a_model_serve_has_not_built_yet_is_listed_with_no_replica():
    """Serve lists an application at once, its deployments only once its builder ran: a model
    just started (here DEPLOYING, and one whose builder failed) is a model from the start."""
    from serve_app.replica.progress import phase_of
    from serve_app.serving.registry import entries_from_raw

    raw = controller_answer()
    raw["applications"]["new"] = {
        "name": "new", "status": "DEPLOYING", "message": "", "last_deployed_time_s": 20.0, "deployments": {},
        "deployed_app_config": {"name": "new", "import_path": "deployments.text2vec:build_app", "args": {"source": "s"}}}
    raw["applications"]["broken"] = {
        "name": "broken", "status": "DEPLOY_FAILED", "message": "ImportError: no module", "deployments": {},
        "deployed_app_config": {"name": "broken", "import_path": "deployments.llm:build_app"}}
    raw["applications"]["other"] = {  # not a model: an application of another builder, not built either
        "name": "other", "status": "DEPLOYING", "deployments": {}, "deployed_app_config": {"import_path": "x:app"}}
    table = entries_from_raw(raw)
    assert set(table) == {"m1", "new", "broken"}
    new = table["new"]
    assert (new.worker_type, new.status, new.args, new.created, new.replicas, new.callable) == (
        "text2vec", "DEPLOYING", {"source": "s"}, 20.0, (), False)
    # GET /api/models/status's phase (its reports from replicas: none, there is no replica yet)
    assert phase_of(new.status, 0, new.replicas, new.created, {}, False)[0] == "queued for resources"
    broken = table["broken"]
    assert (broken.worker_type, broken.message) == ("llm", "ImportError: no module")
    assert phase_of(broken.status, 0, broken.replicas, broken.created, {}, False)[0] == "failed"


def test_a_watch_answer_older_than_the_table_held_does_not_set_it_back():
    # The watch's call began before a fresh read and its answer came after: the fresher table stays.
    registry = ModelRegistry()
    older = {"a": ModelEntry("a", "llm", "DEPLOYING", "")}
    newer = {"a": ModelEntry("a", "llm", "RUNNING", "", running_replicas=1)}
    registry._install(("epoch1", 3), newer)
    registry._install(("epoch1", 2), older)
    assert registry._models is newer and registry._version == ("epoch1", 3)
    registry._install(("epoch1", 3), older)  # the same version again (a watch at it) is taken
    assert registry._models is older
    restarted = {"b": ModelEntry("b", "text2vec", "RUNNING", "", running_replicas=1)}
    registry._install(("epoch2", 1), restarted)  # a restarted manager counts from 1 in a new epoch
    assert registry._models is restarted and registry._version == ("epoch2", 1)
