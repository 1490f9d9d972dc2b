"""The deployment IR as a PyNN network: populations (``pynn_model.json``) and synapse lists
(``pynn_connections.npz``), the two files that ``run.py`` reads.

Exact on NEST (``iaf_psc_delta`` through PyNN's ``IF_curr_delta``; ../shared/spec §7):

* NEST adds a spike's weight to the membrane and fires on ``v >= V_th``: ``>=`` maps to
  ``v_thresh = threshold``, ``>`` to the next double above it. The reset is hard (to 0);
  a soft reset has no exact mapping and is refused, naming the layer.
* The decay per step is ``exp(-dt / tau_m)``, computed by NEST with ``std::exp``. The IR's
  ``1 - 1/tau`` is not always such a value: :func:`nest_tau_m` picks the ``tau_m`` whose decay
  is nearest (usually exact or 1 ulp; a few ulp for tau close to 1) and the manifest says by
  how much. ``tau = 1`` (no leak) is a ``tau_m`` so short that the decay underflows to 0.
* Biases arrive as spikes from a clock (NEST's ``I_e`` would pass through ``tau_m/C_m (1 -
  P33)`` and act outside the sample). Delays ``D`` become ``D + 1`` steps (run.py).
* Input is binary or counts; analog input (GSC) cannot be sent as spikes and is refused.

``cm`` is set so that SpiNNaker's LIF, which scales a delta input ``w`` by ``(tau_m/cm)(1 -
exp(-dt/tau_m))/dt`` (sPyNNaker 7.4.1 ``neuron_model_lif_impl.h``, ``input_type_delta.h``),
jumps by ``w`` too; NEST's delta input does not depend on ``cm``.
"""

from __future__ import annotations

import math

import numpy as np

from delaydeploy.errors import ConstraintError
from delaydeploy.ir import Network, Readout, SpikingLayer

FORMAT = "delaydeploy-pynn"
FORMAT_VERSION = 1
ULP_SEARCH = 256  # doubles tried on each side of the analytic tau_m
FIELDS = ("pre", "post", "weight", "delay")


def nest_tau_m(decay: float, dt_ms: float) -> tuple[float, float]:
    """``(tau_m, achieved)``: the ``tau_m`` (ms) whose NEST decay ``exp(-dt/tau_m)`` is nearest ``decay``."""
    if decay == 0.0:
        tau_m = dt_ms / 1000.0  # exp(-1000) underflows to exactly 0.0
        return tau_m, math.exp(-dt_ms / tau_m)
    guess = -dt_ms / math.log(decay)
    best = (math.inf, guess, math.exp(-dt_ms / guess))
    for direction in (math.inf, 0.0):
        candidate = guess
        for _ in range(ULP_SEARCH):
            achieved = math.exp(-dt_ms / candidate)
            best = min(best, (abs(achieved - decay), candidate, achieved))
            if achieved == decay:
                return candidate, achieved
            candidate = math.nextafter(candidate, direction)
    return best[1], best[2]


def ulp_distance(a: float, b: float) -> int:
    """How many doubles lie between ``a`` and ``b`` (both >= 0)."""
    return abs(int(np.float64(a).view(np.int64)) - int(np.float64(b).view(np.int64)))


def check_pynn(network: Network) -> None:
    """Raise :class:`ConstraintError` naming what PyNN's ``IF_curr_delta`` cannot compute exactly."""
    if network.input_kind == "analog":
        raise ConstraintError("input is analog (real-valued); the PyNN target sends spikes: binary or counts only")
    for layer in network.layers:
        if layer.neuron.reset != "hard":
            raise ConstraintError(f"layer {layer.name!r}: reset {layer.neuron.reset!r}; IF_curr_delta on NEST and "
                                  "SpiNNaker resets to v_reset (hard reset only)")


def _synapses(weights: np.ndarray, delays: np.ndarray) -> dict[str, np.ndarray]:
    """The nonzero entries of ``weights [out, in]`` as a list; zeros add nothing and are left out."""
    post, pre = np.nonzero(weights)
    return {"pre": pre.astype(np.int64), "post": post.astype(np.int64), "weight": weights[post, pre],
            "delay": delays[post, pre].astype(np.int64)}


def _stage_entry(stage: SpikingLayer | Readout, dt_ms: float) -> dict:
    spiking = isinstance(stage, SpikingLayer)
    decay = stage.neuron.decay if isinstance(stage, SpikingLayer) else stage.decay
    tau_m, achieved = nest_tau_m(decay, dt_ms)
    entry = {"name": stage.name, "size": stage.size, "spiking": spiking, "tau_m_ms": tau_m,
             "cm_nF": tau_m * (1.0 - achieved) / dt_ms if achieved < 1.0 else 1.0,
             "decay_per_step": decay, "nest_decay_per_step": achieved,
             "nest_decay_error_ulp": ulp_distance(achieved, decay)}
    if isinstance(stage, SpikingLayer):
        theta = stage.neuron.threshold
        entry["v_thresh"] = theta if stage.neuron.threshold_rule == ">=" else math.nextafter(theta, math.inf)
        entry["threshold_rule"] = stage.neuron.threshold_rule
        entry["recurrent"] = stage.is_recurrent
    return entry


def to_pynn(network: Network) -> tuple[dict, dict[str, np.ndarray]]:
    """``(model, connections)``: what ``run.py`` reads from ``pynn_model.json`` and ``pynn_connections.npz``."""
    check_pynn(network)
    dt_ms = network.dt * 1e3
    stages: list[SpikingLayer | Readout] = [*network.layers, network.readout]
    connections: dict[str, np.ndarray] = {}
    longest = 0
    for index, stage in enumerate(stages):
        tables = {"input": _synapses(stage.weights, stage.delays),
                  # the clock fires at the input's steps; the stage's lag is its index
                  "bias": _synapses(stage.bias[:, None], np.full((stage.size, 1), index))}
        if isinstance(stage, SpikingLayer) and stage.recurrent_weights is not None \
                and stage.recurrent_delays is not None:
            tables["recurrent"] = _synapses(stage.recurrent_weights, stage.recurrent_delays)
        for kind, table in tables.items():
            longest = max(longest, int(table["delay"].max(initial=0)))
            connections.update({f"{stage.name}/{kind}/{key}": table[key] for key in FIELDS})
    model = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "time_step_ms": dt_ms,
        "tail_steps": network.tail_steps,
        "input": {"channels": network.input_size, "kind": network.input_kind},
        "stages": [_stage_entry(stage, dt_ms) for stage in stages],
        "max_delay_steps": longest,
        # silenced layers emit nothing: the last spikes land within the longest delay (+1 step)
        "drain_steps": longest + 2,
        "decision": network.decision,
    }
    return model, connections
