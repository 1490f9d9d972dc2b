"""Deployment bundles: what a hardware partner receives.

A bundle is a directory::

    manifest.json        format, target, package versions, time step, latency offsets,
                         sha256 of every file, constraint report, resource estimate
    network.ddn          the float deployment IR (delaydeploy.ir_file format)
    loihi2.ddn           the Loihi 2 integer form (target ``loihi2`` only)
    test_vectors.npz     inputs with the oracle's spikes, readout and predictions
    run.py, pynn_model.json, pynn_connections.npz
                         the standalone PyNN script and its network (target ``pynn`` only)
    bundle.sig           a signature over all of the above (``export --sign`` only;
                         :mod:`delaydeploy.signing`)

``network.ddn`` and the test inputs are what a bundle states; every other file is derived
from them. Loading checks every file against its sha256 (an artifact's loader then checks
that each derived file is exactly what this delaydeploy derives: :mod:`delaydeploy.audit`);
nothing a bundle carries is executed, imported or unpickled. The directory is written
atomically: a failed export leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from delaydeploy.checkpoint import package_versions
from delaydeploy.errors import BundleError, DelayDeployError
from delaydeploy.fileio import atomic_directory
from delaydeploy.fixed_point import DELAY_MAX, FixedNetwork
from delaydeploy.ir import Network, SpikingLayer, delay_structure
from delaydeploy.ir_file import (
    IR_SUFFIX,
    fixed_network_from_bytes,
    fixed_network_to_bytes,
    network_from_bytes,
    network_to_bytes,
)
from delaydeploy.reference import Simulation
from delaydeploy.signing import signer_fingerprint

FORMAT = "delaydeploy-bundle"
FORMAT_VERSION = 1
TARGETS = ("lava", "loihi2", "pynn")
PYNN_FILES = ("run.py", "pynn_model.json", "pynn_connections.npz")
MANIFEST = "manifest.json"
NETWORK_FILE = f"network{IR_SUFFIX}"
FIXED_FILE = f"loihi2{IR_SUFFIX}"
VECTORS_FILE = "test_vectors.npz"
CORE_MEMORY_BYTES = 128 * 1024  # SRAM per Loihi 2 neuro-core (shared by synapses, state, routing)
NEURONS_PER_CORE = 8192


@dataclass
class Bundle:
    """A loaded, hash-checked bundle."""

    path: Path
    target: str
    manifest: dict[str, Any]
    network: Network
    fixed: FixedNetwork | None
    vectors: dict[str, np.ndarray]
    signed_by: str | None = None  # the signing key's fingerprint, as the signature states it (unchecked)

    @property
    def dataset(self) -> dict[str, Any] | None:
        """The dataset the network was made for (preset and options), where its source knew it."""
        return self.manifest.get("dataset")

    @property
    def inputs(self) -> np.ndarray:
        return self.vectors["inputs"]

    def expected(self) -> Simulation:
        """The oracle's simulation of the test vectors, as stored, deciding by the network's rule
        (a Loihi 2 bundle's readout is the integer membrane, read in float units)."""
        import torch

        from delaydeploy.fixed_reference import FixedSimulation

        names = [layer.name for layer in self.network.layers]
        spikes = [torch.from_numpy(self.vectors[f"spikes_{i}"]) for i in range(len(names))]
        readout = torch.from_numpy(self.vectors["readout"])
        if self.fixed is not None:
            return FixedSimulation(spikes, readout, decision=self.fixed.decision,
                                   readout_scale=self.fixed.readout_scale)
        return Simulation(spikes, readout, self.network.decision)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def estimate_resources(network: Network) -> dict[str, int | float]:
    """Neurons, synapses, delay-buffer slots and a memory-based estimate of Loihi 2 cores.

    Only synapses that exist count (nonzero weights: a pruned network stores a fraction).
    A synapse is an 8-bit weight plus, where its stage has delays per synapse, a 6-bit delay;
    a neuron keeps 24-bit u and v. Delays live in buffers of 16-bit slots: per synapse (and
    dendritic) delays need ``out x (largest delay + 1)`` accumulator slots; a stage with one
    delay per presynaptic neuron (axonal, :func:`delaydeploy.ir.delay_structure`; all-zero
    delays included) needs ``out`` accumulators and ``in x largest delay`` slots of spike history,
    and one 6-bit delay per neuron instead of one per synapse. That is how the chip-shaped Lava
    graph stores them (:mod:`delaydeploy.exporters.lava.graph`). Each layer is placed on its own cores,
    ``ceil(bytes / 128 KiB)`` of them (and at most 8192 neurons per core). This is an estimate
    from public figures, not a compiler's placement.
    """
    neurons = synapses = slots = cores = 0
    for stage in [*network.layers, network.readout]:
        stage_synapses = int(np.count_nonzero(stage.weights))
        structure = delay_structure(stage.weights, stage.delays)
        if structure is None:
            stage_slots = stage.size * (int(stage.delays[stage.weights != 0].max(initial=0)) + 1)
            stage_bits = stage_synapses * 14
        else:
            granularity, steps = structure
            longest = int(steps.max(initial=0))
            stage_slots = (stage.size * (longest + 1) if granularity == "dendritic"
                           else stage.size + steps.size * longest)
            stage_bits = stage_synapses * 8 + steps.size * 6
        # recurrent synapses keep their delays per synapse
        if isinstance(stage, SpikingLayer) and stage.recurrent_weights is not None \
                and stage.recurrent_delays is not None:
            recurrent_synapses = int(np.count_nonzero(stage.recurrent_weights))
            stage_synapses += recurrent_synapses
            stage_bits += recurrent_synapses * 14
            stage_slots += stage.size * (int(stage.recurrent_delays.max(initial=0)) + 2)
        stage_bytes = stage_bits / 8 + stage.size * 6 + stage_slots * 2
        neurons += stage.size
        synapses += stage_synapses
        slots += stage_slots
        cores += max(math.ceil(stage_bytes / CORE_MEMORY_BYTES), math.ceil(stage.size / NEURONS_PER_CORE))
    return {"neurons": neurons, "synapses": synapses, "delay_buffer_slots": slots, "estimated_loihi2_cores": cores}


def constraint_report(network: Network) -> dict[str, Any]:
    """Delay ranges of the network against the Loihi 2 limit (recorded for every target)."""
    return {
        "max_delay": network.max_delay,
        "max_recurrent_delay": network.max_recurrent_delay,
        "loihi2_delay_limit": DELAY_MAX,
        "fits_loihi2_delays": network.max_delay <= DELAY_MAX and network.max_recurrent_delay <= DELAY_MAX,
    }


def latency_offsets(network: Network) -> dict[str, int]:
    """Steps by which Lava/Loihi lags the reference per stage (one per synapse crossed)."""
    offsets = {layer.name: index + 1 for index, layer in enumerate(network.layers)}
    offsets[network.readout.name] = len(network.layers) + 1
    return offsets


def expected_files(target: str) -> set[str]:
    """The files a bundle of ``target`` holds, besides its manifest and signature."""
    return {NETWORK_FILE, VECTORS_FILE} | ({FIXED_FILE} if target == "loihi2" else set()) \
        | (set(PYNN_FILES) if target == "pynn" else set())


def test_vectors(inputs: np.ndarray, expected: Simulation) -> dict[str, np.ndarray]:
    """The arrays of ``test_vectors.npz``: ``inputs`` and the oracle's ``expected`` run of them."""
    vectors = {"inputs": np.asarray(inputs), "readout": expected.readout.cpu().numpy(),
               "pred": expected.prediction().cpu().numpy()}
    vectors.update({f"spikes_{i}": s.cpu().numpy() for i, s in enumerate(expected.spikes)})
    return vectors


def derived_manifest(network: Network, target: str, inputs: np.ndarray, fixed: FixedNetwork | None) -> dict[str, Any]:
    """The manifest's entries that follow from the network, its integer form and the test inputs."""
    inputs = np.asarray(inputs)
    constraints = constraint_report(network)
    if fixed is not None:
        constraints["overflow_checked_samples"] = int(inputs.shape[1])
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "target": target,
        "time_step_seconds": network.dt,
        "tail_steps": network.tail_steps,
        "input_kind": network.input_kind,
        "input_size": network.input_size,
        "input_scale": None if fixed is None else fixed.input_scale,
        "readout_scale": None if fixed is None else fixed.readout_scale,
        "threshold_rule": sorted({layer.neuron.threshold_rule for layer in network.layers}),
        "decision": network.decision,
        "latency_offsets": latency_offsets(network),
        "constraints": constraints,
        "resources": estimate_resources(network),
        "test_vectors": {"samples": int(inputs.shape[1]), "steps": int(inputs.shape[0])},
    }


