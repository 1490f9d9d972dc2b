"""Saving and loading the deployment IR (kept apart from the dataclasses, as in NIR).

The file is a zip archive readable by ``numpy.load``: ``network.json`` holds the structure
and scalars, one ``.npy`` entry per array. Entries are written in a fixed order with fixed
timestamps, so the same network always gives the same bytes (and the same sha256).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from delaydeploy.errors import IRValidationError
from delaydeploy.fileio import atomic_path
from delaydeploy.ir import LIFNeuron, Network, Readout, SpikingLayer

FORMAT = "delaydeploy-ir"
FORMAT_VERSION = 1
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def network_to_bytes(network: Network) -> bytes:
    """Serialise ``network`` deterministically."""
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for index, layer in enumerate(network.layers):
        prefix = f"layer{index}"
        arrays[f"{prefix}.weights"] = layer.weights
        arrays[f"{prefix}.delays"] = layer.delays
        arrays[f"{prefix}.bias"] = layer.bias
        if layer.is_recurrent:
            arrays[f"{prefix}.recurrent_weights"] = layer.recurrent_weights
            arrays[f"{prefix}.recurrent_delays"] = layer.recurrent_delays
        layers.append(
            {
                "name": layer.name,
                "arrays": prefix,
                "recurrent": layer.is_recurrent,
                "tau": layer.neuron.tau,
                "threshold": layer.neuron.threshold,
                "reset": layer.neuron.reset,
                "threshold_rule": layer.neuron.threshold_rule,
                "official_tail": layer.official_tail,
            }
        )
    readout = network.readout
    arrays["readout.weights"] = readout.weights
    arrays["readout.delays"] = readout.delays
    arrays["readout.bias"] = readout.bias
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "input_size": network.input_size,
        "input_kind": network.input_kind,
        "dt": network.dt,
        "tail_steps": network.tail_steps,
        "metadata": network.metadata,
        "layers": layers,
        "readout": {"name": readout.name, "tau": readout.tau, "official_tail": readout.official_tail},
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        entries = {"network.json": json.dumps(header, sort_keys=True, indent=1).encode()}
        entries.update({f"{name}.npy": _npy_bytes(array) for name, array in arrays.items()})
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, entries[name])
    return buffer.getvalue()


def network_from_bytes(data: bytes, source: str = "<bytes>") -> Network:
    """Parse an IR file's bytes; ``source`` names the file in error messages."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        header = json.loads(archive.read("network.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as error:
        raise IRValidationError(f"{source}: not a delaydeploy IR file ({error})") from None
    if header.get("format") != FORMAT or header.get("format_version") != FORMAT_VERSION:
        raise IRValidationError(
            f"{source}: format {header.get('format')!r} version {header.get('format_version')!r}, "
            f"expected {FORMAT!r} version {FORMAT_VERSION}"
        )

    def array(name: str) -> np.ndarray:
        try:
            return np.load(io.BytesIO(archive.read(f"{name}.npy")), allow_pickle=False)
        except KeyError:
            raise IRValidationError(f"{source}: array {name!r} is missing") from None

    layers = []
    for entry in header["layers"]:
        prefix = entry["arrays"]
        layers.append(
            SpikingLayer(
                name=entry["name"],
                weights=array(f"{prefix}.weights"),
                delays=array(f"{prefix}.delays"),
                bias=array(f"{prefix}.bias"),
                neuron=LIFNeuron(entry["tau"], entry["threshold"], entry["reset"], entry["threshold_rule"]),
                recurrent_weights=array(f"{prefix}.recurrent_weights") if entry["recurrent"] else None,
                recurrent_delays=array(f"{prefix}.recurrent_delays") if entry["recurrent"] else None,
                official_tail=entry["official_tail"],
            )
        )
    readout = Readout(
        name=header["readout"]["name"],
        weights=array("readout.weights"),
        delays=array("readout.delays"),
        bias=array("readout.bias"),
        tau=header["readout"]["tau"],
        official_tail=header["readout"]["official_tail"],
    )
    return Network(
        input_size=header["input_size"],
        layers=layers,
        readout=readout,
        input_kind=header["input_kind"],
        dt=header["dt"],
        tail_steps=header["tail_steps"],
        metadata=header["metadata"],
    )


def save_network(network: Network, path: str | os.PathLike) -> Path:
    """Write ``network`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(network_to_bytes(network))
    return Path(path)


def load_network(path: str | os.PathLike) -> Network:
    """Read an IR file written by :func:`save_network`."""
    path = Path(path)
    if not path.is_file():
        raise IRValidationError(f"{path}: no such IR file")
    return network_from_bytes(path.read_bytes(), source=str(path))
