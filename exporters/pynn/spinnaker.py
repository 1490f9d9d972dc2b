"""SpiNNaker for the PyNN target: sPyNNaker 7.4.1's weight grid and limits, and its mapping.

What sPyNNaker 7.4.1 does with ``run.py``'s ``IF_curr_delta`` populations (read from its
sources: ``population_vertex.py``, ``synapse_io.py``, ``neuron_model_lif_impl.h``,
``input_type_delta.h``, ``synapse_types_delta_impl.h``, ``c_main.c``; the arithmetic checked
against the shipped ``IF_curr_delta.aplx``):

* **Weights.** Each population sums arriving weights per time step in one 16-bit ring-buffer
  slot per receptor (excitatory, inhibitory; a weight is stored as its size). The slot's
  units are ``2**(s - 15)``, ``s`` the receptor's ring-buffer shift: the smallest power with
  ``2**s > max_expected_summed_weight`` (:func:`ring_buffer_shift`). A weight becomes
  ``rint(|w| * 2**(15 - s))`` units (round half to even); a slot saturates at ``2**16 - 1``
  units. The export sets ``max_expected_summed_weight`` to the largest sum that arrives in
  one step on its calibration inputs (:func:`summed_weight_peaks`), so the grid is known and
  a sum twice that size still fits.
* **Neuron.** In tick ``t`` the slot for ``t`` is shifted into s16.15 (exact), scaled by
  ``1/dt`` and added as ``V = alpha - exp_TC (alpha - V)``, ``alpha = I tau_m/cm``, with
  products rounded down; input of tick ``t`` counts in tick ``t``'s threshold test ``V >=
  v_thresh``; a spike resets to ``v_reset``; with ``tau_refrac = 0`` no input is lost. With
  ``cm = tau_m (1 - exp_TC)/dt`` a weight moves ``V`` by itself (up to that rounding).
* **Delays.** A spike sent in tick ``t`` with delay ``d`` ticks counts in tick ``t + d``.
  A core keeps ``2**(14 - atom bits - 1)`` delay slots (32 with 256 neurons per core, 128
  with 40); longer delays go through delay-extension cores, at most 8 stages (9x the slots).

:func:`spinnaker_weights` gives the IR with every weight and bias on that grid: the
reference simulator runs it as the SpiNNaker rung of the accuracy ladder (weights only; the
s16.15 membrane arithmetic is not modelled). :func:`map_virtual` runs sPyNNaker's mapping on a
virtual board (no SpiNNaker needed; a virtual run records nothing): cores, delay-extension
cores (placed by the population whose spikes they delay) and ring-buffer shifts.
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from delaydeploy.delay_ops import delayed_linear
from delaydeploy.errors import ConstraintError
from delaydeploy.ir import Network, Readout, SpikingLayer
from delaydeploy.reference import simulate

NEURONS_PER_CORE = 256
RING_BUFFER_BITS = 14
DELAY_EXTENSION_STAGES = 8
VIRTUAL_BOARD_VERSION = 5  # a SpiNN-5 board (48 chips)
RECEPTORS = ("excitatory", "inhibitory")


def ring_buffer_shift(peak: float) -> int:
    """sPyNNaker's shift for a receptor whose summed weight reaches ``peak``: ``2**s > peak``, ``s >= 0``."""
    if peak <= 0:
        return 0
    power = math.ceil(max(0.0, math.log2(peak)))
    return power + 1 if 2.0 ** power <= peak else power


def weight_unit(peak: float) -> float:
    """The size of one ring-buffer unit for a receptor of summed-weight ``peak``."""
    return 2.0 ** (ring_buffer_shift(peak) - 15)


def delay_slots(neurons: int) -> int:
    """Delay slots of a core of a population of ``neurons``: ``2**(14 - atom bits - receptor bits)``."""
    atom_bits = max(1, math.ceil(math.log2(min(neurons, NEURONS_PER_CORE))))
    return 2 ** (RING_BUFFER_BITS - atom_bits - 1)


def _stages(network: Network) -> list[SpikingLayer | Readout]:
    return [*network.layers, network.readout]


