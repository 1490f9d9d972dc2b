"""Saving and loading the deployment IR and its Loihi 2 fixed-point form.

Kept apart from the dataclasses, as in NIR. A file is a zip archive readable by
``numpy.load``: ``network.json`` holds the structure and scalars, one ``.npy`` entry per
array. Entries are written in a fixed order with fixed timestamps, so the same network
always gives the same bytes (and the same sha256). The header's ``decision`` (the network's
class rule) was added after version 1 was first written: a file without it reads as
``"summed_softmax"``, the rule every earlier network used.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from delaydeploy.errors import IRValidationError
from delaydeploy.fileio import atomic_path
from delaydeploy.fixed_point import FixedLayer, FixedNetwork
from delaydeploy.ir import DEFAULT_DECISION, LIFNeuron, Network, Readout, SpikingLayer

FORMAT = "delaydeploy-ir"
FIXED_FORMAT = "delaydeploy-fixed-ir"
FORMAT_VERSION = 1
IR_SUFFIX = ".ddn"  # the suffix of IR files: an artifact with it is read as one, whatever its state
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _archive_bytes(header: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """Deterministic zip: sorted entries, fixed timestamps and permissions."""
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


class _Archive:
    """Read side of :func:`_archive_bytes`, checking the format marker."""

    def __init__(self, data: bytes, source: str, expected_format: str) -> None:
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
            self.header = json.loads(self.zip.read("network.json"))
        except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError) as error:
            raise IRValidationError(f"{source}: not a delaydeploy network file ({error})") from None
        if not isinstance(self.header, dict):
            raise IRValidationError(f"{source}: network.json holds a {type(self.header).__name__}, not an object")
        found = (self.header.get("format"), self.header.get("format_version"))
        if found != (expected_format, FORMAT_VERSION):
            raise IRValidationError(
                f"{source}: format {found[0]!r} version {found[1]!r}, "
                f"expected {expected_format!r} version {FORMAT_VERSION}"
            )

    def array(self, name: str) -> np.ndarray:
        try:
            return np.load(io.BytesIO(self.zip.read(f"{name}.npy")), allow_pickle=False)
        except KeyError:  # read inside _header_of, which names the file
            raise IRValidationError(f"array {name!r} is missing") from None
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
            raise IRValidationError(f"array {name!r} is unreadable ({error})") from None


@contextlib.contextmanager
def _header_of(source: str) -> Iterator[None]:
    """Turn what a header with missing or mistyped entries raises, and what the IR's own validation
    refuses in it, into one error naming the file."""
    try:
        yield
    except IRValidationError as error:
        raise IRValidationError(f"{source}: {error}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        raise IRValidationError(f"{source}: malformed header ({type(error).__name__}: {error})") from None


def network_to_bytes(network: Network) -> bytes:
    """Serialise ``network`` deterministically."""
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for index, layer in enumerate(network.layers):
        prefix = f"layer{index}"
        arrays[f"{prefix}.weights"] = layer.weights
        arrays[f"{prefix}.delays"] = layer.delays
        arrays[f"{prefix}.bias"] = layer.bias
        if layer.recurrent_weights is not None and layer.recurrent_delays is not None:
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
        "decision": network.decision,
        "layers": layers,
        "readout": {"name": readout.name, "tau": readout.tau, "official_tail": readout.official_tail},
    }
    return _archive_bytes(header, arrays)


def network_from_bytes(data: bytes, source: str = "<bytes>") -> Network:
    """Parse an IR file's bytes; ``source`` names the file in error messages."""
    archive = _Archive(data, source, FORMAT)
    with _header_of(source):
        return _network(archive.header, archive.array)


def _network(header: dict, array: Callable[[str], np.ndarray]) -> Network:
    """The network an IR header describes, its arrays read with ``array(name)``."""
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
        decision=header.get("decision", DEFAULT_DECISION),
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


_FIXED_SCALARS = ("weight_exp", "du", "dv", "vth", "reset", "recurrent_weight_exp", "scale")


def fixed_network_to_bytes(network: FixedNetwork) -> bytes:
    """Serialise a Loihi 2 fixed-point network deterministically."""
    arrays: dict[str, np.ndarray] = {}
    stages = []
    for index, layer in enumerate([*network.layers, network.readout]):
        prefix = f"stage{index}"
        for name in ("weights", "delays", "bias_mant", "bias_exp"):
            arrays[f"{prefix}.{name}"] = getattr(layer, name)
        if layer.recurrent_weights is not None and layer.recurrent_delays is not None:
            arrays[f"{prefix}.recurrent_weights"] = layer.recurrent_weights
            arrays[f"{prefix}.recurrent_delays"] = layer.recurrent_delays
        entry = {name: getattr(layer, name) for name in _FIXED_SCALARS}
        entry.update(name=layer.name, arrays=prefix, recurrent=layer.is_recurrent)
        stages.append(entry)
    header = {
        "format": FIXED_FORMAT,
        "format_version": FORMAT_VERSION,
        "input_size": network.input_size,
        "input_kind": network.input_kind,
        "input_scale": network.input_scale,
        "readout_scale": network.readout_scale,
        "dt": network.dt,
        "tail_steps": network.tail_steps,
        "metadata": network.metadata,
        "decision": network.decision,
        "stages": stages,
    }
    return _archive_bytes(header, arrays)


def fixed_network_from_bytes(data: bytes, source: str = "<bytes>") -> FixedNetwork:
    """Parse a fixed-point network file's bytes; ``source`` names the file in errors."""
    archive = _Archive(data, source, FIXED_FORMAT)
    with _header_of(source):
        return _fixed_network(archive.header, archive.array)


def _fixed_network(header: dict, array: Callable[[str], np.ndarray]) -> FixedNetwork:
    """The fixed-point network a header describes, its arrays read with ``array(name)``."""
    stages = []
    for entry in header["stages"]:
        prefix = entry["arrays"]
        recurrent: dict[str, Any] = {}
        if entry["recurrent"]:
            recurrent = {"recurrent_weights": array(f"{prefix}.recurrent_weights"),
                         "recurrent_delays": array(f"{prefix}.recurrent_delays")}
        stages.append(FixedLayer(
            name=entry["name"],
            weights=array(f"{prefix}.weights"), delays=array(f"{prefix}.delays"),
            bias_mant=array(f"{prefix}.bias_mant"), bias_exp=array(f"{prefix}.bias_exp"),
            **{name: entry[name] for name in _FIXED_SCALARS},
            **recurrent,
        ))
    return FixedNetwork(
        input_size=header["input_size"], layers=stages[:-1], readout=stages[-1], input_kind=header["input_kind"],
        input_scale=header["input_scale"], readout_scale=header["readout_scale"], dt=header["dt"],
        tail_steps=header["tail_steps"], metadata=header["metadata"],
        decision=header.get("decision", DEFAULT_DECISION),
    )

