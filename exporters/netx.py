"""lava-dl netx target: the Loihi 2 integer form as a netx HDF5 network description.

Layout (what ``lava.lib.dl.netx.hdf5.Network`` of lava-dl 0.6.0 reads), one ``dense`` layer
per stage, the readout last::

    layer/<i>/type = "dense"
    layer/<i>/shape = [out]
    layer/<i>/weight [out, in]   effective integer weights w * 2**weight_exp
    layer/<i>/delay  [out, in]   per-synapse delays, 0..62; or [out] / [in] (below)
    layer/<i>/bias   [out]       in a_in units: netx uses it as bias_mant with bias_exp = 6
    layer/<i>/neuron/{type = "CUBA", iDecay, vDecay, vThMant, refDelay, gradedSpike}

The root's attributes record the time step, input kind, scales and the class rule
(``decision``; netx ignores them all).

**Compact delays.** netx also reads a 1-D ``delay``: of length ``out`` it gives every synapse
into neuron ``o`` the delay ``d[o]`` (dendritic), else of length ``in`` every synapse from
input ``i`` the delay ``d[i]`` (axonal). A stage whose existing synapses have that structure
(:func:`delaydeploy.ir.per_neuron_delays`, any source) is written so; an axonal stage of a
square layer keeps its matrix, which netx would read as dendritic.

**Pruned networks.** netx's file holds dense matrices, and its loader builds ``DelaySparse``
synapses (only the nonzero weights) when asked: ``hdf5.Network(net_config=path,
sparse_fc_layer=True)``. The root attribute ``sparse_fc_layer`` says whether to ask: true when
a stage has at most half its synapses (:func:`delaydeploy.ir.stored_sparse`).

**What netx can hold**, and what raises :class:`ConstraintError` naming the layer:

* weights: netx derives each layer's weight exponent itself from the stored integers
  (``optimize_weight_bits``), so it holds effective weights ``w * 2**weight_exp`` that are
  integers in Loihi's 8-bit range [-256, 254] (mixed signs), [0, 255] or [-255, 0]; a
  negative ``weight_exp`` over weights it does not divide (a floor of each group's sum) or a
  positive one that leaves the 8-bit range cannot be written. ``delaydeploy export --target
  netx`` therefore quantises with ``weight_exp = 0`` and ``bias_exp = 6``
  (:func:`delaydeploy.quantize.quantize`), which caps the scale so everything fits;
* bias: ``bias_mant << bias_exp`` must be a multiple of 64 whose quotient fits 13 bits;
* delays: at most 62, which every :class:`FixedNetwork` already respects (netx would clamp
  larger ones with only a warning; :func:`delaydeploy.quantize.quantize` refuses them with a
  ConstraintError naming the layer and synapse);
* recurrence (netx's ``dense_rec`` has no recurrent delays) and the soft reset (netx's LIF
  resets to 0) are refused.

**Graded input** (counts, analog payloads ``round(x * input_scale)``): the file cannot say it;
load it with ``hdf5.Network(net_config=path, input_message_bits=24)``.

**Timing, when run** (see ``hardware_tests/test_netx.py``): fed by a ``RingBuffer`` (column
``t`` sent at Lava step ``t + 1``), every netx ``Dense`` adds one step, so stage ``k``
(1-based, readout ``L + 1``) computes the integer reference's step ``t`` at Lava step
``t + k + 1``, and a ``Monitor``'s row ``t + k``. netx's LIF adds its bias from Lava step 1,
``k`` steps before stage ``k``'s first input can arrive, whereas the IR starts the bias with
the input (``t = 0``): for exact agreement a runner starts the biases at zero and switches
stage ``k``'s bias on after ``k`` steps.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from delaydeploy.errors import ConstraintError
from delaydeploy.fileio import atomic_path
from delaydeploy.fixed_point import (
    ACTIVATION_SHIFT,
    BIAS_MANT_MAX,
    BIAS_MANT_MIN,
    FixedLayer,
    FixedNetwork,
    effective_weights,
    input_message_bits,
)
from delaydeploy.ir import per_neuron_delays, stored_sparse

NETX_BIAS_EXP = ACTIVATION_SHIFT  # netx fixes bias_exp = 6: its bias is in a_in units


def _weight_range(weights: np.ndarray) -> tuple[int, int]:
    """Loihi's lossless 8-bit range for this sign mode (excitatory or mixed)."""
    return (0, 255) if weights.min() >= 0 else (-256, 254)


def netx_weights(layer: FixedLayer) -> np.ndarray:
    """The integer weights netx must store so that it computes exactly what ``layer`` computes."""
    where = f"layer {layer.name!r}"
    weights = effective_weights(layer.weights)
    if layer.weight_exp >= 0:
        scaled = weights << layer.weight_exp
    else:
        divisor = 1 << -layer.weight_exp
        if np.any(weights % divisor):
            index = tuple(int(i) for i in np.argwhere(weights % divisor)[0])
            raise ConstraintError(
                f"{where} synapse {list(index)}: weight {weights[index]} with weight_exp {layer.weight_exp} is the "
                f"fraction {weights[index] / divisor:g}, and Lava floors each delay group's sum by it; netx stores "
                "integer weights and picks the exponent itself, so it cannot express that (quantise so that "
                "weight_exp = 0)")
        scaled = weights // divisor
    if not np.any(scaled > 0):
        raise ConstraintError(
            f"{where}: no weight is positive; lava-dl's netx loader cannot carry such a layer (it fails on an "
            "all-zero matrix and rescales an all-negative one into different weights), so it is refused")
    low, high = _weight_range(scaled)
    if scaled.size and (scaled.min() < low or scaled.max() > high):
        worst = scaled.max() if scaled.max() > high else scaled.min()
        index = tuple(int(i) for i in np.argwhere(scaled == worst)[0])
        raise ConstraintError(
            f"{where} synapse {list(index)}: effective weight {weights[index]} << weight_exp {layer.weight_exp} = "
            f"{worst} is outside netx's 8-bit range [{low}, {high}]; netx derives the weight exponent from the stored "
            "integers and cannot hold a shared exponent (quantise so that weight_exp = 0)")
    return scaled


