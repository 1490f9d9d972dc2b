"""Running an artifact on a backend and checking it spike for spike against the reference.

Backends (all return a :class:`delaydeploy.reference.Simulation` on the reference's axis):

* ``reference`` — the float reference simulator of the IR (the oracle);
* ``torch`` — the trained PyTorch model with rounded delays (checkpoints only), float64;
* ``nir`` — the NIR file itself, executed step by step (:mod:`delaydeploy.exporters.nir_executor`);
* ``lava-cpu`` — Lava's CPU backend, float, or bit-accurate for a Loihi 2 bundle;
* ``nest`` — the PyNN target on NEST (this package's ``run.py``, on a PyNN bundle's network files);
* ``brian2`` — the same script on Brian 2;
* ``fixed-reference`` — the integer reference simulator of the Loihi 2 form.

A float artifact is checked against ``reference``; a Loihi 2 bundle run as integers
(``lava-cpu``, ``fixed-reference``) against ``fixed-reference``, on a float backend against
``reference``. Agreement is :func:`delaydeploy.comparison.compare`'s: every hidden spike equal
and the readout within ``1e-9`` (float64) or exactly equal (integers).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from delaydeploy.artifacts import Artifact
from delaydeploy.checkpoint import Checkpoint
from delaydeploy.comparison import READOUT_TOLERANCE, Divergence, compare
from delaydeploy.errors import DelayDeployError
from delaydeploy.reference import Simulation, simulate

BACKENDS = ("reference", "torch", "nir", "lava-cpu", "nest", "brian2", "fixed-reference")
#: Samples per backend run when checking a split.
BATCH_SIZE = 64
#: Samples per run on ``lava-cpu``: one compiled run each, its samples side by side in lanes.
LAVA_BATCH_SIZE = 1024


def oracle_backend(artifact: Artifact, backend: str | None = None) -> str:
    """The simulator that ``backend``'s run of ``artifact`` (default: its own backend) is checked
    against: the integer reference where the backend runs a Loihi 2 bundle's integers, else the float one."""
    backend = backend or native_backend(artifact)
    integer = artifact.fixed is not None and backend in ("lava-cpu", "fixed-reference")
    return "fixed-reference" if integer else "reference"


def native_backend(artifact: Artifact) -> str:
    """The backend that runs the artifact itself."""
    if artifact.target == "pynn":
        return "nest"
    return {"checkpoint": "torch", "nir": "nir", "ir": "reference", "bundle": "lava-cpu"}[artifact.kind]


def check_input(artifact: Artifact, x: np.ndarray) -> np.ndarray:
    """``x`` if it is an input ``[T, B, C]`` that ``artifact`` can run (real, finite, of its kind)."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != artifact.network.input_size:
        raise DelayDeployError(
            f"input has shape {tuple(x.shape)}; {artifact.path} expects [T, B, {artifact.network.input_size}]"
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise DelayDeployError(f"input has shape {tuple(x.shape)}: it needs at least one step and one sample")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer) or x.dtype == bool):
        raise DelayDeployError(f"input has dtype {x.dtype}; expected real numbers (float, integer or bool)")
    if not np.all(np.isfinite(x)):
        raise DelayDeployError("input contains non-finite values")
    if artifact.network.input_kind == "binary" and not np.all((x == 0) | (x == 1)):
        raise DelayDeployError(f"{artifact.path} takes binary spikes but the input holds values other than 0 and 1")
    if artifact.network.input_kind == "counts" and (np.any(x < 0) or np.any(x != np.round(x))):
        raise DelayDeployError(f"{artifact.path} takes spike counts but the input holds negative or fractional values")
    return x


def run_backend(artifact: Artifact, backend: str, x: np.ndarray, *, semantics: str | None = None,
                workers: int | None = None, progress: bool = False) -> Simulation:
    """Run ``artifact`` on ``backend`` for input ``x`` ``[T, B, C]`` (``workers``: Lava runs in
    parallel, default :func:`default_workers`)."""
    x = check_input(artifact, x)
    if backend == "reference":
        return simulate(artifact.network, x, semantics=semantics or artifact.semantics)
    if backend == "torch":
        if artifact.checkpoint is None:
            raise DelayDeployError(f"{artifact.path}: the torch backend needs a checkpoint")
        config = dataclasses.replace(artifact.checkpoint.config, semantics=semantics or artifact.semantics)
        model = Checkpoint(config, artifact.checkpoint.state_dict, source=str(artifact.path)).build_model().double()
        with torch.no_grad():
            out = model(torch.as_tensor(x, dtype=torch.float64), rounded=True)
        return Simulation([s.detach() for s in out.spikes], out.readout.detach(), config.decision)
    if backend == "nir":
        from delaydeploy.exporters.nir import network_to_nir
        from delaydeploy.exporters.nir_executor import simulate_nir

        graph = artifact.path if artifact.kind == "nir" else network_to_nir(artifact.network)
        return simulate_nir(graph, x)
    if backend == "lava-cpu":
        from delaydeploy.exporters.lava.env import require_lava

        require_lava(f"the lava-cpu backend ({artifact.path})")
        from delaydeploy.exporters.lava.graph import simulate_lava

        target = artifact.fixed if artifact.fixed is not None else artifact.network
        return simulate_lava(target, x, workers=workers or default_workers(), progress=progress)
    if backend in ("nest", "brian2"):
        from delaydeploy.exporters.pynn.backend import simulate_script

        return simulate_script(artifact.network, x, backend,
                               bundle=artifact.path if artifact.target == "pynn" else None)
    if backend == "fixed-reference":
        if artifact.fixed is None:
            raise DelayDeployError(f"{artifact.path}: the fixed-reference backend needs a Loihi 2 bundle")
        from delaydeploy.fixed_reference import simulate_fixed

        return simulate_fixed(artifact.fixed, x)
    raise DelayDeployError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def default_workers() -> int:
    """Lava runs in parallel by default: one per two cores, as one run keeps about two busy
    (its populations and synapses are processes of their own; on 2 cores two runs at once
    took 1.8x as long as one)."""
    return max(1, (os.cpu_count() or 1) // 2)


def random_inputs(input_size: int, input_kind: str, samples: int, steps: int, seed: int = 0) -> np.ndarray:
    """Test inputs ``[steps, samples, input_size]`` of the network's input kind."""
    rng = np.random.default_rng(seed)
    shape = (steps, samples, input_size)
    if input_kind == "binary":
        return (rng.random(shape) < 0.1).astype(np.float64)
    if input_kind == "counts":
        return rng.poisson(0.15, shape).astype(np.float64)
    return rng.normal(0.0, 1.0, shape)


