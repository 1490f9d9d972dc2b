"""The ``nest`` backend: the PyNN target's ``run.py`` on NEST, results on the reference's axis.

A PyNN bundle is run by its own ``run.py`` (the file a partner runs, hash-checked by the
bundle loader); any other artifact is translated by :func:`exporters.pynn.model.to_pynn`
and run by this package's copy of the same script.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from delaydeploy.errors import DelayDeployError
from delaydeploy.ir import Network
from delaydeploy.reference import Simulation
from exporters.pynn import run as packaged_script
from exporters.pynn.model import to_pynn

NEST_MISSING = ("the nest backend needs NEST and PyNN (pip install 'delaydeploy[nest]', "
                "or pip install nest-simulator==3.10.0 pynn==0.13.0)")


def load_script(folder: Path) -> ModuleType:
    """The ``run.py`` of a PyNN bundle folder, imported as a module (it runs nothing on import)."""
    spec = importlib.util.spec_from_file_location(f"pynn_bundle_run_{abs(hash(str(folder)))}", folder / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def simulate_nest(network: Network, x: np.ndarray, *, bundle: Path | None = None,
                  threads: int | None = None) -> Simulation:
    """Run ``network`` on NEST through PyNN for input ``x`` ``[T, B, C]`` (``bundle``: run that
    PyNN bundle's own ``run.py`` and files instead of translating ``network`` again), on
    ``threads`` NEST threads (default: one per core)."""
    if importlib.util.find_spec("nest") is None or importlib.util.find_spec("pyNN") is None:
        raise DelayDeployError(NEST_MISSING)
    if bundle is not None:
        script = load_script(bundle)
        model, connections = script.load_network(bundle)
    else:
        script = packaged_script
        model, connections = to_pynn(network)
    result = script.simulate(model, connections, np.asarray(x), "nest", threads or os.cpu_count() or 1)
    spikes = [torch.from_numpy(result[f"spikes_{index}"]) for index in range(len(network.layers))]
    return Simulation(spikes, torch.from_numpy(result["readout"]), network.decision)
