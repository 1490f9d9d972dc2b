"""Lowering a trained :class:`DelaySNN` to the deployment IR.

Positions are rounded to integer delays (``K//2 - round(P)``), BatchNorm is folded into the
weights and a per-neuron bias (its statistics are over time x batch and it acts at every
step, so ``y = scale * (W x) + shift`` exactly), dropout is dropped, DelRec delays become
``round(d_j)`` for every synapse leaving neuron ``j``. A pruned synapse (weight exactly 0)
gets delay 0, so that no target reserves a delay for it. The readout keeps the configuration's
readout time constant (``tau = 1``: no leak) and the network its decision rule. Arithmetic is
float64.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import numpy as np
import torch
from torch import nn

from delaydeploy.delrec import RecurrentDelayLIF
from delaydeploy.ir import DecisionRule, InputKind, LIFNeuron, Network, Readout, ResetKind, SpikingLayer
from delaydeploy.layers import SynapticStage
from delaydeploy.model import DelaySNN, HiddenBlock, TimeBatchNorm


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().to(torch.float64).numpy()


def _synapses(module: SynapticStage) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``(weights, delays, bias, official_tail)`` of a synaptic stage."""
    weights = _numpy(module.weight)
    bias = np.zeros(weights.shape[0]) if module.bias is None else _numpy(module.bias)
    delays = np.where(weights != 0, module.integer_delays().cpu().numpy(), 0)  # a pruned synapse has none
    return weights, delays, bias, module.right_padding


def _fold_batchnorm(norm: nn.Module, weights: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(norm, TimeBatchNorm):
        return weights, bias
    scale = _numpy(norm.weight) / np.sqrt(_numpy(norm.running_var) + norm.eps)
    shift = _numpy(norm.bias) - _numpy(norm.running_mean) * scale
    return weights * scale[:, None], bias * scale + shift


def _lower_block(block: HiddenBlock, index: int, neuron: LIFNeuron) -> SpikingLayer:
    weights, delays, bias, tail = _synapses(block.synapses)
    weights, bias = _fold_batchnorm(block.norm, weights, bias)
    recurrent_weights = recurrent_delays = None
    if isinstance(block.neuron, RecurrentDelayLIF):
        recurrent_weights = _numpy(block.neuron.recurrent_weights)
        per_source = block.neuron.integer_delays().cpu().numpy()
        recurrent_delays = np.broadcast_to(per_source, recurrent_weights.shape).copy()
    return SpikingLayer(f"hidden{index}", weights, delays, bias, neuron, recurrent_weights, recurrent_delays, tail)


def lower(model: DelaySNN, metadata: dict[str, str | int | float | bool] | None = None) -> Network:
    """The deployment IR of ``model`` with rounded delays."""
    config = model.config
    # the configuration's strings are checked when it is made
    neuron = LIFNeuron(tau=config.tau, threshold=config.threshold, reset=cast(ResetKind, config.reset),
                       threshold_rule=">=")
    blocks = cast("Iterable[HiddenBlock]", model.blocks)
    layers = [_lower_block(block, index, neuron) for index, block in enumerate(blocks)]
    weights, delays, bias, tail = _synapses(model.readout)
    readout = Readout("readout", weights, delays, bias, config.readout_time_constant, tail)
    provenance: dict[str, str | int | float | bool] = {
        "source": "delaydeploy.DelaySNN", "kernel_size": config.kernel_size, "training_semantics": config.semantics}
    provenance.update(metadata or {})
    return Network(config.input_size, layers, readout, input_kind=cast(InputKind, config.input_kind), dt=config.dt,
                   tail_steps=config.tail, metadata=provenance, decision=cast(DecisionRule, config.decision))
