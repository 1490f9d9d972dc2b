"""The ``Loihi2HwCfg`` path: a bit-accurate network on a Loihi 2 chip equals Lava's simulation.

This needs Intel's non-public ``lava-loihi`` extension (NeuroCore process models, the Loihi
compiler, the ``embedded_io`` adapters) and a reachable Loihi 2 system; with ``lava-nc``
alone there is nothing that can execute a process on a chip, so the test skips. It has never
run here: treat the hardware side of it as a starting point, not as verified code.

On the chip only Lava's stock processes run (our ``FramedLIF`` and fast ``DelayDense`` models
are Python models for the CPU), so the network is chosen to need none of their extras: one
sample (no framing), hard reset and zero biases (no bias schedule). Its hidden spikes on the
chip must equal those of our bit-accurate Lava simulation, up to the constant latency of the
host-to-chip adapters.
"""

from __future__ import annotations

import numpy as np
import pytest
from lava.utils import loihi

from exporters.lava import simulate_lava

pytestmark = pytest.mark.skipif(
    not loihi.is_installed(),
    reason="Intel's non-public lava-loihi is not installed: lava-nc alone has no NeuroCore process models or "
           "Loihi compiler, so Loihi2HwCfg cannot place anything on a chip",
)

MAX_ADAPTER_LATENCY = 4  # steps the Py<->Nc adapters may add, searched for the alignment


def test_fixed_network_on_loihi2_equals_bit_accurate_simulation(random_fixed_network, spikes_input) -> None:
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2HwCfg
    from lava.proc import embedded_io as eio
    from lava.proc.dense.process import DelayDense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor

    network = random_fixed_network(70, [8, 16, 12, 3], tail_steps=8)
    for layer in [*network.layers, network.readout]:
        layer.bias_mant[:] = 0
    x = spikes_input(71, 20, 1, 8)
    expected = simulate_lava(network, x)
    steps = x.shape[0] + network.tail_steps + len(network.layers) + 1 + MAX_ADAPTER_LATENCY

    data = np.zeros((network.input_size, steps), dtype=np.int32)
    data[:, : x.shape[0]] = x[:, 0].T
    source = RingBuffer(data=data)
    to_chip = eio.spike.PyToNxAdapter(shape=(network.input_size,))
    source.s_out.connect(to_chip.inp)
    previous, monitors = to_chip.out, []
    for layer in [*network.layers, network.readout]:
        dense = DelayDense(weights=layer.weights, delays=layer.delays, weight_exp=layer.weight_exp)
        neuron = LIF(shape=(layer.size,), du=layer.du, dv=layer.dv, bias_mant=layer.bias_mant,
                     bias_exp=layer.bias_exp, vth=layer.vth)
        previous.connect(dense.s_in)
        dense.a_out.connect(neuron.a_in)
        previous = neuron.s_out
        if layer is not network.readout:
            from_chip = eio.spike.NxToPyAdapter(shape=(layer.size,))
            neuron.s_out.connect(from_chip.inp)
            monitor = Monitor()
            monitor.probe(from_chip.out, steps)
            monitors.append((monitor, from_chip))
    source.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2HwCfg(select_tag="fixed_pt"))
    try:
        recorded = [monitor.get_data()[adapter.name]["out"] for monitor, adapter in monitors]
    finally:
        source.stop()

    for k, (chip, simulated) in enumerate(zip(recorded, expected.spikes), start=1):
        simulated = simulated[:, 0].numpy()
        length = simulated.shape[0]
        aligned = [shift for shift in range(MAX_ADAPTER_LATENCY + 1)
                   if np.array_equal(chip[k + shift: k + shift + length], simulated)]
        assert aligned, f"hidden layer {k}: chip spikes match the bit-accurate simulation at no adapter latency"
