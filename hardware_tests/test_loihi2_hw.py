"""The ``Loihi2HwCfg`` path: a bit-accurate network on a Loihi 2 chip equals Lava's simulation.

This needs Intel's non-public ``lava-loihi`` extension (NeuroCore process models, the Loihi
compiler, the ``embedded_io`` adapters) and a reachable Loihi 2 system; with ``lava-nc``
alone there is nothing that can execute a process on a chip, so the chip test skips. It has
never run here: treat the hardware side of it as a starting point, not as verified code.

On the chip only Lava's stock processes run (our ``FramedLIF`` and fast ``DelayDense`` models
are Python models for the CPU), so the network is chosen to need none of their extras: one
sample (no framing), hard reset and zero biases (no bias schedule). Its hidden spikes on the
chip must equal those of our bit-accurate Lava simulation, up to the constant latency of the
host-to-chip adapters. The same stock graph, without the adapters, runs on Lava's CPU backend
here: that checks the choice of network, the graph and the alignment, at latency 0.
"""

from __future__ import annotations

import numpy as np
import pytest
from lava.utils import loihi

from delaydeploy.exporters.lava.graph import simulate_lava
from delaydeploy.fixed_point import FixedNetwork

pytestmark = pytest.mark.lava  # Lava's own models (the lava extra, Python 3.10)

MAX_ADAPTER_LATENCY = 4  # steps the Py<->Nc adapters may add, searched for the alignment


def _stock_only_case(random_fixed_network, spikes_input) -> tuple[FixedNetwork, np.ndarray]:
    """A hard-reset integer network with zero biases and one sample of input."""
    network = random_fixed_network(70, [8, 16, 12, 3], tail_steps=8)
    for layer in [*network.layers, network.readout]:
        layer.bias_mant[:] = 0
    return network, spikes_input(71, 20, 1, 8)


def _run_stock_graph(network: FixedNetwork, x: np.ndarray, steps: int, *, on_chip: bool) -> list[np.ndarray]:
    """Hidden spikes ``[steps, N]`` of Lava's stock ``RingBuffer -> (DelayDense -> LIF)*`` graph for the
    sample ``x[:, 0]``: on a chip (spikes cross the Py<->Nc adapters) or on Lava's CPU backend."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2HwCfg, Loihi2SimCfg
    from lava.proc.dense.process import DelayDense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor

    data = np.zeros((network.input_size, steps), dtype=np.int32)
    data[:, : x.shape[0]] = x[:, 0].T
    source = RingBuffer(data=data)
    previous, monitors = source.s_out, []
    if on_chip:
        from lava.proc import embedded_io as eio

        to_chip = eio.spike.PyToNxAdapter(shape=(network.input_size,))
        source.s_out.connect(to_chip.inp)
        previous = to_chip.out
    for layer in [*network.layers, network.readout]:
        dense = DelayDense(weights=layer.weights, delays=layer.delays, weight_exp=layer.weight_exp)
        neuron = LIF(shape=(layer.size,), du=layer.du, dv=layer.dv, bias_mant=layer.bias_mant,
                     bias_exp=layer.bias_exp, vth=layer.vth)
        previous.connect(dense.s_in)
        dense.a_out.connect(neuron.a_in)
        previous = neuron.s_out
        if layer is not network.readout:
            probed = neuron.s_out
            if on_chip:
                from_chip = eio.spike.NxToPyAdapter(shape=(layer.size,))
                neuron.s_out.connect(from_chip.inp)
                probed = from_chip.out
            monitor = Monitor()
            monitor.probe(probed, steps)
            monitors.append((monitor, probed))
    run_cfg = Loihi2HwCfg(select_tag="fixed_pt") if on_chip else Loihi2SimCfg(select_tag="fixed_pt")
    source.run(condition=RunSteps(num_steps=steps), run_cfg=run_cfg)
    try:
        return [monitor.get_data()[probed.process.name][probed.name] for monitor, probed in monitors]
    finally:
        source.stop()


def _latencies(network: FixedNetwork, x: np.ndarray, *, on_chip: bool) -> list[list[int]]:
    """Per hidden layer, the extra latencies (0..MAX_ADAPTER_LATENCY) at which the stock graph's
    spikes equal those of our bit-accurate simulation, and are not silent."""
    expected = simulate_lava(network, x)
    steps = x.shape[0] + network.tail_steps + len(network.layers) + 1 + MAX_ADAPTER_LATENCY
    recorded = _run_stock_graph(network, x, steps, on_chip=on_chip)
    latencies = []
    for k, (graph, simulated) in enumerate(zip(recorded, expected.spikes), start=1):  # stage k lags k steps
        simulated = simulated[:, 0].numpy()
        assert simulated.sum() > 0, f"hidden layer {k} is silent: the comparison would prove little"
        latencies.append([shift for shift in range(MAX_ADAPTER_LATENCY + 1)
                          if np.array_equal(graph[k + shift: k + shift + len(simulated)], simulated)])
    assert len(latencies) == len(network.layers)
    return latencies


def test_stock_graph_on_the_cpu_equals_bit_accurate_simulation(random_fixed_network, spikes_input) -> None:
    network, x = _stock_only_case(random_fixed_network, spikes_input)
    assert _latencies(network, x, on_chip=False) == [[0]] * len(network.layers)


@pytest.mark.skipif(
    not loihi.is_installed(),
    reason="Intel's non-public lava-loihi is not installed: lava-nc alone has no NeuroCore process models or "
           "Loihi compiler, so Loihi2HwCfg cannot place anything on a chip",
)
def test_fixed_network_on_loihi2_equals_bit_accurate_simulation(random_fixed_network, spikes_input) -> None:
    network, x = _stock_only_case(random_fixed_network, spikes_input)
    for k, shifts in enumerate(_latencies(network, x, on_chip=True), start=1):
        assert shifts, f"hidden layer {k}: chip spikes match the bit-accurate simulation at no adapter latency"
