"""IR <-> NIR: exact round trips, the file format, third-party graphs and clear errors."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch
from helpers import assert_same_network
from hypothesis import HealthCheck, given, settings
from nir_fixtures import (
    delays_on_both_sides_graph,
    delrec,
    li_node,
    lif_node,
    random_networks,
    shd_small,
    third_party_graph,
)

from delaydeploy.errors import NIRFormatError
from delaydeploy.exporters.nir import EULER_DT, network_to_nir, nir_to_network, read_nir, write_nir
from delaydeploy.exporters.nir_executor import simulate_nir
from delaydeploy.ir import LIFNeuron, Network, Readout, SpikingLayer, delay_structure
from delaydeploy.reference import simulate


# --------------------------------------------------------------------------- conformance fixtures
def test_hand_built_conformance_networks_reproduce_the_official_code() -> None:
    network, x, data = shd_small()
    official = simulate(network, x, semantics="official")
    for index in range(2):
        assert torch.equal(official.spikes[index], torch.as_tensor(data[f"spk_disc_{index}"], dtype=torch.float64))
    assert torch.allclose(official.readout, torch.as_tensor(data["out_ref"]), atol=1e-5)
    network, x, data = delrec()
    run = simulate(network, x)
    for index in range(2):
        assert torch.equal(run.spikes[index], torch.as_tensor(data[f"hidden_spikes_{index}"]))
    assert torch.allclose(run.readout, torch.as_tensor(data["output_v_seq"]), atol=1e-12)


@pytest.mark.parametrize("build", [shd_small, delrec], ids=["snn_delays", "delrec"])
def test_conformance_round_trip_is_exact(build, tmp_path) -> None:
    network = build()[0]
    path = write_nir(network, tmp_path / "model.nir")
    graph = nir.read(path, type_check=True)
    assert graph.metadata["delaydeploy_format"] == "delaydeploy-nir"
    assert_same_network(read_nir(path), network)


# --------------------------------------------------------------------------- format
def _small_network(recurrent: bool = True) -> Network:
    rng = np.random.default_rng(1)
    layer = SpikingLayer(
        "encoder", rng.normal(size=(3, 2)), np.array([[0, 3, 3], [1, 0, 3]]).T, rng.normal(size=3),
        LIFNeuron(2.5, 0.7, "soft", ">"),
        recurrent_weights=rng.normal(size=(3, 3)) if recurrent else None,
        # recurrent delays neither axonal nor dendritic: one branch per delay value
        recurrent_delays=np.array([[0, 2, 2], [0, 2, 0], [0, 0, 2]]) if recurrent else None,
        official_tail=4,
    )
    readout = Readout("classes", rng.normal(size=(2, 3)), np.array([[1, 1, 1], [1, 5, 1]]), np.zeros(2), 4.0)
    return Network(2, [layer], readout, input_kind="counts", dt=0.001, tail_steps=7, metadata={"source": "x/y"})


def test_graph_layout_names_and_metadata(tmp_path) -> None:
    network = _small_network()
    graph = network_to_nir(network)
    assert list(graph.nodes) == [
        "input", "hidden0.affine", "hidden0.delay1", "hidden0.linear1", "hidden0.delay3", "hidden0.linear3",
        "hidden0.lif", "hidden0.rec_linear0", "hidden0.rec_delay2", "hidden0.rec_linear2",
        "readout.affine", "readout.delay1", "readout.linear1", "readout.delay5", "readout.linear5",
        "readout.li", "readout.integrator", "output",
    ]
    assert ("hidden0.rec_delay2", "hidden0.rec_linear2") in graph.edges
    assert ("hidden0.rec_linear2", "hidden0.lif") in graph.edges
    affine = graph.nodes["readout.affine"]
    assert np.array_equal(affine.weight, np.zeros((2, 3))) and np.array_equal(affine.bias, np.zeros(2))
    assert np.allclose(graph.nodes["hidden0.delay3"].delay, 3 * EULER_DT)
    lif = graph.nodes["hidden0.lif"]
    assert np.all(lif.tau == 2.5 * EULER_DT) and np.all(lif.r == 2.5) and np.all(lif.v_threshold == 0.7)
    assert lif.metadata["threshold_rule"] == ">" and lif.metadata["reset"] == "soft"
    meta = graph.metadata
    assert meta["dt_seconds"] == 0.001 and meta["euler_dt_seconds"] == EULER_DT
    assert (meta["tail_steps"], meta["input_kind"], meta["threshold_rule"], meta["reset"]) == (7, "counts", ">", "soft")
    assert meta["recurrent_latency_steps"] == 1 and meta["delay_unit_steps"] == 1
    assert None not in meta.values()
    # One Euler step of the written LIF is the IR's v * (1 - 1/tau) + I.
    v, current = 0.4, 0.9
    euler = v + EULER_DT / lif.tau[0] * ((lif.v_leak[0] - v) + lif.r[0] * current)
    assert euler == pytest.approx(v * (1 - 1 / 2.5) + current, rel=1e-14)
    path = write_nir(network, tmp_path / "net.nir")
    read_back = nir.read(path, type_check=True)
    assert set(read_back.nodes) == set(graph.nodes)
    assert sorted(map(tuple, read_back.edges)) == sorted(graph.edges)
    assert read_back.nodes["hidden0.lif"].metadata["ir_name"] == "encoder"


def test_write_replaces_atomically(tmp_path) -> None:
    path = tmp_path / "net.nir"
    write_nir(_small_network(), path)
    write_nir(_small_network(recurrent=False), path)
    assert not read_nir(path).layers[0].is_recurrent
    assert [p.name for p in tmp_path.iterdir()] == ["net.nir"]


def test_zero_weight_synapses_keep_their_delays(tmp_path) -> None:
    network = _small_network()
    network.layers[0].weights[1, 0] = 0.0
    network.layers[0].recurrent_weights[2, 1] = 0.0
    network.readout.weights[1, 1] = 0.0
    assert_same_network(read_nir(write_nir(network, tmp_path / "net.nir")), network)


def test_network_without_hidden_layers(tmp_path) -> None:
    readout = Readout("only", np.ones((2, 3)), np.array([[0, 1, 2], [2, 1, 0]]), np.array([0.5, -0.5]), 2.0)
    network = Network(3, [], readout, dt=0.01)
    assert_same_network(read_nir(write_nir(network, tmp_path / "net.nir")), network)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=random_networks())
def test_random_round_trip_is_exact(case, tmp_path) -> None:
    network, _ = case
    path = write_nir(network, tmp_path / "random.nir")
    nir.read(path, type_check=True)
    assert_same_network(read_nir(path), network)


# --------------------------------------------------------------------------- third-party graphs
def test_third_party_chain_imports() -> None:
    graph = third_party_graph()
    network = nir_to_network(graph)
    layer = network.layers[0]
    assert layer.name == "lif" and network.readout.name == "li"
    assert layer.neuron == LIFNeuron(2.0, 0.8, "hard", ">")  # NIR fires on v > threshold
    assert np.array_equal(layer.weights, graph.nodes["affine"].weight)
    assert np.array_equal(layer.bias, graph.nodes["affine"].bias)
    assert not layer.delays.any() and network.readout.tau == 3.0
    assert network.dt == EULER_DT and network.tail_steps == 0 and network.input_kind == "analog"


def test_resistance_is_folded_into_weights() -> None:
    plain = nir_to_network(third_party_graph())
    scaled = nir_to_network(third_party_graph(lif_node(4, 2.0, 0.8, r=1.0)))  # gain r / tau_steps = 0.5
    assert np.allclose(scaled.layers[0].weights, plain.layers[0].weights * 0.5, rtol=1e-14)
    assert np.allclose(scaled.layers[0].bias, plain.layers[0].bias * 0.5, rtol=1e-14)


def test_cuba_lif_with_instantaneous_current_is_a_lif() -> None:
    cuba = nir.CubaLIF(tau_syn=np.full(4, EULER_DT), tau_mem=np.full(4, 2 * EULER_DT), r=np.full(4, 2.0),
                       v_leak=np.zeros(4), v_threshold=np.full(4, 0.8), v_reset=np.zeros(4), w_in=np.full(4, 1.0))
    layer, plain = nir_to_network(third_party_graph(cuba)).layers[0], nir_to_network(third_party_graph()).layers[0]
    assert layer.name == "cubalif" and layer.neuron == plain.neuron
    assert np.array_equal(layer.weights, plain.weights) and np.array_equal(layer.bias, plain.bias)


def test_delays_on_either_side_of_the_weights() -> None:
    graph = delays_on_both_sides_graph()
    layer = nir_to_network(graph).layers[0]
    assert np.array_equal(layer.delays, [[0, 1, 2], [10, 11, 12]])
    assert np.array_equal(layer.weights, graph.nodes["w"].weight) and np.array_equal(layer.bias, [0.1, 0.2])


# --------------------------------------------------------------------------- errors
def _error(graph: nir.NIRGraph) -> str:
    with pytest.raises(NIRFormatError) as caught:
        nir_to_network(graph, source="g.nir")
    return str(caught.value)


def test_unsupported_node_is_named() -> None:
    conv = nir.Conv1d(input_shape=3, weight=np.ones((4, 1, 1)), stride=1, padding=0, dilation=1, groups=1,
                      bias=np.zeros(4))
    graph = nir.NIRGraph(
        nodes={"in": nir.Input(input_type=np.array([1, 3])), "conv": conv,
               "out": nir.Output(output_type=np.array([4, 3]))},
        edges=[("in", "conv"), ("conv", "out")], type_check=False,
    )
    message = _error(graph)
    assert "'conv'" in message and "Conv1d" in message and "g.nir" in message


def test_fractional_delay_is_named_with_its_value() -> None:
    graph = third_party_graph()
    graph.nodes["late"] = nir.Delay(delay=np.full(3, 2.5 * EULER_DT))
    graph.edges = [edge for edge in graph.edges if edge != ("input", "affine")]
    graph.edges += [("input", "late"), ("late", "affine")]
    message = _error(graph)
    assert "'late'" in message and "2.5" in message


def test_shape_mismatch_names_both_nodes() -> None:
    graph = nir.NIRGraph.from_list(nir.Affine(weight=np.ones((4, 3)), bias=np.zeros(4)), lif_node(5, 2.0, 1.0),
                                   nir.Linear(weight=np.ones((2, 5))), li_node(2, 2.0), type_check=False)
    message = _error(graph)
    assert "'affine'" in message and "'lif'" in message and "(4,)" in message and "(5,)" in message


@pytest.mark.parametrize(
    "neuron, words",
    [
        (nir.CubaLIF(tau_syn=np.full(4, 5 * EULER_DT), tau_mem=np.full(4, 2 * EULER_DT), r=np.full(4, 2.0),
                     v_leak=np.zeros(4), v_threshold=np.ones(4)), ["'cubalif'", "tau_syn"]),
        (nir.IF(r=np.ones(4), v_threshold=np.ones(4)), ["'if'", "IF", "tau = infinity"]),
        (lif_node(4, 0.5, 1.0), ["'lif'", "0.5 steps", ">= 1 step"]),
        (nir.LIF(tau=np.full(4, 2e-4), r=np.full(4, 2.0), v_leak=np.full(4, 0.1), v_threshold=np.ones(4)),
         ["'lif'", "v_leak"]),
        (nir.LIF(tau=np.full(4, 2e-4), r=np.full(4, 2.0), v_leak=np.zeros(4), v_threshold=np.ones(4),
                 v_reset=np.full(4, -0.5)), ["'lif'", "v_reset"]),
        (nir.LIF(tau=np.array([2e-4, 2e-4, 3e-4, 2e-4]), r=np.full(4, 2.0), v_leak=np.zeros(4),
                 v_threshold=np.ones(4)), ["'lif'", "tau varies"]),
        (lif_node(4, 2.0, -1.0), ["'lif'", "threshold = -1.0"]),
    ],
    ids=["cuba_lif_real_tau_syn", "if", "tau_below_one_step", "v_leak", "v_reset", "tau_not_uniform",
         "negative_threshold"],
)
def test_neurons_the_ir_cannot_represent(neuron, words) -> None:
    message = _error(third_party_graph(neuron))
    for word in words:
        assert word in message


def test_structural_errors() -> None:
    graph = third_party_graph()  # bias behind a Delay would be missing for the first steps
    graph.nodes["slow"] = nir.Delay(delay=np.full(4, 3 * EULER_DT))
    graph.edges = [edge for edge in graph.edges if edge != ("affine", "lif")] + [("affine", "slow"), ("slow", "lif")]
    assert "'affine'" in _error(graph) and "bias" in _error(graph)

    graph = third_party_graph()  # one synapse at two delays
    graph.nodes["d2"] = nir.Delay(delay=np.full(3, 2 * EULER_DT))
    graph.nodes["w2"] = nir.Linear(weight=np.ones((4, 3)))
    graph.edges += [("input", "d2"), ("d2", "w2"), ("w2", "lif")]
    assert "one delay per synapse" in _error(graph)

    graph = third_party_graph()  # a second LIF side by side is no chain
    graph.nodes["lif2"] = lif_node(4, 2.0, 1.0)
    graph.nodes["w3"] = nir.Linear(weight=np.ones((4, 3)))
    graph.edges += [("input", "w3"), ("w3", "lif2")]
    assert "chain" in _error(graph)


def test_unreadable_files_name_the_path(tmp_path) -> None:
    broken = tmp_path / "broken.nir"
    broken.write_bytes(b"\x89HDF not really")
    for path in (broken, tmp_path / "missing.nir"):
        with pytest.raises(NIRFormatError, match=path.name):
            read_nir(path)


# --------------------------------------------------------------------------- compact delays
def _structured_network(granularity: str, seed: int = 3) -> Network:
    """Random 6-8-5-3 network whose delays are one per presynaptic (axonal) or postsynaptic
    (dendritic) neuron, a third of its synapses pruned, with biases and an axonal recurrent layer."""
    rng = np.random.default_rng(seed)

    def stage(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
        weights = rng.normal(0.4, 0.8, (n_out, n_in)) * (rng.random((n_out, n_in)) < 0.67)
        per_neuron = rng.integers(0, 7, n_in if granularity == "axonal" else n_out)
        delays = np.broadcast_to(per_neuron, (n_out, n_in)) if granularity == "axonal" else \
            np.broadcast_to(per_neuron[:, None], (n_out, n_in))
        return weights, np.where(weights != 0, delays, 0)

    neuron = LIFNeuron(2.0, 1.0, "hard", ">=")
    (w0, d0), (w1, d1), (w2, d2) = stage(8, 6), stage(5, 8), stage(3, 5)
    layers = [SpikingLayer("hidden0", w0, d0, rng.normal(0.1, 0.2, 8), neuron),
              SpikingLayer("hidden1", w1, d1, rng.normal(0.1, 0.2, 5), neuron,
                           recurrent_weights=rng.normal(0, 0.5, (5, 5)),
                           recurrent_delays=np.tile(rng.integers(0, 4, 5), (5, 1)))]
    readout = Readout("readout", w2, d2, rng.normal(size=3), 3.0)
    return Network(6, layers, readout, input_kind="binary", dt=0.001, tail_steps=8)


@pytest.mark.parametrize("granularity", ["axonal", "dendritic"])
def test_structured_delays_are_one_delay_node_per_stage(granularity, tmp_path) -> None:
    """Delays of one per neuron export as a single NIR ``Delay`` before (axonal) or after
    (dendritic) the weights; the file passes NIR's type checks, reads back exactly and runs."""
    network = _structured_network(granularity)
    assert all(delay_structure(stage.weights, stage.delays)[0] == granularity
               for stage in [*network.layers, network.readout])
    path = write_nir(network, tmp_path / "model.nir")
    graph = nir.read(path, type_check=True)
    delays = sorted(name for name, node in graph.nodes.items() if isinstance(node, nir.Delay))
    assert delays == ["hidden0.delay", "hidden1.delay", "hidden1.rec_delay", "readout.delay"]
    for prefix in ("hidden0", "hidden1", "readout"):
        weights = f"{prefix}.affine" if granularity == "axonal" else f"{prefix}.linear"
        target = {"hidden0": "hidden0.lif", "hidden1": "hidden1.lif", "readout": "readout.li"}[prefix]
        order = [(f"{prefix}.delay", weights), (weights, target)] if granularity == "axonal" else \
            [(weights, f"{prefix}.delay"), (f"{prefix}.delay", target)]
        assert all(edge in graph.edges for edge in order)
    assert_same_network(read_nir(path), network)
    x = (np.random.default_rng(4).random((20, 3, 6)) < 0.3).astype(np.float64)
    expected, actual = simulate(network, x), simulate_nir(path, x)
    for want, got in zip(expected.spikes, actual.spikes):
        assert want.sum() > 0 and torch.equal(want, got)
    assert torch.allclose(expected.readout, actual.readout, rtol=0, atol=1e-12)


def test_unstructured_delays_keep_one_branch_per_delay() -> None:
    assert delay_structure(np.ones((2, 2)), np.array([[0, 1], [1, 0]])) is None
    granularity, steps = delay_structure(np.array([[1.0, 0.0], [1.0, 2.0]]), np.array([[3, 9], [3, 1]]))
    assert granularity == "axonal" and steps.tolist() == [3, 1]  # the pruned synapse's delay does not count
