"""Brian 2 speed: the PyNN bundle's ``run.py --simulator brian2`` on the SHD-sized network.

The network and input of :mod:`benchmarks.nest_bench` (140-256-256-20, delays 0..24, 5 %
binary input, 100 steps plus 36 tail steps, :data:`SAMPLES` samples in one run), beside the
reference on the same samples. Brian 2 is imported before the clock starts. Both of
``run.py``'s code generation targets run: ``numpy`` (the default, nothing to compile) and
``cython`` (each code object compiled once per network layout and cached by Brian 2 in the
home folder: a first warm-up run compiles, the timed run loads). Every run must agree with the
reference spike for spike, or the benchmark fails.

Keys of :func:`run`: ``brian2_samples_per_s`` (the default target: building the objects,
running, reading back), where its time goes (``brian2_build_s``, ``brian2_run_s``, which
includes Brian's code generation, ``brian2_read_s``), ``brian2_cython_samples_per_s`` and
``brian2_cython_first_run_s`` (the warm-up run: it compiles, unless Brian's cache already holds
this layout), and
``brian2_reference_samples_per_s``.

Brian 2's standalone C++ mode is not offered: it compiles the whole project for every network
(13-18 s on 2 cores for this one, against a numpy run of about 2 s).

Run: ``python -m benchmarks brian2_bench``.
"""

from __future__ import annotations

import time

import brian2 as b2
import numpy as np

from benchmarks.lava_bench import shd_like_input, shd_like_network
from delaydeploy.exporters.pynn import run as script
from delaydeploy.exporters.pynn.model import to_pynn
from delaydeploy.reference import simulate

SAMPLES = 64


def timed_run(model: dict, connections: dict[str, np.ndarray], x: np.ndarray, codegen: str) -> tuple[list[float], dict]:
    """``run.py``'s Brian 2 path in its three phases; returns the clock marks and the results."""
    frames = script.brian2_setup(b2, model, x, codegen)
    marks = [time.perf_counter()]
    network, layers, readout = script.brian2_network(b2, model, connections, x, frames)
    marks.append(time.perf_counter())
    network.run(x.shape[1] * frames.length * model["time_step_ms"] * b2.ms, namespace={})
    marks.append(time.perf_counter())
    result = script.brian2_results(model, layers, readout, frames, x.shape[1])
    marks.append(time.perf_counter())
    return marks, result


def run() -> dict[str, float]:
    network = shd_like_network()
    x = shd_like_input(SAMPLES, seed=2)
    model, connections = to_pynn(network)
    start = time.perf_counter()
    expected = simulate(network, x)
    reference_s = time.perf_counter() - start
    keys: dict[str, float] = {}
    for codegen in ("numpy", "cython", "cython"):  # the first cython run compiles, the second is timed
        marks, result = timed_run(model, connections, x, codegen)
        for index, layer in enumerate(network.layers):
            if not np.array_equal(result[f"spikes_{index}"], expected.spikes[index].numpy()):
                raise AssertionError(f"{layer.name}: Brian 2 ({codegen}) and the reference disagree")
        if codegen == "numpy":
            keys.update(brian2_samples_per_s=SAMPLES / (marks[-1] - marks[0]), brian2_build_s=marks[1] - marks[0],
                        brian2_run_s=marks[2] - marks[1], brian2_read_s=marks[3] - marks[2])
        elif "brian2_cython_first_run_s" not in keys:
            keys["brian2_cython_first_run_s"] = marks[-1] - marks[0]
        else:
            keys["brian2_cython_samples_per_s"] = SAMPLES / (marks[-1] - marks[0])
    keys["brian2_reference_samples_per_s"] = SAMPLES / reference_s
    return keys
