"""The ingress's routing table, read from the controller's plain answer (serving/registry.py), is
what Serve's own parse of that answer says: on the live instance, every model, its status, its
replicas and what they reserve."""

from helpers import EMBEDDER, LLM, RERANKER


def test_the_routing_table_matches_serves_own_parse_of_its_state(serve_instance):
    import ray
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ReplicaState, ServeInstanceDetails

    from serve_app.config.worker_types import WORKER_TYPES
    from serve_app.serving.registry import entries_from_raw

    raw = ray.get(_get_global_client()._controller.get_serve_instance_details.remote())
    table, details = entries_from_raw(raw), ServeInstanceDetails(**raw)
    models = {name: dep for name, app in details.applications.items()
              for dep in app.deployments.values() if dep.name in WORKER_TYPES}
    assert set(table) == set(models) and {LLM, EMBEDDER, RERANKER} <= set(table)
    for name, dep in models.items():
        app, entry = details.applications[name], table[name]
        assert (entry.worker_type, entry.status) == (dep.name, app.status.value)
        assert entry.args == dict(app.deployed_app_config.args or {})
        assert entry.running_replicas == sum(r.state in (ReplicaState.RUNNING, ReplicaState.RECOVERING)
                                             for r in dep.replicas) >= 1
        assert entry.replicas == tuple((r.replica_id, r.state.value, r.pid is not None) for r in dep.replicas)
        assert entry.needs == dict(dep.required_resources) and entry.created == app.last_deployed_time_s
