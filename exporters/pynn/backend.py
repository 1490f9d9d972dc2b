"""The ``nest`` and ``brian2`` backends: the PyNN target's ``run.py`` on NEST or on Brian 2,
results on the reference's axis.

``run.py`` runs as a script in a process of its own, as a partner runs it, but always this
package's installed copy: a bundle is data, so its own ``run.py`` is never executed (the bundle
loader refuses one that is not byte for byte this copy). The script reads a PyNN bundle's
``pynn_model.json`` and ``pynn_connections.npz`` (without pickle), or, for any other artifact,
a fresh translation (:func:`delaydeploy.exporters.pynn.model.to_pynn`) written to a scratch folder. A
process of its own also keeps the simulator's kernel, OpenMP threads and global state (NEST's
kernel, Brian 2's preferences) out of ours (a process that later forks, as Lava does, must not
inherit them).
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

#: What each simulator needs installed: its importable modules and how to install them.
REQUIREMENTS = {
    "nest": (("nest", "pyNN"), "NEST and PyNN (pip install 'delaydeploy[nest]', "
                               "or pip install nest-simulator==3.10.0 pynn==0.13.0)"),
    "brian2": (("brian2",), "Brian 2 (pip install 'delaydeploy[brian2]', or pip install brian2)"),
}


def simulate_script(network: Network, x: np.ndarray, simulator: str, *, bundle: Path | None = None,
                    threads: int | None = None) -> Simulation:
    """Run ``network`` on ``simulator`` (``nest`` or ``brian2``) for input ``x`` ``[T, B, C]``
    (``bundle``: that PyNN bundle's network files), NEST on ``threads`` threads (default: one per core)."""
    modules, install = REQUIREMENTS[simulator]
    if any(importlib.util.find_spec(module) is None for module in modules):
        raise DelayDeployError(f"the {simulator} backend needs {install}")
    with tempfile.TemporaryDirectory(prefix=f"delaydeploy-{simulator}-") as scratch:
        work = Path(scratch)
        folder = Path(bundle) if bundle is not None else work
        if bundle is None:
            for name, content in network_files(*to_pynn(network)).items():
                if name != SCRIPT_FILE:
                    (work / name).write_bytes(content)
        np.save(work / "input.npy", np.asarray(x))
        script = Path(packaged_script.__file__)
        command = [sys.executable, str(script), "--simulator", simulator, "--network", str(folder),
                   "--input", str(work / "input.npy"), "--output", str(work / "output.npz"),
                   "--threads", str(threads or os.cpu_count() or 1)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise DelayDeployError(f"{script} failed on {simulator} for {folder} (exit code {done.returncode}): {last}")
        with np.load(work / "output.npz", allow_pickle=False) as result:
            spikes = [torch.from_numpy(result[f"spikes_{index}"]) for index in range(len(network.layers))]
            readout = torch.from_numpy(result["readout"])
    return Simulation(spikes, readout, network.decision)
