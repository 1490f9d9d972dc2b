"""The PyNN bundle's own files and manifest section (serialisation, kept apart from the translation)."""

from __future__ import annotations

import importlib.util
import io
import json
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

from delaydeploy.exporters.pynn import run as packaged_script
from delaydeploy.exporters.pynn.model import to_pynn
from delaydeploy.exporters.pynn.spinnaker import (
    check_spinnaker,
    delay_slots,
    map_virtual,
    summed_weight_peaks,
    weight_grid,
)
from delaydeploy.ir import Network

MODEL_FILE = "pynn_model.json"
CONNECTIONS_FILE = "pynn_connections.npz"
SCRIPT_FILE = "run.py"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def packaged_script_bytes() -> bytes:
    """The ``run.py`` this installation writes into every PyNN bundle (and runs on NEST)."""
    return Path(packaged_script.__file__).read_bytes()


def network_files(model: dict, connections: dict[str, np.ndarray]) -> dict[str, bytes]:
    """What ``run.py`` needs, by file name: the script itself, the populations and the synapses."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **connections)
    return {SCRIPT_FILE: packaged_script_bytes(),
            MODEL_FILE: (json.dumps(model, indent=2) + "\n").encode(),
            CONNECTIONS_FILE: buffer.getvalue()}


def pynn_network(network: Network, inputs: np.ndarray) -> tuple[dict, dict[str, np.ndarray]]:
    """``(model, connections)`` as a PyNN bundle holds them: :func:`to_pynn`, with SpiNNaker's
    summed-weight peaks of ``inputs`` in each stage of the model."""
    check_spinnaker(network)
    model, connections = to_pynn(network)
    for stage, stage_peaks in zip(model["stages"], summed_weight_peaks(network, inputs)):
        stage["spinnaker_max_summed_weight"] = list(stage_peaks)
    return model, connections


def pynn_section(network: Network, model: dict, connections: dict[str, np.ndarray], inputs: np.ndarray) -> dict:
    """The manifest's ``pynn`` section, less what depends on the installed packages (their
    versions, the virtual board's mapping: :func:`pynn_files` adds them)."""
    peaks = [tuple(stage["spinnaker_max_summed_weight"]) for stage in model["stages"]]
    spinnaker = {
        "weights": {
            "rounding": "rint(|w| * 2**(15 - s)) units of 2**(s - 15), half to even; negative weights on the "
                        "inhibitory receptor as |w|",
            "calibrated_on_samples": int(np.asarray(inputs).shape[1]),
            "stages": weight_grid([stage["name"] for stage in model["stages"]], peaks),
        },
        "inhibitory_synapses": int(sum((table < 0).sum() for key, table in connections.items()
                                       if key.endswith("/weight"))),
        "delay_slots_per_core": {stage.name: delay_slots(stage.size) for stage in [*network.layers, network.readout]},
        "max_delay_ticks": model["max_delay_steps"] + 1,
    }
    return {"pynn": {
        "run": "python run.py --simulator nest|spiNNaker --input X.npy --output OUT.npz",
        "time_step_ms": model["time_step_ms"],
        "delays": "a synapse of delay D steps is made with D + 1 steps (NEST's minimum delay is one step)",
        "nest_decay_error_ulp": {stage["name"]: stage["nest_decay_error_ulp"] for stage in model["stages"]},
        "spinnaker": spinnaker,
    }}


def pynn_files(network: Network, inputs: np.ndarray) -> tuple[dict[str, bytes], dict]:
    """``(files, manifest section)`` of a PyNN bundle for ``network``; ``inputs`` calibrate
    SpiNNaker's weight grid, and map it on a virtual board where sPyNNaker is installed."""
    model, connections = pynn_network(network, inputs)
    files = network_files(model, connections)
    section = pynn_section(network, model, connections, inputs)
    section["pynn"]["packages"] = {"pynn": _version("PyNN"), "nest-simulator": _version("nest-simulator")}
    spinnaker = section["pynn"]["spinnaker"]
    spinnaker["package"] = f"sPyNNaker {_version('sPyNNaker')}"
    if importlib.util.find_spec("spynnaker") is not None:
        with tempfile.TemporaryDirectory(prefix="delaydeploy-pynn-") as folder:
            for name, content in files.items():
                Path(folder, name).write_bytes(content)
            np.save(Path(folder, "inputs.npy"), np.asarray(inputs)[:, :1])
            spinnaker["virtual_board_mapping"] = map_virtual(Path(folder), Path(folder, "inputs.npy"))
    else:
        spinnaker["virtual_board_mapping"] = ("not run: sPyNNaker is not installed "
                                              "(pip install 'delaydeploy[spinnaker]')")
    return files, section
