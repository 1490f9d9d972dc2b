"""NEST speed: the PyNN target's run.py on the SHD-sized network, beside the reference.

The network and input of :mod:`benchmarks.lava_bench` (140-256-256-20, delays 0..24, 5 %
binary input, 100 steps plus 36 tail steps), :data:`SAMPLES` samples in one ``run.py``
simulation on NEST with one thread per core. PyNN and NEST are imported before the clock
starts (once per process, about 1.5 s). The run must agree with the reference spike for
spike, or the benchmark fails.

Keys of :func:`run`: ``nest_samples_per_s`` (set-up, build, simulation and read-back),
``nest_build_s``, ``nest_simulate_s`` and ``nest_read_s`` (where that time goes),
``nest_reference_samples_per_s`` (the reference simulator on the same samples) and
``nest_threads``.

Run: ``python -m benchmarks nest_bench``.
"""

from __future__ import annotations

import os
import time

import numpy as np

from benchmarks.lava_bench import shd_like_input, shd_like_network
from delaydeploy.exporters.pynn import run as script
from delaydeploy.exporters.pynn.model import to_pynn
from delaydeploy.reference import simulate

SAMPLES = 64


def run() -> dict[str, float]:
    network = shd_like_network()
    x = shd_like_input(SAMPLES, seed=2)
    model, connections = to_pynn(network)
    threads = os.cpu_count() or 1
    sim = script.import_simulator("nest")
    dt = model["time_step_ms"]
    marks = [time.perf_counter()]
    frames = script.setup(sim, "nest", model, x, threads)
    layers, readout = script.build(sim, "nest", model, connections, x, frames)
    marks.append(time.perf_counter())
    script.run_samples(sim, "nest", model, layers, readout, frames, SAMPLES)
    marks.append(time.perf_counter())
    spikes = [script.spike_array(layer, index, frames, SAMPLES, dt) for index, layer in enumerate(layers)]
    script.membrane_array(readout, len(layers), frames, SAMPLES, dt)
    marks.append(time.perf_counter())
    sim.end()
    start = time.perf_counter()
    expected = simulate(network, x)
    reference_s = time.perf_counter() - start
    for layer, want, got in zip(network.layers, expected.spikes, spikes):
        if not np.array_equal(want.numpy(), got):
            raise AssertionError(f"{layer.name}: NEST and the reference disagree")
    return {
        "nest_samples_per_s": SAMPLES / (marks[-1] - marks[0]),
        "nest_build_s": marks[1] - marks[0],
        "nest_simulate_s": marks[2] - marks[1],
        "nest_read_s": marks[3] - marks[2],
        "nest_reference_samples_per_s": SAMPLES / reference_s,
        "nest_threads": threads,
    }
