"""The NIR file, executed by nirtorch with our modules, agrees spike-for-spike with the reference."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from nir_fixtures import delays_on_both_sides_graph, delrec, lif_node, random_networks, shd_small, third_party_graph

from delaydeploy.errors import NIRFormatError
from delaydeploy.exporters.nir import EULER_DT, network_to_nir, nir_to_network, write_nir
from delaydeploy.exporters.nir_executor import simulate_nir
from delaydeploy.ir import LIFNeuron, Network, Readout, SpikingLayer
from delaydeploy.reference import Simulation, simulate


def assert_agree(reference: Simulation, executed: Simulation) -> None:
    assert len(executed.spikes) == len(reference.spikes)
    for layer, (expected, got) in enumerate(zip(reference.spikes, executed.spikes)):
        assert got.shape == expected.shape, layer
        mismatches = int((got != expected).sum())
        assert mismatches == 0, f"layer {layer}: {mismatches} spike mismatches"
    assert executed.readout.shape == reference.readout.shape
    assert torch.allclose(executed.readout, reference.readout, rtol=0, atol=1e-9)


@pytest.mark.parametrize("build", [shd_small, delrec], ids=["snn_delays", "delrec"])
def test_conformance_models_from_file(build, tmp_path) -> None:
    network, x, _ = build()
    executed = simulate_nir(write_nir(network, tmp_path / "model.nir"), x)
    reference = simulate(network, x, semantics="streaming")
    assert executed.readout.shape[0] == x.shape[0] + network.tail_steps
    assert sum(int(s.sum()) for s in reference.spikes) > 500  # the comparison is not vacuous
    assert_agree(reference, executed)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=random_networks(distinct_delays=4))
def test_random_networks(case, tmp_path) -> None:
    network, x = case
    assert_agree(simulate(network, x), simulate_nir(write_nir(network, tmp_path / "random.nir"), x))


def _tie_network(rule: str, reset: str) -> Network:
    """Two neurons (tau 2, threshold 1.5) whose membranes land exactly on the threshold (dyadic
    values, exact in float): neuron 0 under a constant drive of 1, neuron 1 after a single kick of 4.5."""
    layer = SpikingLayer("tie", np.diag([1.0, 4.5]), np.zeros((2, 2), np.int64), np.zeros(2),
                         LIFNeuron(2.0, 1.5, reset, rule))
    return Network(2, [layer], Readout("ro", np.ones((1, 2)), np.ones((1, 2), np.int64), np.zeros(1), 2.0))


TIE_SPIKES = {  # (rule, reset): spike trains of neurons 0 and 1, worked out by hand
    (">=", "hard"): ([0, 1, 0, 1, 0, 1, 0, 1, 0], [1, 0, 0, 0, 0, 0, 0, 0, 0]),
    (">", "hard"): ([0, 0, 1, 0, 0, 1, 0, 0, 1], [1, 0, 0, 0, 0, 0, 0, 0, 0]),
    (">=", "soft"): ([0, 1, 0, 1, 0, 1, 0, 1, 0], [1, 1, 0, 0, 0, 0, 0, 0, 0]),  # 4.5 - 1.5 = 3, halved: a tie
    (">", "soft"): ([0, 0, 1, 0, 1, 0, 1, 0, 1], [1, 0, 0, 0, 0, 0, 0, 0, 0]),  # 1.75 - 1.5 leaves 0.25
}


@pytest.mark.parametrize("rule, reset", list(TIE_SPIKES))
def test_threshold_rule_and_reset_from_metadata(rule, reset) -> None:
    network = _tie_network(rule, reset)
    x = np.zeros((9, 1, 2))
    x[:, 0, 0] = 1.0
    x[0, 0, 1] = 1.0
    executed = simulate_nir(network_to_nir(network), x)
    assert executed.spikes[0][:, 0].T.tolist() == [list(map(float, train)) for train in TIE_SPIKES[rule, reset]]
    assert_agree(simulate(network, x), executed)


@pytest.mark.parametrize(
    "graph",
    [
        third_party_graph(),
        third_party_graph(lif_node(4, 2.0, 0.8, r=1.0)),
        third_party_graph(nir.CubaLIF(tau_syn=np.full(4, EULER_DT), tau_mem=np.full(4, 2 * EULER_DT),
                                      r=np.full(4, 2.0), v_leak=np.zeros(4), v_threshold=np.full(4, 0.8))),
        delays_on_both_sides_graph(),
    ],
    ids=["affine_lif_linear_li", "lif_r_1", "cuba_lif", "delays_both_sides"],
)
def test_third_party_graphs_match_their_import(graph) -> None:
    network = nir_to_network(graph)
    x = np.random.default_rng(0).normal(0.8, 1.0, (30, 2, network.input_size))
    reference = simulate(network, x)
    assert reference.spikes[0].sum() > 0
    assert_agree(reference, simulate_nir(graph, x))


def test_runs_are_independent_and_inputs_checked() -> None:
    graph = third_party_graph()
    x = np.random.default_rng(1).normal(0.8, 1.0, (10, 3, 3))
    first, second = simulate_nir(graph, x), simulate_nir(graph, x)
    assert torch.equal(first.readout, second.readout)
    single = simulate_nir(graph, x[:, 1:2])
    assert torch.equal(single.readout[:, 0], first.readout[:, 1])
    with pytest.raises(ValueError, match="expected"):
        simulate_nir(graph, x[..., :2])


def test_graphs_it_cannot_execute_are_named() -> None:
    graph = third_party_graph()
    graph.nodes["late"] = nir.Delay(delay=np.full(3, 2.5 * EULER_DT))
    graph.edges = [edge for edge in graph.edges if edge != ("input", "affine")]
    graph.edges += [("input", "late"), ("late", "affine")]
    with pytest.raises(NIRFormatError, match="'late'.*2.5"):
        simulate_nir(graph, np.zeros((3, 1, 3)))
    graph = third_party_graph()
    graph.nodes["scale"] = nir.Scale(scale=np.ones(4))
    graph.edges += [("lif", "scale"), ("scale", "linear")]
    with pytest.raises(NIRFormatError, match="'scale'.*Scale"):
        simulate_nir(graph, np.zeros((3, 1, 3)))
