"""Checkpoints: configuration + state + metrics + package versions, safe to load.

A checkpoint is a plain dict of tensors, strings and numbers written with ``torch.save``
and read back with ``torch.load(weights_only=True)``, so a file from an untrusted source
cannot run code. Every problem (corrupt or truncated file, unknown format, a state that does
not fit the configuration) raises :class:`delaydeploy.errors.CheckpointError` naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from delaydeploy.config import NetworkConfig, TrainConfig
from delaydeploy.errors import CheckpointError, DelayDeployError
from delaydeploy.fileio import atomic_path
from delaydeploy.model import DelaySNN

FORMAT = "delaydeploy-checkpoint"
FORMAT_VERSION = 1
_PACKAGES = ("delaydeploy", "torch", "dcls", "spikingjelly", "lava-nc", "nir", "nirtorch", "numpy")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that define a model's numerics and targets."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@dataclass
class Checkpoint:
    """A loaded checkpoint; :meth:`build_model` gives the network."""

    config: NetworkConfig
    state_dict: dict[str, torch.Tensor]
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    preset: str | None = None
    train_config: TrainConfig | None = None
    source: str = "<memory>"

    def build_model(self) -> DelaySNN:
        """The network with this checkpoint's state (CPU, eval mode, in the state's float dtype)."""
        model = DelaySNN(self.config)
        if any(value.dtype == torch.float64 for value in self.state_dict.values()):
            model = model.double()
        state = model.converted_state(self.state_dict, self.source)
        expected = model.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise CheckpointError(
                f"{self.source}: state does not match the configuration "
                f"(missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''})"
            )
        for key, value in state.items():
            if tuple(value.shape) != tuple(expected[key].shape):
                raise CheckpointError(
                    f"{self.source}: {key} has shape {tuple(value.shape)}, "
                    f"the configuration needs {tuple(expected[key].shape)}"
                )
        model.load_state_dict(state)
        return model.eval()

    def dataset_options(self, test_speakers: str | None = None) -> dict:
        """The dataset options the checkpoint was trained with (older checkpoints: its preset's); with
        ``test_speakers``, those speakers' recordings as the test split instead (FSDD)."""
        from delaydeploy.config import get_preset
        from delaydeploy.datasets import with_test_speakers

        if self.preset is None:
            raise DelayDeployError(f"{self.source}: the checkpoint names no preset, so its dataset is unknown")
        options = self.metrics.get("dataset_options", get_preset(self.preset).dataset_options)
        if not (isinstance(options, dict) and all(isinstance(key, str) for key in options)):
            raise CheckpointError(f"{self.source}: metrics dataset_options = {options!r} is not a dict of options")
        return with_test_speakers(options, test_speakers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "state_dict": self.state_dict,
            "metrics": self.metrics,
            "versions": self.versions,
            "preset": self.preset,
            "train_config": None if self.train_config is None else self.train_config.to_dict(),
        }


def checkpoint_of(model: DelaySNN, *, preset: str | None = None, train_config: TrainConfig | None = None,
                  metrics: dict[str, Any] | None = None) -> Checkpoint:
    """Snapshot ``model`` (state copied to the CPU) with provenance."""
    state = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
    return Checkpoint(model.config, state, metrics or {}, package_versions(), preset, train_config)


def save_checkpoint(checkpoint: Checkpoint, path: str | os.PathLike) -> Path:
    """Write ``checkpoint`` atomically to ``path``."""
    with atomic_path(path) as tmp:
        torch.save(checkpoint.to_dict(), tmp)
    return Path(path)


def load_raw_state(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` with errors turned into one clear line."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 -- an untrusted file can make the unpickler raise anything
        if "Weights only load failed" in str(error):
            reason = ("it holds objects other than tensors and plain containers, which are not loaded "
                      "(they could run code)")
        else:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated?): {reason}") from None


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` and check it builds a model."""
    data = load_raw_state(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a delaydeploy checkpoint (for an official state_dict use `delaydeploy import`)"
        )
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {data.get('format_version')} is not {FORMAT_VERSION}")
    for key in ("config", "state_dict"):
        if key not in data:
            raise CheckpointError(f"{path}: checkpoint lacks {key!r}")
        if not isinstance(data[key], dict):
            raise CheckpointError(f"{path}: checkpoint {key} is {type(data[key]).__name__}, not a dict")
    state = data["state_dict"]
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: state_dict entry {key!r} is {type(value).__name__}, not a tensor")
    train_config = data.get("train_config")
    if train_config is not None and not isinstance(train_config, dict):
        raise CheckpointError(f"{path}: checkpoint train_config is {type(train_config).__name__}, not a dict")
    try:
        config = NetworkConfig.from_dict(data["config"])
        train_config = None if train_config is None else TrainConfig.from_dict(train_config)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    checkpoint = Checkpoint(config, state, data.get("metrics", {}), data.get("versions", {}), data.get("preset"),
                            train_config, source=str(path))
    checkpoint.build_model()
    return checkpoint
