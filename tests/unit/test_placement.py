"""Whether a replica can ever be placed: its needs against the nodes and node types."""

from serve_app.lifecycle.placement import never_fits, replica_needs

LAPTOP = {"CPU": 2.0, "memory": 16 * 2**30}
GPU_NODE = {"CPU": 16.0, "GPU": 1.0, "accelerator_type:H200": 1.0, "memory": 128 * 2**30}


def test_needs_are_what_a_node_lists():
    assert replica_needs({"num_cpus": 0.5}) == {"CPU": 0.5}
    assert replica_needs({"num_cpus": 1, "num_gpus": 1, "accelerator_type": "H100", "memory": 2**30,
                          "resources": {"custom": 2}}) == {
        "CPU": 1, "GPU": 1, "accelerator_type:H100": 0.001, "memory": 2**30, "custom": 2}


def test_a_gpu_the_cluster_does_not_have_is_named_with_the_largest_node():
    why = never_fits("big", replica_needs({"num_cpus": 0.25, "num_gpus": 1}), [LAPTOP])
    assert why.startswith("model 'big' can never be placed")
    assert "GPU: 1" in why and "GPU: 0" in why, why


def test_a_node_type_the_autoscaler_can_add_is_enough():
    needs = replica_needs({"num_cpus": 1, "num_gpus": 1, "accelerator_type": "H200"})
    assert never_fits("m", needs, [LAPTOP, GPU_NODE]) is None
    assert "accelerator_type:H100" in never_fits("m", replica_needs({"accelerator_type": "H100"}), [LAPTOP, GPU_NODE])


def test_resources_that_fit_only_on_different_nodes_do_not_fit():
    nodes = [{"CPU": 8.0}, {"CPU": 1.0, "GPU": 1.0}]
    assert never_fits("m", {"CPU": 4.0, "GPU": 1.0}, nodes) is not None
    assert never_fits("m", {"CPU": 1.0, "GPU": 1.0}, nodes) is None


def test_no_known_nodes_refuses_nothing():
    assert never_fits("m", {"GPU": 8.0}, []) is None


def test_a_tensor_parallel_group_must_fit_one_node_and_pipeline_stages_may_span_nodes():
    from deployments.llm import parallel_options
    from serve_app.config.workers import LLMArgs
    from serve_app.lifecycle.placement import group_never_fits

    one_gpu_nodes = [{"CPU": 4.0}, {"CPU": 8.0, "GPU": 1.0}]
    tp2 = parallel_options(LLMArgs(source="simulated", engine="simulated", tensor_parallel_size=2))
    assert tp2["placement_group_strategy"] == "STRICT_PACK" and tp2["ray_actor_options"]["num_gpus"] == 0
    why = group_never_fits("tp", tp2["placement_group_bundles"], "STRICT_PACK", one_gpu_nodes)
    assert why and "2 bundles, on one node, need" in why and "GPU: 2" in why
    assert group_never_fits("tp", tp2["placement_group_bundles"], "STRICT_PACK", [{"CPU": 8.0, "GPU": 2.0}]) is None
    pp2 = parallel_options(LLMArgs(source="simulated", engine="simulated", pipeline_parallel_size=2))
    assert pp2["placement_group_strategy"] == "PACK"
    assert group_never_fits("pp", pp2["placement_group_bundles"], "PACK", one_gpu_nodes) is None
    assert parallel_options(LLMArgs(source="simulated", engine="simulated")) == {}


def test_a_model_waiting_for_an_autoscaler_node_names_the_node_type():
    from serve_app.lifecycle.placement import node_type_for

    types = {"worker.cpu": {"CPU": 8.0}, "worker.gpu": {"CPU": 8.0, "GPU": 1.0}}
    gpu = {"CPU": 0.5, "GPU": 1.0}
    assert node_type_for(gpu, ["worker.cpu", "worker.gpu"], types) == "worker.gpu"
    assert node_type_for(gpu, ["worker.cpu"], types) is None, "a node being added that cannot hold it"
    assert node_type_for(gpu, ["worker.gpu"], {}) == "worker.gpu", "types unknown: the one being added"
    assert node_type_for(gpu, [], types) is None