@dataclass
class SplitVerification:
    """Outcome of :func:`compare_on_dataset`: every sample of a dataset on a backend and its oracle."""

    samples: int = 0
    spikes_compared: int = 0  # hidden-neuron time steps compared (each a possible spike)
    spike_mismatches: dict[str, int] = field(default_factory=dict)
    readout_max_error: float = 0.0
    readout_mismatches: int = 0  # readout entries beyond the tolerance
    first_divergence: Divergence | None = None  # its sample counted in the dataset
    correct: int = 0  # the backend's class decisions that match the label
    oracle_correct: int = 0

    @property
    def ok(self) -> bool:
        return self.first_divergence is None


def compare_on_dataset(dataset, run_oracle, run_backend_on, names: list[str], *, batch_size: int,
                       tolerance: float, progress: bool, desc: str) -> SplitVerification:
    """Run every sample of ``dataset`` through ``run_oracle(x)`` and ``run_backend_on(x)`` (``x``
    ``[T, B, C]`` float64), batch by batch, and compare spike for spike and the readout to
    ``tolerance``; the decisions of both are scored against the labels."""
    from tqdm import tqdm

    from delaydeploy.reference import own_steps
    from delaydeploy.training import make_loader

    result = SplitVerification(spike_mismatches=dict.fromkeys(names, 0))
    with tqdm(total=len(dataset), desc=desc, unit="sample", disable=not progress) as bar:
        for x, labels, lengths in make_loader(dataset, batch_size, shuffle=False):
            x = x.double().numpy()
            expected = run_oracle(x)
            actual = run_backend_on(x)
            batch = compare(expected, actual, names, tolerance)
            for name, count in batch.spike_mismatches.items():
                result.spike_mismatches[name] += count
            result.spikes_compared += sum(int(s.numel()) for s in expected.spikes)
            result.readout_max_error = max(result.readout_max_error, batch.readout_max_error)
            result.readout_mismatches += batch.readout_mismatches
            if batch.first_divergence is not None and result.first_divergence is None:
                result.first_divergence = dataclasses.replace(batch.first_divergence,
                                                              sample=batch.first_divergence.sample + result.samples)
            steps = own_steps(lengths, x.shape[0], expected.readout)
            result.correct += int((actual.prediction(steps) == labels).sum())
            result.oracle_correct += int((expected.prediction(steps) == labels).sum())
            result.samples += len(labels)
            bar.update(len(labels))
    return result


