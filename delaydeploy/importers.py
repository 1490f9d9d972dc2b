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


class _Conversion:
    """Moves official entries to our keys, remembering where each came from for error messages."""

    def __init__(self, state: dict[str, Any], source: str) -> None:
        self.remaining = dict(state)
        self.source = source
        self.converted: dict[str, torch.Tensor] = {}
        self.origin: dict[str, str] = {}

    def take(self, ours: str, theirs: str) -> None:
        if theirs not in self.remaining:
            raise CheckpointError(
                f"{self.source}: expected key {theirs!r} is missing (wrong preset, --hidden or --layers?)"
            )
        value = self.remaining.pop(theirs)
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{self.source}: {theirs} is not a tensor")
        self.converted[ours] = value.detach()
        self.origin[ours] = theirs

    def finish(self, config: NetworkConfig, preset: str) -> Checkpoint:
        """The checkpoint, after checking nothing is left over, every shape fits the preset and every
        delay lies where the authors' code keeps it."""
        if self.remaining:
            keys = sorted(self.remaining)
            raise CheckpointError(f"{self.source}: unexpected keys {keys[:6]}{'...' if len(keys) > 6 else ''} "
                                  "(wrong preset, --hidden or --layers?)")
        self._check_delays(config)
        checkpoint = Checkpoint(config, self.converted, {}, package_versions(), preset, None, source=self.source)
        try:
            checkpoint.build_model()
        except CheckpointError as error:
            message = str(error)
            for ours, theirs in sorted(self.origin.items(), key=lambda item: -len(item[0])):
                message = message.replace(ours, theirs)
            raise CheckpointError(f"{message} (preset {preset!r})") from None
        return checkpoint


    def _check_delays(self, config: NetworkConfig) -> None:
        """DCLS positions within ``[-K//2, K//2]`` (its clamp) and recurrent delays ``>= 0`` (DelRec's;
        a delay above the Loihi 2 limit is the export's to refuse)."""
        half = config.kernel_size // 2
        for ours, value in self.converted.items():
            if ours.endswith(".dcls.P"):
                low, high, what = -half, half, f"positions of a {config.kernel_size}-tap kernel"
            elif ours.endswith(".recurrent_delays"):
                low, high, what = 0, float("inf"), "recurrent delays"
            else:
                continue
            outside = (value < low) | (value > high) | ~torch.isfinite(value)
            if outside.any():
                index = [int(i) for i in torch.nonzero(outside)[0]]
                raise CheckpointError(f"{self.source}: {self.origin[ours]}{index} = {float(value[tuple(index)]):g}; "
                                      f"{what} lie in [{low}, {high}]")


def _config(preset: str, hidden: int | None, layers: int | None, **changes: Any) -> NetworkConfig:
    network = get_preset(preset).network
    sizes = network.hidden_sizes
    count = len(sizes) if layers is None else layers
    size = sizes[0] if hidden is None else hidden
    if count != len(sizes) and (network.recurrent_layers is not None or network.delay_stages is not None):
        raise CheckpointError(f"preset {preset!r} fixes the layer count to {len(sizes)}")
    return dataclasses.replace(network, hidden_sizes=(size,) * count, **changes)


def import_snn_delays(state: dict[str, Any], preset: str, *, hidden: int | None = None, layers: int | None = None,
                      source: str = "<state_dict>") -> Checkpoint:
    """Convert an official SNN-delays ``state_dict`` to a delaydeploy checkpoint."""
    conversion = _Conversion(state, source)
    config = _config(preset, hidden, layers, semantics="official")
    has_norm = any(key.endswith("running_mean") for key in state)
    if has_norm != config.batchnorm:
        raise CheckpointError(
            f"{source}: BatchNorm is {'present' if has_norm else 'absent'} but preset {preset!r} expects it "
            f"{'present' if config.batchnorm else 'absent'}"
        )
    stride = 4 if has_norm else 3
    stages = [(f"blocks.{l}.synapses", l * stride) for l in range(len(config.hidden_sizes))]
    stages.append(("readout", len(config.hidden_sizes) * stride))
    for ours, index in stages:
        for name in ("weight", "P", "SIG"):
            conversion.take(f"{ours}.dcls.{name}", f"model.{index}.{name}")
        if config.bias:
            conversion.take(f"{ours}.dcls.bias", f"model.{index}.bias")
    if has_norm:
        for l in range(len(config.hidden_sizes)):
            for name in _BN_KEYS:
                conversion.take(f"blocks.{l}.norm.{name}", f"model.{l * stride + 1}.{name}")
    return conversion.finish(config, preset)


def import_delrec(state: dict[str, Any], preset: str, *, hidden: int | None = None, layers: int | None = None,
                  source: str = "<state_dict>") -> Checkpoint:
    """Convert an official DelRec ``state_dict`` to a delaydeploy checkpoint (sigma = 0)."""
    conversion = _Conversion(state, source)
    config = _config(preset, hidden, layers)
    stride = 5 if config.batchnorm else 4

    def synapses(ours: str, index: int, stage: int) -> None:
        if config.stage_has_delays[stage]:
            for name in ("weight", "P"):
                conversion.take(f"{ours}.dcls.{name}", f"layers.{index}.{name}")
            conversion.converted[f"{ours}.dcls.SIG"] = torch.zeros_like(conversion.converted[f"{ours}.dcls.P"])
            prefix = f"{ours}.dcls"
        else:
            conversion.take(f"{ours}.weight", f"layers.{index}.weight")
            prefix = ours
        if config.bias:
            conversion.take(f"{prefix}.bias", f"layers.{index}.bias")

    for l in range(len(config.hidden_sizes)):
        base = l * stride
        ours = f"blocks.{l}"
        synapses(f"{ours}.synapses", base, l)
        if config.batchnorm:
            for name in _BN_KEYS:
                conversion.take(f"{ours}.norm.{name}", f"layers.{base + 1}.{name}")
        neuron_index = base + (2 if config.batchnorm else 1)
        if config.layer_is_recurrent[l]:
            for name in ("recurrent_weights", "recurrent_delays"):
                conversion.take(f"{ours}.neuron.{name}", f"layers.{neuron_index}.{name}")
            conversion.converted[f"{ours}.neuron.sigma"] = torch.zeros(())
            conversion.remaining.pop(f"layers.{neuron_index}.p_spread", None)  # spread width: moot at sigma = 0
    synapses("readout", len(config.hidden_sizes) * stride, len(config.hidden_sizes))
    return conversion.finish(config, preset)


IMPORTERS = {"snn-delays": import_snn_delays, "delrec": import_delrec}
IMPORT_PRESETS = {"snn-delays": ("shd", "ssc", "gsc"), "delrec": ("shd", "ssc")}


def import_official(source: str, state: dict[str, Any], preset: str, *, hidden: int | None = None,
                    layers: int | None = None, origin: str = "<state_dict>") -> Checkpoint:
    """Import a state_dict of ``source`` (``snn-delays`` or ``delrec``) trained with ``preset`` (shd, ssc, gsc).

    DelRec's recipes are delaydeploy's ``delrec_shd``/``delrec_ssc`` presets.
    """
    if preset not in IMPORT_PRESETS[source]:
        raise CheckpointError(f"{source} has no {preset!r} recipe; choose one of {', '.join(IMPORT_PRESETS[source])}")
    name = f"delrec_{preset}" if source == "delrec" else preset
    return IMPORTERS[source](state, name, hidden=hidden, layers=layers, source=origin)
