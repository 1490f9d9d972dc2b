"""Import of the authors' own checkpoints (raw ``state_dict`` files).

* SNN-delays (Hammouamri et al. 2024, ``Thvnvtos/SNN-delays``): ``nn.Sequential`` keys
  ``model.<i>.*`` with, per hidden block, ``Dcls1d`` (``weight``, ``P``, ``SIG``), optional
  ``BatchNorm1d``, LIF and dropout, then the readout ``Dcls1d`` and LIF. The imported model
  keeps the official time semantics (each layer (K-1)//2 steps longer).
* DelRec (Queant et al. 2025, ``alexmaxad/DelRec``): keys ``layers.<i>.*`` with, per hidden
  block, ``Linear`` or DCLS, optional BatchNorm, LIF or recurrent-delay LIF
  (``recurrent_weights``, ``recurrent_delays``), a spike recorder and dropout, then the
  readout ``Linear`` and LIF. The triangular spread is forced to sigma = 0.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from delaydeploy.checkpoint import Checkpoint, package_versions
from delaydeploy.config import NetworkConfig, get_preset
from delaydeploy.errors import CheckpointError

_BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _take(state: dict[str, Any], key: str, source: str) -> torch.Tensor:
    if key not in state:
        raise CheckpointError(f"{source}: expected key {key!r} is missing (wrong preset, --hidden or --layers?)")
    value = state.pop(key)
    if not isinstance(value, torch.Tensor):
        raise CheckpointError(f"{source}: {key} is not a tensor")
    return value.detach()


def _check_consumed(state: dict[str, Any], source: str) -> None:
    if state:
        keys = sorted(state)
        raise CheckpointError(
            f"{source}: unexpected keys {keys[:6]}{'...' if len(keys) > 6 else ''} (wrong preset, --hidden or --layers?)"
        )


def _config(preset: str, hidden: int | None, layers: int | None, **changes: Any) -> NetworkConfig:
    network = get_preset(preset).network
    sizes = network.hidden_sizes
    count = len(sizes) if layers is None else layers
    size = sizes[0] if hidden is None else hidden
    if count != len(sizes) and (network.recurrent_layers != (False,) * len(sizes) or len(set(network.delay_stages)) > 1):
        raise CheckpointError(f"preset {preset!r} fixes the layer count to {len(sizes)}")
    return dataclasses.replace(network, hidden_sizes=(size,) * count, **changes)


def import_snn_delays(state: dict[str, Any], preset: str, *, hidden: int | None = None, layers: int | None = None,
                      source: str = "<state_dict>") -> Checkpoint:
    """Convert an official SNN-delays ``state_dict`` to a delaydeploy checkpoint."""
    state = dict(state)
    config = _config(preset, hidden, layers, semantics="official", tail_steps=None)
    has_norm = any(key.endswith("running_mean") for key in state)
    if has_norm != config.batchnorm:
        raise CheckpointError(
            f"{source}: BatchNorm is {'present' if has_norm else 'absent'} but preset {preset!r} expects it "
            f"{'present' if config.batchnorm else 'absent'}"
        )
    stride = 4 if has_norm else 3
    converted: dict[str, torch.Tensor] = {}
    stages = [(f"blocks.{l}.synapses", l * stride) for l in range(len(config.hidden_sizes))]
    stages.append(("readout", len(config.hidden_sizes) * stride))
    for ours, index in stages:
        for name in ("weight", "P", "SIG"):
            converted[f"{ours}.dcls.{name}"] = _take(state, f"model.{index}.{name}", source)
        if config.bias:
            converted[f"{ours}.dcls.bias"] = _take(state, f"model.{index}.bias", source)
    if has_norm:
        for l in range(len(config.hidden_sizes)):
            for name in _BN_KEYS:
                converted[f"blocks.{l}.norm.{name}"] = _take(state, f"model.{l * stride + 1}.{name}", source)
    _check_consumed(state, source)
    checkpoint = Checkpoint(config, converted, {}, package_versions(), preset, None, source=source)
    checkpoint.build_model()
    return checkpoint


def import_delrec(state: dict[str, Any], preset: str, *, hidden: int | None = None, layers: int | None = None,
                  source: str = "<state_dict>") -> Checkpoint:
    """Convert an official DelRec ``state_dict`` to a delaydeploy checkpoint (sigma = 0)."""
    state = dict(state)
    config = _config(preset, hidden, layers)
    stride = 5 if config.batchnorm else 4
    converted: dict[str, torch.Tensor] = {}

    def synapses(ours: str, index: int, stage: int) -> None:
        if config.delays != "none" and config.delay_stages[stage]:
            for name in ("weight", "P"):
                converted[f"{ours}.dcls.{name}"] = _take(state, f"layers.{index}.{name}", source)
            converted[f"{ours}.dcls.SIG"] = torch.zeros_like(converted[f"{ours}.dcls.P"])
            prefix = f"{ours}.dcls"
        else:
            converted[f"{ours}.weight"] = _take(state, f"layers.{index}.weight", source)
            prefix = ours
        if config.bias:
            converted[f"{prefix}.bias"] = _take(state, f"layers.{index}.bias", source)

    for l in range(len(config.hidden_sizes)):
        base = l * stride
        ours = f"blocks.{l}"
        synapses(f"{ours}.synapses", base, l)
        if config.batchnorm:
            for name in _BN_KEYS:
                converted[f"{ours}.norm.{name}"] = _take(state, f"layers.{base + 1}.{name}", source)
        neuron_index = base + (2 if config.batchnorm else 1)
        if config.recurrent_layers[l]:
            converted[f"{ours}.neuron.recurrent_weights"] = _take(state, f"layers.{neuron_index}.recurrent_weights", source)
            converted[f"{ours}.neuron.recurrent_delays"] = _take(state, f"layers.{neuron_index}.recurrent_delays", source)
            converted[f"{ours}.neuron.sigma"] = torch.zeros(())
            state.pop(f"layers.{neuron_index}.p_spread", None)  # spread width: irrelevant at sigma = 0
    synapses("readout", len(config.hidden_sizes) * stride, len(config.hidden_sizes))
    _check_consumed(state, source)
    checkpoint = Checkpoint(config, converted, {}, package_versions(), preset, None, source=source)
    checkpoint.build_model()
    return checkpoint


IMPORTERS = {"snn-delays": import_snn_delays, "delrec": import_delrec}