def netx_bias(layer: FixedLayer) -> np.ndarray:
    """The bias in a_in units (netx's ``bias``, used as ``bias_mant`` with ``bias_exp = 6``)."""
    bias = layer.bias_mant << layer.bias_exp
    unit = 1 << ACTIVATION_SHIFT
    if np.any(bias % unit):
        index = int(np.argmax(bias % unit != 0))
        raise ConstraintError(
            f"layer {layer.name!r} neuron [{index}]: bias {bias[index]} (bias_mant {layer.bias_mant[index]} << "
            f"bias_exp {layer.bias_exp[index]}) is not a multiple of 64; netx fixes bias_exp = 6, so it holds "
            "biases in a_in units only")
    bias = bias // unit
    if bias.size and (bias.min() < BIAS_MANT_MIN or bias.max() > BIAS_MANT_MAX):
        index = int(np.argmax((bias < BIAS_MANT_MIN) | (bias > BIAS_MANT_MAX)))
        raise ConstraintError(f"layer {layer.name!r} neuron [{index}]: bias {bias[index]} a_in units is outside "
                              f"netx's 13-bit bias_mant [{BIAS_MANT_MIN}, {BIAS_MANT_MAX}]")
    return bias


def netx_delays(layer: FixedLayer, weights: np.ndarray) -> np.ndarray:
    """The most compact ``delay`` netx reads exactly (module doc): ``[out]``, ``[in]`` or ``[out, in]``."""
    dendritic = per_neuron_delays(weights, layer.delays, "dendritic")
    if dendritic is not None:
        return dendritic
    axonal = per_neuron_delays(weights, layer.delays, "axonal")
    if axonal is not None and weights.shape[0] != weights.shape[1]:
        return axonal
    return layer.delays


def netx_arrays(layer: FixedLayer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """netx's weights, delays and bias for ``layer``; :class:`ConstraintError` for what netx cannot express."""
    where = f"layer {layer.name!r}"
    if layer.is_recurrent:
        raise ConstraintError(f"{where} is recurrent; netx's dense_rec layer has no recurrent delays and shares "
                              "one weight exponent with the feedforward weights: netx cannot express DelRec layers")
    if layer.reset == "soft":
        raise ConstraintError(f"{where} uses the soft reset (v -= threshold); netx's CUBA neuron resets v to 0")
    weights = netx_weights(layer)
    return weights, netx_delays(layer, weights), netx_bias(layer)


def _string(group: h5py.Group, name: str, value: str) -> None:
    group.create_dataset(name, (1,), f"S{len(value)}", [value.encode("ascii")])


def _write_layer(group: h5py.Group, layer: FixedLayer, weights: np.ndarray, delays: np.ndarray,
                 bias: np.ndarray) -> None:
    _string(group, "type", "dense")
    group.create_dataset("shape", data=np.array([layer.size], dtype=np.int64))
    group.create_dataset("weight", data=weights.astype(np.int64))
    group.create_dataset("delay", data=delays.astype(np.int64))
    group.create_dataset("bias", data=bias.astype(np.int64))
    neuron = group.create_group("neuron")
    _string(neuron, "type", "CUBA")
    neuron.create_dataset("iDecay", data=layer.du + 1)  # netx passes du = iDecay - 1 to Lava's LIF
    neuron.create_dataset("vDecay", data=layer.dv)
    neuron.create_dataset("vThMant", data=layer.vth)
    neuron.create_dataset("refDelay", data=1)
    neuron.create_dataset("gradedSpike", data=False)


def write_netx(fixed: FixedNetwork, path: str | os.PathLike) -> Path:
    """Write ``fixed`` as a lava-dl netx HDF5 file (atomically); refuse what netx cannot express."""
    stages = [*fixed.layers, fixed.readout]
    arrays = [netx_arrays(layer) for layer in stages]  # every check passes before anything is written
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            attrs = {"format": "delaydeploy-netx", "dt": fixed.dt, "tail_steps": fixed.tail_steps,
                     "input_kind": fixed.input_kind, "input_scale": fixed.input_scale,
                     "readout_scale": fixed.readout_scale, "decision": fixed.decision,
                     "input_message_bits": input_message_bits(fixed.input_kind),
                     "sparse_fc_layer": any(stored_sparse(weights) for weights, _, _ in arrays)}
            handle.attrs.update(attrs)
            layers = handle.create_group("layer")
            for index, (layer, stage_arrays) in enumerate(zip(stages, arrays)):
                _write_layer(layers.create_group(str(index)), layer, *stage_arrays)
    return Path(path)
