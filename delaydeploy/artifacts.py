"""One entry point for every deployable thing a command can be given (an ARTIFACT).

An artifact is a delaydeploy checkpoint (``.pt``), an IR file, a NIR file (ours or a third
party's) or a deployment bundle (a directory). Whatever it is, it yields the float
deployment IR, so every command treats them alike.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h5py

from delaydeploy.checkpoint import Checkpoint, load_checkpoint
from delaydeploy.errors import DelayDeployError
from delaydeploy.fixed_point import FixedNetwork
from delaydeploy.ir import Network
from delaydeploy.ir_file import IR_SUFFIX, load_network
from delaydeploy.lowering import lower

if TYPE_CHECKING:
    from delaydeploy.bundle import Bundle


@dataclass
class Artifact:
    """A loaded artifact: its float IR and, where it has them, the model or the integer form."""

    path: Path
    kind: str  # "checkpoint" | "ir" | "nir" | "bundle"
    network: Network
    semantics: str = "streaming"
    checkpoint: Checkpoint | None = None
    fixed: FixedNetwork | None = None
    bundle: Bundle | None = None

    @property
    def dataset(self) -> dict | None:
        """The dataset the network was made for, ``{"preset", "dataset", "options"}``, where the
        artifact knows it: a checkpoint with a preset, or a bundle that recorded one."""
        if self.checkpoint is not None and self.checkpoint.preset is not None:
            from delaydeploy.config import get_preset

            preset = get_preset(self.checkpoint.preset)
            return {"preset": preset.name, "dataset": preset.dataset, "options": self.checkpoint.dataset_options()}
        return None if self.bundle is None else self.bundle.dataset

    @property
    def target(self) -> str | None:
        """The bundle's target (``lava`` or ``loihi2``), None for other artifacts."""
        return None if self.bundle is None else self.bundle.target


def _holds_network_json(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return "network.json" in archive.namelist()


def load_artifact(path: str | os.PathLike) -> Artifact:
    """Load a checkpoint, IR file, NIR file or bundle directory, telling them apart by content; a
    bundle whose derived files are not what its ``network.ddn`` derives is refused
    (:class:`delaydeploy.errors.DerivedFileError`, naming the file and the first difference)."""
    path = Path(path)
    if path.is_dir():
        from delaydeploy.audit import check_derived_files
        from delaydeploy.bundle import load_bundle

        bundle = load_bundle(path)
        check_derived_files(bundle)
        return Artifact(path, "bundle", bundle.network, fixed=bundle.fixed, bundle=bundle)
    if not path.exists():
        raise DelayDeployError(f"{path}: no such file or directory")
    if h5py.is_hdf5(path):
        from delaydeploy.exporters.nir import read_nir

        return Artifact(path, "nir", read_nir(path))
    if path.suffix == IR_SUFFIX or _holds_network_json(path):
        return Artifact(path, "ir", load_network(path))
    checkpoint = load_checkpoint(path)
    model = checkpoint.build_model()
    return Artifact(path, "checkpoint", lower(model), semantics=checkpoint.config.semantics, checkpoint=checkpoint)