def write_bundle(path: str | os.PathLike, network: Network, target: str, inputs: np.ndarray, expected: Simulation, *,
                 fixed: FixedNetwork | None = None, files: dict[str, bytes] | None = None,
                 sections: dict[str, Any] | None = None, dataset: dict[str, Any] | None = None,
                 sign_key: str | os.PathLike | None = None) -> Path:
    """Write a bundle directory for ``target`` with test vectors ``inputs`` and the oracle's ``expected``;
    ``files`` are the target's own files (name -> content), ``sections`` its parts of the manifest,
    ``dataset`` the record of the dataset it was made for; signed with the private key ``sign_key``."""
    if target not in TARGETS:
        raise DelayDeployError(f"unknown bundle target {target!r}; choose one of {TARGETS}")
    if (target == "loihi2") != (fixed is not None):
        raise DelayDeployError("a loihi2 bundle needs the fixed-point network (and only it does)")
    with atomic_directory(path, MANIFEST) as tmp:
        (tmp / NETWORK_FILE).write_bytes(network_to_bytes(network))
        if fixed is not None:
            (tmp / FIXED_FILE).write_bytes(fixed_network_to_bytes(fixed))
        np.savez_compressed(tmp / VECTORS_FILE, **test_vectors(inputs, expected))
        for name, content in (files or {}).items():
            (tmp / name).write_bytes(content)
        names = sorted(p.name for p in tmp.iterdir())
        manifest = {
            **derived_manifest(network, target, inputs, fixed),
            "package_versions": package_versions(),
            "files": {name: _sha256(tmp / name) for name in names},
            **({"dataset": dataset} if dataset is not None else {}),
            **(sections or {}),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if sign_key is not None:
            from delaydeploy.signing import sign_directory

            sign_directory(tmp, sign_key)
    return Path(path)


def read_arrays(file: Path) -> dict[str, np.ndarray]:
    """The arrays of a bundle's ``.npz`` file, read without pickle; unreadable is a BundleError."""
    try:
        with np.load(file, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise BundleError(f"{file}: unreadable ({error})") from None


def _check_dataset_record(manifest_path: Path, record: Any) -> None:
    """A manifest's ``dataset`` (optional): a preset name and its dataset options."""
    from delaydeploy.config import PRESET_NAMES

    if record is None:
        return
    if not (isinstance(record, dict) and record.get("preset") in PRESET_NAMES
            and isinstance(record.get("options"), dict)):
        raise BundleError(f"{manifest_path}: 'dataset' must name a preset ({', '.join(PRESET_NAMES)}) and its "
                          f"options, not {record!r}")


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Load a bundle, refusing it when the manifest, a file or a hash is missing or wrong
    (:class:`BundleError`). Commands load bundles through :func:`delaydeploy.artifacts.load_artifact`,
    which also checks the derived files (:mod:`delaydeploy.audit`)."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{path}: not a bundle ({MANIFEST} is missing)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"{manifest_path}: unreadable manifest ({error})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{manifest_path}: holds a {type(manifest).__name__}, not an object")
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{path}: bundle format {manifest.get('format')!r} version "
                          f"{manifest.get('format_version')!r} is not {FORMAT!r} version {FORMAT_VERSION}")
    target = manifest.get("target")
    if target not in TARGETS:
        raise BundleError(f"{path}: unknown target {target!r}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise BundleError(f"{manifest_path}: 'files' must map file names to sha256 digests")
    for name in sorted(expected_files(target) - set(files)):
        raise BundleError(f"{path}: manifest does not list {name}")
    for name, digest in sorted(files.items()):
        file = path / name
        if not file.is_file():
            raise BundleError(f"{path}: {name} is missing (listed in {MANIFEST})")
        if _sha256(file) != digest:
            raise BundleError(f"{path}: {name} does not match its sha256 in {MANIFEST} (modified or corrupt)")
    network = network_from_bytes((path / NETWORK_FILE).read_bytes(), str(path / NETWORK_FILE))
    fixed = fixed_network_from_bytes((path / FIXED_FILE).read_bytes(), str(path / FIXED_FILE)) \
        if target == "loihi2" else None
    vectors = read_arrays(path / VECTORS_FILE)
    rules = {NETWORK_FILE: network.decision, MANIFEST: manifest.get("decision", network.decision)}
    if fixed is not None:
        rules[FIXED_FILE] = fixed.decision
    if len(set(map(str, rules.values()))) > 1:
        raise BundleError(f"{path}: the files disagree on the class decision rule ({rules})")
    needed = ["inputs", "readout", "pred", *(f"spikes_{i}" for i in range(len(network.layers)))]
    for name in needed:
        if name not in vectors:
            raise BundleError(f"{path / VECTORS_FILE}: lacks {name!r}")
    _check_dataset_record(manifest_path, manifest.get("dataset"))
    return Bundle(path, target, manifest, network, fixed, vectors, signer_fingerprint(path))