def split_of(artifact: Artifact, data_dir: str | None, split: str, *, preset: str | None = None,
             test_speakers: str | None = None, max_samples: int | None = None):
    """Split ``split`` of the dataset ``artifact`` is checked on: a checkpoint's own (as trained, see
    :func:`delaydeploy.finetune.dataset_splits`), the one a bundle recorded, else the dataset of
    ``preset`` with its options. A ``preset`` that contradicts the artifact's record is refused."""
    from delaydeploy.config import get_preset
    from delaydeploy.datasets import with_test_speakers
    from delaydeploy.finetune import dataset_splits
    from delaydeploy.training import preset_splits

    if split not in ("train", "test"):
        raise DelayDeployError(f"split {split!r}; choose train or test")
    record = artifact.dataset
    if record is not None and preset is not None and preset != record["preset"]:
        raise DelayDeployError(f"{artifact.path} was made for preset {record['preset']!r}; --preset {preset} "
                               "contradicts it (leave --preset out)")
    if artifact.checkpoint is not None and record is not None:
        train, test, _ = dataset_splits(artifact.checkpoint, data_dir, max_samples, test_speakers)
    else:
        if record is not None:
            chosen = get_preset(preset or record["preset"])
            options = record["options"]
        elif preset is not None:
            chosen = get_preset(preset)
            options = chosen.dataset_options
        else:
            raise DelayDeployError(f"{artifact.path}: a {artifact.kind} does not say which dataset it was trained "
                                   "on; name its preset with --preset")
        chosen = dataclasses.replace(chosen, dataset_options=with_test_speakers(options, test_speakers))
        train, test = preset_splits(chosen, data_dir, max_samples)
    return train if split == "train" else test


def verify_split(artifact: Artifact, backend: str, dataset, *, batch_size: int | None = None,
                 workers: int | None = None, tolerance: float = READOUT_TOLERANCE,
                 progress: bool = True) -> SplitVerification:
    """Run every sample of ``dataset`` on ``backend`` and on the artifact's oracle for it, batch by
    batch (default :data:`BATCH_SIZE`, :data:`LAVA_BATCH_SIZE` on ``lava-cpu``), and compare
    spike for spike (first divergence with its sample's index in the split)."""
    oracle = oracle_backend(artifact, backend)
    return compare_on_dataset(
        dataset, lambda x: run_backend(artifact, oracle, x),
        lambda x: run_backend(artifact, backend, x, workers=workers),
        [layer.name for layer in artifact.network.layers],
        batch_size=batch_size or (LAVA_BATCH_SIZE if backend == "lava-cpu" else BATCH_SIZE), tolerance=tolerance,
        progress=progress, desc=f"verify {backend} vs {oracle}")


def read_results(path: str | os.PathLike, network, expected: Simulation, input_steps: int) -> Simulation:
    """Results produced elsewhere (``spikes_<l>``, ``readout``: what ``run.py`` writes) as a
    :class:`Simulation`, refused with the key, shape or time axis named where they cannot be
    compared with ``expected`` (the reference's run of the same ``input_steps``-step input)."""
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise DelayDeployError(f"{path}: no such results file")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise DelayDeployError(f"{path}: not a readable .npz archive ({error})") from None
    if isinstance(data, np.ndarray):
        raise DelayDeployError(f"{path}: one array; results are an .npz archive of spikes_<l> and readout")
    with data:
        arrays = {key: data[key] for key in data.files}
    keys = [f"spikes_{index}" for index in range(len(network.layers))] + ["readout"]
    missing = [key for key in keys if key not in arrays]
    if missing:
        raise DelayDeployError(f"{path}: lacks {', '.join(missing)} (results hold {', '.join(keys)})")
    wanted = [*expected.spikes, expected.readout]
    for key, want in zip(keys, wanted):
        got = arrays[key]
        if not (np.issubdtype(got.dtype, np.number) or got.dtype == bool):
            raise DelayDeployError(f"{path}: {key} has dtype {got.dtype}; expected numbers")
        if got.ndim == 3 and got.shape[0] != want.shape[0]:
            raise DelayDeployError(f"{path}: {key} has {got.shape[0]} time steps; the reference's time axis has "
                                   f"{want.shape[0]} (the input's {input_steps} steps + the network's tail of "
                                   f"{want.shape[0] - input_steps})")
        if tuple(got.shape) != tuple(want.shape):
            raise DelayDeployError(f"{path}: {key} has shape {tuple(got.shape)}; expected {tuple(want.shape)} "
                                   "[time steps, samples, neurons]")
    tensors = [torch.from_numpy(np.asarray(arrays[key], dtype=np.float64)) for key in keys]
    return Simulation(tensors[:-1], tensors[-1], network.decision)