def summed_weight_peaks(network: Network, x: np.ndarray) -> list[tuple[float, float]]:
    """Per stage, the largest excitatory and inhibitory weight sum that arrives in one step on
    inputs ``x`` (biases included: they arrive as spikes too), from the reference's spikes; at
    least the largest single weight of the receptor."""
    simulation = simulate(network, x)
    signal = torch.nn.functional.pad(torch.as_tensor(x, dtype=torch.float64),
                                     (0, 0, 0, 0, 0, network.tail_steps))
    peaks = []
    for index, stage in enumerate(_stages(network)):
        weights = torch.as_tensor(stage.weights)
        delays = torch.as_tensor(stage.delays)
        bias = torch.as_tensor(stage.bias)
        sums = []
        for sign in (1.0, -1.0):
            part = (sign * weights).clamp(min=0)
            total = delayed_linear(signal, part, delays) + (sign * bias).clamp(min=0)
            if isinstance(stage, SpikingLayer) and stage.is_recurrent:
                own = simulation.spikes[index]
                recurrent = (sign * torch.as_tensor(stage.recurrent_weights)).clamp(min=0)
                total = total + delayed_linear(own, recurrent, torch.as_tensor(stage.recurrent_delays) + 1)
            single = max(float(part.max()), float((sign * bias).clamp(min=0).max()))
            sums.append(max(float(total.max()), single))  # never below the largest single weight
        peaks.append((sums[0], sums[1]))
        if index < len(network.layers):
            signal = simulation.spikes[index]
    return peaks


def weight_grid(names: list[str], peaks: list[tuple[float, float]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per stage and receptor: the summed-weight peak, sPyNNaker's ring-buffer shift and the weight unit."""
    return {name: {receptor: {"max_summed_weight": peak, "ring_buffer_shift": ring_buffer_shift(peak),
                              "unit": weight_unit(peak)} for receptor, peak in zip(RECEPTORS, stage_peaks)}
            for name, stage_peaks in zip(names, peaks)}


def _on_grid(values: np.ndarray, peaks: tuple[float, float]) -> np.ndarray:
    """``values`` rounded to the ring-buffer unit of their receptor (sign), half to even."""
    units = np.where(values > 0, weight_unit(peaks[0]), weight_unit(peaks[1]))
    return np.rint(values / units) * units


def spinnaker_weights(network: Network, peaks: list[tuple[float, float]]) -> Network:
    """``network`` with every weight and bias as SpiNNaker stores it (see module docstring)."""
    rounded = copy.deepcopy(network)
    for stage, stage_peaks in zip(_stages(rounded), peaks):
        stage.weights = _on_grid(stage.weights, stage_peaks)
        stage.bias = _on_grid(stage.bias, stage_peaks)
        if isinstance(stage, SpikingLayer) and stage.recurrent_weights is not None:
            stage.recurrent_weights = _on_grid(stage.recurrent_weights, stage_peaks)
    return rounded


def check_spinnaker(network: Network) -> None:
    """Raise :class:`ConstraintError` for the first synapse whose delay SpiNNaker cannot hold."""
    for stage in _stages(network):
        slots = delay_slots(stage.size)
        limit = slots * (1 + DELAY_EXTENSION_STAGES)
        tables = [("synapse", stage.delays + 1)]  # run.py's delay in ticks: D + 1
        if isinstance(stage, SpikingLayer) and stage.recurrent_delays is not None:
            tables.append(("recurrent synapse", stage.recurrent_delays + 1))
        for kind, ticks in tables:
            if ticks.size and ticks.max() > limit:
                post, pre = (int(i) for i in np.argwhere(ticks > limit)[0])
                raise ConstraintError(f"{stage.name!r}: {kind} {pre} -> {post} needs a delay of {ticks[post, pre]} "
                                      f"ticks; SpiNNaker holds at most {limit} ({slots} slots per core, "
                                      f"{DELAY_EXTENSION_STAGES} delay-extension stages)")


def map_virtual(folder: Path, inputs_file: Path) -> dict:
    """Map the PyNN bundle files in ``folder`` with sPyNNaker on a virtual board; returns what
    :mod:`delaydeploy.exporters.pynn.spinnaker_map` reports.

    Runs in a subprocess with its own configuration and report folder (never the user's home).
    """
    with tempfile.TemporaryDirectory(prefix="delaydeploy-spinnaker-") as home:
        Path(home, ".spynnaker.cfg").write_text(
            f"[Machine]\nvirtual_board = True\nversion = {VIRTUAL_BOARD_VERSION}\n")
        command = [sys.executable, "-m", "delaydeploy.exporters.pynn.spinnaker_map", str(folder.resolve()),
                   str(inputs_file.resolve())]
        environment = {**os.environ, "HOME": home}
        done = subprocess.run(command, cwd=home, env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConstraintError(f"sPyNNaker could not map the network on a virtual board: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])
