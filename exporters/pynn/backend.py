"""The ``nest`` backend: the PyNN target's ``run.py`` on NEST, results on the reference's axis.

``run.py`` runs as a script in a process of its own, as a partner runs it, but always this
package's installed copy: a bundle is data, so its own ``run.py`` is never executed (the bundle
loader refuses one that is not byte for byte this copy). The script reads a PyNN bundle's
``pynn_model.json`` and ``pynn_connections.npz`` (without pickle), or, for any other artifact,
a fresh translation (:func:`delaydeploy.exporters.pynn.model.to_pynn`) written to a scratch folder. A
process of its own also keeps NEST's kernel and OpenMP threads out of ours (a process that
later forks, as Lava does, must not inherit them).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from delaydeploy.errors import DelayDeployError
from delaydeploy.exporters.pynn import run as packaged_script
from delaydeploy.exporters.pynn.files import SCRIPT_FILE, network_files
from delaydeploy.exporters.pynn.model import to_pynn
from delaydeploy.ir import Network
from delaydeploy.reference import Simulation

NEST_MISSING = ("the nest backend needs NEST and PyNN (pip install 'delaydeploy[nest]', "
                "or pip install nest-simulator==3.10.0 pynn==0.13.0)")


def simulate_nest(network: Network, x: np.ndarray, *, bundle: Path | None = None,
                  threads: int | None = None) -> Simulation:
    """Run ``network`` on NEST through PyNN for input ``x`` ``[T, B, C]`` (``bundle``: that PyNN
    bundle's network files), on ``threads`` NEST threads (default: one per core)."""
    if importlib.util.find_spec("nest") is None or importlib.util.find_spec("pyNN") is None:
        raise DelayDeployError(NEST_MISSING)
    with tempfile.TemporaryDirectory(prefix="delaydeploy-nest-") as scratch:
        work = Path(scratch)
        folder = Path(bundle) if bundle is not None else work
        if bundle is None:
            for name, content in network_files(*to_pynn(network)).items():
                if name != SCRIPT_FILE:
                    (work / name).write_bytes(content)
        np.save(work / "input.npy", np.asarray(x))
        script = Path(packaged_script.__file__)
        command = [sys.executable, str(script), "--simulator", "nest", "--network", str(folder),
                   "--input", str(work / "input.npy"), "--output", str(work / "output.npz"),
                   "--threads", str(threads or os.cpu_count() or 1)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise DelayDeployError(f"{script} failed on NEST for {folder} (exit code {done.returncode}): {last}")
        with np.load(work / "output.npz", allow_pickle=False) as result:
            spikes = [torch.from_numpy(result[f"spikes_{index}"]) for index in range(len(network.layers))]
            readout = torch.from_numpy(result["readout"])
    return Simulation(spikes, readout, network.decision)
