"""Our fast DelayDense models compute what Lava's stock DelayDense models compute.

Each run drives several ``DelayDense`` processes from one ``RingBuffer`` and records their
``a_out`` every step; the same graph runs once with the stock models and once with ours
(selected through the run config's ``exception_proc_model_map``). Float agrees to 1e-12 (the
order of summation within a step differs), fixed point exactly.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from helpers import moderate_network, with_per_neuron_delays, with_pruned_synapses
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.dense.process import DelayDense
from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
from lava.proc.io.source import RingBuffer

from delaydeploy.exporters.lava.graph import simulate_lava
from delaydeploy.exporters.lava.processes import PyFastDelayDenseModelBitAcc, PyFastDelayDenseModelFloat

STEPS, N_IN, N_OUT, MAX_DELAY = 40, 12, 9, 7


pytestmark = pytest.mark.lava  # Lava's own models (the lava extra, Python 3.10)

def _delays(rng: np.random.Generator) -> np.ndarray:
    delays = rng.integers(0, MAX_DELAY + 1, (N_OUT, N_IN))
    delays[0, :2] = (0, MAX_DELAY)  # both ends of the range occur
    return delays


def _run(data: np.ndarray, cases: list[dict], tag: str, fast_model: type | None) -> list[np.ndarray]:
    source = RingBuffer(data=data)
    probes = []
    for kwargs in cases:
        dense = DelayDense(**kwargs)
        probe = Extractor(shape=(N_OUT,), buffer_size=STEPS)
        source.s_out.connect(dense.s_in)
        dense.a_out.connect(probe.in_port)
        probes.append(probe)
    models: dict = {Extractor: PyLoihiExtractorModel}
    if fast_model is not None:
        models[DelayDense] = fast_model
    source.run(condition=RunSteps(num_steps=STEPS),
               run_cfg=Loihi2SimCfg(select_tag=tag, exception_proc_model_map=models))
    try:
        return [np.stack([probe.receive() for _ in range(STEPS)]) for probe in probes]
    finally:
        source.stop()


def _compare(data: np.ndarray, cases: list[dict], tag: str, fast_model: type) -> list[tuple[np.ndarray, np.ndarray]]:
    stock = _run(data, cases, tag, None)
    fast = _run(data, cases, tag, fast_model)
    for stock_out in stock:
        assert np.any(stock_out != 0)
    return list(zip(stock, fast))


def test_float_fast_delay_dense_equals_stock() -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 4, (N_IN, STEPS)) * (rng.random((N_IN, STEPS)) < 0.4)  # counts, mostly 0/1
    data = data * rng.choice([1.0, -0.5], (N_IN, STEPS))  # graded payloads of either sign
    cases = [
        dict(weights=rng.normal(0, 1, (N_OUT, N_IN)), delays=_delays(rng)),  # binary: payload cast to a spike
        dict(weights=rng.normal(0, 1, (N_OUT, N_IN)), delays=_delays(rng), num_message_bits=24),  # graded
        dict(weights=rng.normal(0, 1, (N_OUT, N_IN)), delays=np.zeros((N_OUT, N_IN), dtype=int)),  # delay 0 only
        dict(weights=rng.normal(0, 1, (N_OUT, N_IN)), delays=_delays(rng), max_delay=MAX_DELAY + 3),  # spare slots
    ]
    for stock, fast in _compare(data.astype(np.float64), cases, "floating_pt", PyFastDelayDenseModelFloat):
        np.testing.assert_allclose(fast, stock, rtol=0, atol=1e-12)


def test_fixed_fast_delay_dense_equals_stock_bit_for_bit() -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(-20, 40, (N_IN, STEPS)) * (rng.random((N_IN, STEPS)) < 0.4)
    mixed = rng.integers(-256, 255, (N_OUT, N_IN))  # odd values: the stock model drops their lowest bit
    cases = [
        dict(weights=mixed, delays=_delays(rng)),
        dict(weights=mixed, delays=_delays(rng), weight_exp=-3),  # floor after each (step, delay) sum
        dict(weights=mixed, delays=_delays(rng), weight_exp=-2, num_message_bits=24),  # graded
        dict(weights=rng.integers(0, 256, (N_OUT, N_IN)), delays=_delays(rng), weight_exp=2),  # excitatory
        dict(weights=-rng.integers(0, 256, (N_OUT, N_IN)), delays=_delays(rng), weight_exp=-1,
             num_message_bits=24),  # inhibitory
        dict(weights=mixed, delays=np.zeros((N_OUT, N_IN), dtype=int), weight_exp=-4, num_message_bits=24),
    ]
    for stock, fast in _compare(data, cases, "fixed_pt", PyFastDelayDenseModelBitAcc):
        np.testing.assert_array_equal(fast, stock)


@pytest.mark.parametrize("kind", ["float", "fixed"])
def test_network_fast_synapses_equal_stock(kind, random_fixed_network, spikes_input) -> None:
    """Whole framed networks (recurrent, soft reset): fast and stock synapses give the same run, and so
    do the fast synapses with lanes."""
    sizes = [8, 10, 7, 3]
    if kind == "float":
        network = moderate_network(2, sizes, recurrent=True, reset="soft")
    else:
        network = random_fixed_network(2, sizes, recurrent=True, reset="soft", weight_exp=-1)
    x = spikes_input(3, 12, 3, sizes[0])
    stock = simulate_lava(network, x, synapse="stock", lanes=None)
    for fast in (simulate_lava(network, x, synapse="fast", lanes=None), simulate_lava(network, x, lanes=2)):
        for stock_spikes, fast_spikes in zip(stock.spikes, fast.spikes):
            assert stock_spikes.sum() > 0
            assert bool((stock_spikes == fast_spikes).all())
        if kind == "float":
            np.testing.assert_allclose(fast.readout.numpy(), stock.readout.numpy(), rtol=0, atol=1e-12)
        else:
            np.testing.assert_array_equal(fast.readout.numpy(), stock.readout.numpy())


def _assert_chip_and_laned_runs_match_the_reference(network, x: np.ndarray, kind: str) -> None:
    """The chip-shaped graph on stock and fast models and a laned graph, each equal to the reference
    (float or integer) spike for spike, readouts exactly (fixed) or to 1e-9 (float); no layer silent."""
    from delaydeploy.fixed_reference import simulate_fixed
    from delaydeploy.reference import simulate

    expected = simulate_fixed(network, x) if kind == "fixed" else simulate(network, x)
    runs = [simulate_lava(network, x, synapse="stock", lanes=None), simulate_lava(network, x, lanes=None),
            simulate_lava(network, x, lanes=2)]
    for run in runs:
        for want, got in zip(expected.spikes, run.spikes):
            assert torch.as_tensor(want).sum() > 0
            assert bool((torch.as_tensor(want, dtype=torch.float64) == got).all())
        error = (torch.as_tensor(expected.readout, dtype=torch.float64) - run.readout.double()).abs().max()
        assert float(error) <= (0.0 if kind == "fixed" else 1e-9)


@pytest.mark.parametrize("kind", ["float", "fixed"])
def test_pruned_stages_are_sparse_processes_holding_only_their_synapses(kind, spikes_input) -> None:
    """A pruned network's chip-shaped graph stores each stage as a ``DelaySparse`` of the synapses
    that exist; stock and fast models, the laned graph and the reference agree spike for spike."""
    from lava.proc.sparse.process import DelaySparse

    from delaydeploy.exporters.lava.graph import build_lava_graph
    from delaydeploy.quantize import quantize

    network = with_pruned_synapses(moderate_network(4, [20, 24, 16, 4], recurrent=True), keep=0.3, seed=5)
    x = spikes_input(6, 12, 3, 20, rate=0.4)
    if kind == "fixed":
        network = quantize(network, calibration=x)
    stages = [*network.layers, network.readout]
    graph = build_lava_graph(network, x, lanes=None)
    synapses = [port.process for neuron in graph.neurons for port in neuron.a_in.get_src_ports()]
    assert len(synapses) == 5 and all(isinstance(process, DelaySparse) for process in synapses)
    stored = sorted(process.weights.init.nnz for process in synapses)
    present = [np.count_nonzero(stage.weights) for stage in stages]
    present += [np.count_nonzero(layer.recurrent_weights) for layer in network.layers]
    assert stored == sorted(present) and sum(present) < 0.4 * sum(w.size for w in (
        *[stage.weights for stage in stages], *[layer.recurrent_weights for layer in network.layers]))
    _assert_chip_and_laned_runs_match_the_reference(network, x, kind)


@pytest.mark.parametrize("kind, granularity, pruned", [
    ("float", "axonal", False), ("fixed", "axonal", False), ("float", "dendritic", False),
    ("fixed", "dendritic", False), ("fixed", "axonal", True),
], ids=["float-axonal", "fixed-axonal", "float-dendritic", "fixed-dendritic", "fixed-axonal-pruned"])
def test_per_neuron_delays_run_as_delay_lines_without_per_synapse_delays(kind, granularity, pruned,
                                                                         spikes_input) -> None:
    """A stage with one delay per neuron is a ``DelayLine`` before (axonal) or after (dendritic) a
    ``Dense`` (``Sparse`` when pruned) in the chip-shaped graph; the recurrent synapses keep their
    ``DelayDense``; stock and fast models, the laned graph and the reference agree spike for spike."""
    from lava.proc.dense.process import Dense
    from lava.proc.sparse.process import Sparse

    from delaydeploy.exporters.lava.graph import build_lava_graph
    from delaydeploy.exporters.lava.processes import DelayLine
    from delaydeploy.quantize import quantize

    network = with_per_neuron_delays(moderate_network(4, [20, 24, 16, 4], recurrent=True), granularity, seed=6,
                                     max_delay=6)
    if pruned:
        network = with_pruned_synapses(network, keep=0.4, seed=5)
    x = spikes_input(6, 12, 3, 20, rate=0.4)
    if kind == "fixed":
        network = quantize(network, calibration=x, weight_exp=0)
    graph = build_lava_graph(network, x, lanes=None)
    connection_type = Sparse if pruned else Dense
    for neuron, stage in zip(graph.neurons, [*network.layers, network.readout]):
        feeding = [port.process for port in neuron.a_in.get_src_ports()]
        if granularity == "dendritic":
            (line,) = [process for process in feeding if isinstance(process, DelayLine)]
            (connection,) = [port.process for port in line.s_in.get_src_ports()]
        else:
            (connection,) = [process for process in feeding if type(process) is connection_type]
            (line,) = [port.process for port in connection.s_in.get_src_ports()]
        assert isinstance(line, DelayLine) and type(connection) is connection_type  # not a DelayDense
        assert line.delays.init.shape == (stage.weights.shape[0 if granularity == "dendritic" else 1],)
        assert len(feeding) == 1 + (stage is not network.readout)  # plus the layer's recurrent DelayDense
    _assert_chip_and_laned_runs_match_the_reference(network, x, kind)


def test_axonal_delays_with_a_negative_weight_exp_run_dendritic_or_per_synapse() -> None:
    """One floor per step over inputs of several delays is not Lava's floor per delay group."""
    from delaydeploy.exporters.lava.graph import per_neuron_form

    weights = np.array([[3, 1], [2, 5]])
    axonal = np.array([[1, 4], [1, 4]])
    assert per_neuron_form(weights, axonal, 0)[0] == "axonal"
    assert per_neuron_form(weights, axonal, -1) is None
    uniform = np.full((2, 2), 3)
    granularity, steps = per_neuron_form(weights, uniform, -1)
    assert granularity == "dendritic" and list(steps) == [3, 3]
    assert per_neuron_form(weights, np.array([[1, 4], [2, 4]]), 0) is None


@pytest.mark.parametrize("delays, words", [([1, -2], "shape (2,), smallest -2"), ([[1]], "shape (1, 1)")])
def test_a_delay_line_refuses_negative_or_non_vector_delays(delays, words) -> None:
    from delaydeploy.exporters.lava.processes import DelayLine

    expected = r"DelayLine delays must be a vector of integers >= 0, got " + re.escape(words)
    with pytest.raises(ValueError, match=expected):
        DelayLine(delays=np.array(delays), frame_steps=5, frame_offset=0)
