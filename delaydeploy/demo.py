"""The main job (``make demo``): train on the embedded synthetic task, export, verify.

Steps: train the ``synthetic`` preset (learned DCLS delays, streaming semantics), report the
test accuracy of the continuous and the rounded model, export to NIR and run the file,
export Lava and Loihi 2 bundles and check them spike for spike on Lava's CPU backend (where
Lava is installed; elsewhere it says so), export a PyNN bundle and check it on NEST and on Brian 2 -- every
artifact on every sample of the test split -- and print the deployment accuracy ladder, whose
Lava rung runs the whole test split too.
"""

from __future__ import annotations

from pathlib import Path

from delaydeploy.artifacts import load_artifact
from delaydeploy.comparison import READOUT_TOLERANCE
from delaydeploy.datasets import pad_collate
from delaydeploy.datasets.synthetic import SyntheticTimingDataset
from delaydeploy.export import export
from delaydeploy.exporters.lava.env import lava_missing
from delaydeploy.fileio import check_output_directory
from delaydeploy.report import build_report, format_ladder
from delaydeploy.training import train_preset
from delaydeploy.verify import native_backend, oracle_backend, verify_split

EXPORT_SAMPLES = 8  # test samples a bundle stores as its test vectors
MARKER = "bundle_lava/manifest.json"  # written by every complete demo run


def _verify(path: Path, test_set, backend: str | None = None) -> bool:
    """Check ``path`` on ``backend`` (default: its own) against its oracle on every sample of
    ``test_set``; a Lava bundle where Lava is missing is written but not run, and the demo says so."""
    artifact = load_artifact(path)
    backend = backend or native_backend(artifact)
    missing = lava_missing() if backend == "lava-cpu" else None
    if missing is not None:
        print(f"  {path}: written; not run on Lava's CPU backend, which needs Lava: {missing}")
        return True
    tolerance = 0.0 if oracle_backend(artifact) == "fixed-reference" else READOUT_TOLERANCE
    result = verify_split(artifact, backend, test_set, tolerance=tolerance, progress=False)
    mismatches = sum(result.spike_mismatches.values())
    status = "verified" if result.ok else f"FAILED ({result.first_divergence})"
    print(f"  {path}: {backend} vs {oracle_backend(artifact)} on all {result.samples} test samples: "
          f"{mismatches} spike mismatches, readout max |diff| {result.readout_max_error:.2g} -> {status}")
    return result.ok


def run_demo(output: Path, *, epochs: int | None = None, progress: bool = True) -> int:
    """Run the whole pipeline into ``output``; returns the process exit code.

    ``output`` must be missing, empty or an earlier demo's folder (it holds ``MARKER``): the demo
    writes its files into it, and must not overwrite a folder of yours.
    """
    check_output_directory(output, MARKER)
    output.mkdir(parents=True, exist_ok=True)
    model_path = output / "model.pt"
    print("== 1. training on the synthetic relative-timing task")
    train_preset("synthetic", output=str(model_path), epochs=epochs, progress=progress)

    artifact = load_artifact(model_path)
    test_set = SyntheticTimingDataset("test")
    inputs = pad_collate([test_set[i] for i in range(EXPORT_SAMPLES)])[0].double().numpy()
    ok = True
    print("== 2. NIR export, executed from the file")
    export(artifact, "nir", output / "model.nir", inputs)
    ok &= _verify(output / "model.nir", test_set)
    print("== 3. Lava bundle (float), run on Lava's CPU backend")
    export(artifact, "lava", output / "bundle_lava", inputs)
    ok &= _verify(output / "bundle_lava", test_set)
    print("== 4. Loihi 2 bundle (fixed point), run bit-accurately on Lava's CPU backend")
    export(artifact, "loihi2", output / "bundle_loihi2", inputs)
    ok &= _verify(output / "bundle_loihi2", test_set)
    print("== 5. PyNN bundle (NEST, SpiNNaker, Brian 2), its run.py run on NEST, then on Brian 2")
    export(artifact, "pynn", output / "bundle_pynn", inputs)
    ok &= _verify(output / "bundle_pynn", test_set)
    ok &= _verify(output / "bundle_pynn", test_set, "brian2")
    print(f"bundles: {output / 'bundle_lava'} (float), {output / 'bundle_loihi2'} (Loihi 2 fixed point), "
          f"{output / 'bundle_pynn'} (python run.py --simulator nest|spiNNaker|brian2)")
    print("== 6. deployment accuracy ladder on the synthetic test split")
    report = build_report(model_path, output / "report", lava_samples="all", progress=progress)
    lava = report["lava"]
    ok &= lava is None or (lava["total_spike_mismatches"] == 0 and lava["readout_mismatches"] == 0)
    print(format_ladder(report))
    print(f"report: {output / 'report'} (report.json, report.md, plots)")
    return 0 if ok else 1
