"""Every file of a bundle is what this delaydeploy derives from its ``network.ddn``.

A bundle states two things: the float network (``network.ddn``) and the test inputs (the
``inputs`` of ``test_vectors.npz``). Everything else in it is derived from those, so it is
derived again here and compared, element by element:

* ``loihi2.ddn``: the quantisation of the float network, calibrated on the test inputs;
* ``test_vectors.npz``: the oracle's run of the inputs (the float reference, or the integer
  reference for a Loihi 2 bundle), spikes and decisions exactly, the readout to
  :data:`delaydeploy.comparison.READOUT_TOLERANCE` (exactly for integers);
* ``run.py``: byte for byte the script this installation writes (and runs on NEST);
  ``pynn_model.json`` and ``pynn_connections.npz``: the PyNN translation, every synapse,
  weight and delay;
* ``manifest.json``: every entry that follows from the network and the inputs;
* no file besides these (and the signature): a verdict covers only what it checked.

The first difference raises :class:`DerivedFileError` naming the file, the element (stage,
synapse, sample...) and both values. Nothing from the bundle is executed, imported or
unpickled: the IR files, the ``.npz`` archives (``allow_pickle=False``) and JSON are data.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from delaydeploy.bundle import (
    FIXED_FILE,
    MANIFEST,
    NETWORK_FILE,
    VECTORS_FILE,
    Bundle,
    derived_manifest,
    expected_files,
    read_arrays,
    test_vectors,
)
from delaydeploy.comparison import READOUT_TOLERANCE, compare
from delaydeploy.errors import BundleError, DerivedFileError
from delaydeploy.signing import SIGNATURE_FILE

OTHER_VERSION = ("not the run.py this delaydeploy writes (changed, or written by another delaydeploy version: "
                 "export again); it is never run")


def first_difference(actual: Any, expected: Any, where: str = "") -> tuple[str, Any, Any] | None:
    """``(where, actual, expected)`` of the first element in which two values differ, or None.

    Compares dataclasses field by field, mappings key by key, sequences item by item and arrays
    by dtype, shape and value (exactly: a derived file is reproduced, not approximated).
    """
    if dataclasses.is_dataclass(expected) and not isinstance(expected, type):
        if type(actual) is not type(expected):
            return where or "type", type(actual).__name__, type(expected).__name__
        for item in dataclasses.fields(expected):
            found = first_difference(getattr(actual, item.name), getattr(expected, item.name),
                                     f"{where}.{item.name}" if where else item.name)
            if found:
                return found
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return where, actual, expected
        for key in sorted(set(expected) | set(actual), key=str):
            if key not in actual:
                return f"{where}[{key!r}]", "missing", expected[key]
            if key not in expected:
                return f"{where}[{key!r}]", actual[key], "no such entry"
            found = first_difference(actual[key], expected[key], f"{where}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(expected, (list, tuple)):
        if not isinstance(actual, (list, tuple)) or len(actual) != len(expected):
            return f"{where} (length)", len(actual) if isinstance(actual, (list, tuple)) else actual, len(expected)
        for index, (got, want) in enumerate(zip(actual, expected)):
            label = want.name if isinstance(getattr(want, "name", None), str) else index  # a stage by its name
            found = first_difference(got, want, f"{where}[{label}]")
            if found:
                return found
        return None
    if isinstance(expected, np.ndarray):
        if not isinstance(actual, np.ndarray):
            return where, type(actual).__name__, "an array"
        if actual.dtype != expected.dtype or actual.shape != expected.shape:
            return f"{where} (dtype and shape)", f"{actual.dtype} {actual.shape}", f"{expected.dtype} {expected.shape}"
        unequal = ~((actual == expected) | (np.isnan(actual) & np.isnan(expected))
                    if np.issubdtype(expected.dtype, np.floating) else actual == expected)
        if unequal.any():
            position = tuple(int(i) for i in np.argwhere(unequal)[0])
            return f"{where}[{', '.join(map(str, position))}]", actual[position].item(), expected[position].item()
        return None
    if type(actual) is not type(expected) and not (_number(actual) and _number(expected)):
        return where, actual, expected
    return None if actual == expected else (where, actual, expected)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


class _Differs(Exception):
    """A derived file is not what it derives to: ``(file, what differs)``."""


def _raise(file: str, found: tuple[str, Any, Any], context: str = "") -> None:
    where, actual, expected = found
    raise _Differs(file, f"{where}{context}: {actual!r} against expected {expected!r}")


def _check_file_set(bundle: Bundle) -> None:
    """The folder and the manifest hold the target's files and no others."""
    listed = set(bundle.manifest["files"])
    for name in sorted(listed - expected_files(bundle.target)):
        raise _Differs(MANIFEST, f"lists {name}, which is no file of a {bundle.target} bundle")
    for entry in sorted(bundle.path.iterdir()):
        if entry.name not in listed | {MANIFEST, SIGNATURE_FILE}:
            raise _Differs(entry.name, f"not part of the bundle ({MANIFEST} does not list it), so no "
                                   "verdict covers it; remove it, or export again")


def _check_vectors(bundle: Bundle) -> None:
    """``test_vectors.npz`` holds the oracle's run of its own inputs."""
    from delaydeploy.fixed_reference import simulate_fixed
    from delaydeploy.reference import simulate

    inputs = bundle.vectors["inputs"]
    oracle = simulate_fixed(bundle.fixed, inputs) if bundle.fixed is not None else simulate(bundle.network, inputs)
    expected = test_vectors(inputs, oracle)
    for key in sorted(set(bundle.vectors) - set(expected)):
        raise _Differs(VECTORS_FILE, f"holds {key!r}, which is no test vector")
    names = [layer.name for layer in bundle.network.layers]
    tolerance = 0.0 if bundle.fixed is not None else READOUT_TOLERANCE
    stored = bundle.expected()
    for key in [*(f"spikes_{index}" for index in range(len(names))), "readout"]:
        if bundle.vectors[key].shape != expected[key].shape:
            _raise(VECTORS_FILE, (f"{key} (shape)", bundle.vectors[key].shape, expected[key].shape))
    result = compare(oracle, stored, names, tolerance)
    divergence = result.first_divergence
    if divergence is not None:
        raise _Differs(VECTORS_FILE, f"{divergence.layer}, neuron {divergence.neuron}, time step "
                               f"{divergence.step}, sample {divergence.sample}: {divergence.actual!r} against "
                               f"expected {divergence.expected!r} (the oracle's run of the bundle's inputs)")
    found = first_difference(bundle.vectors["pred"], expected["pred"], "pred")
    if found:
        _raise(VECTORS_FILE, found, " (sample's class)")


def _check_fixed(bundle: Bundle) -> None:
    """``loihi2.ddn`` is the quantisation of ``network.ddn`` on the test inputs."""
    from delaydeploy.quantize import quantize

    found = first_difference(bundle.fixed, quantize(bundle.network, calibration=bundle.vectors["inputs"]))
    if found:
        _raise(FIXED_FILE, found, f" (the quantisation of {NETWORK_FILE})")


def _check_pynn(bundle: Bundle) -> dict[str, Any]:
    """``run.py``, ``pynn_model.json`` and ``pynn_connections.npz`` are this delaydeploy's; returns
    the manifest section they imply."""
    from delaydeploy.exporters.pynn.files import (
        CONNECTIONS_FILE,
        MODEL_FILE,
        SCRIPT_FILE,
        packaged_script_bytes,
        pynn_network,
        pynn_section,
    )

    if (bundle.path / SCRIPT_FILE).read_bytes() != packaged_script_bytes():
        raise _Differs(SCRIPT_FILE, OTHER_VERSION)
    inputs = bundle.vectors["inputs"]
    model, connections = pynn_network(bundle.network, inputs)
    try:
        stored_model = json.loads((bundle.path / MODEL_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"{bundle.path / MODEL_FILE}: unreadable ({error})") from None
    found = first_difference(stored_model, json.loads(json.dumps(model)))
    if found:
        _raise(MODEL_FILE, found)
    stored = read_arrays(bundle.path / CONNECTIONS_FILE)
    for key in sorted(set(stored) | set(connections)):
        if key not in connections:
            raise _Differs(CONNECTIONS_FILE, f"holds {key!r}, which the network has no table for")
        if key not in stored:
            raise _Differs(CONNECTIONS_FILE, f"lacks {key!r}")
        found = first_difference(stored[key], connections[key], key)
        if found:
            context = ""
            if stored[key].shape == connections[key].shape:  # one synapse differs: name it
                table, synapse = key.rsplit("/", 1)[0], int(np.flatnonzero(stored[key] != connections[key])[0])
                context = (f" (synapse {connections[f'{table}/pre'][synapse]} -> "
                           f"{connections[f'{table}/post'][synapse]})")
            _raise(CONNECTIONS_FILE, found, context)
    return pynn_section(bundle.network, model, connections, inputs)


def _check_manifest(bundle: Bundle, section: dict[str, Any]) -> None:
    """Every manifest entry that follows from the network and the inputs."""
    expected = {**derived_manifest(bundle.network, bundle.target, bundle.vectors["inputs"], bundle.fixed),
                **section}
    stored = {key: bundle.manifest.get(key) for key in expected}
    if "pynn" in section and isinstance(stored["pynn"], dict):  # less what the installed packages decide
        stored["pynn"] = {key: value for key, value in stored["pynn"].items() if key != "packages"}
        if isinstance(stored["pynn"].get("spinnaker"), dict):
            stored["pynn"]["spinnaker"] = {key: value for key, value in stored["pynn"]["spinnaker"].items()
                                           if key not in ("package", "virtual_board_mapping")}
    found = first_difference(stored, json.loads(json.dumps(expected)))
    if found:
        _raise(MANIFEST, found)


def check_derived_files(bundle: Bundle) -> None:
    """Raise :class:`DerivedFileError` at the first file of ``bundle`` that is not what
    delaydeploy derives from its ``network.ddn`` and test inputs (see the module docstring)."""
    try:
        _check_file_set(bundle)
        section = _check_pynn(bundle) if bundle.target == "pynn" else {}
        if bundle.fixed is not None:
            _check_fixed(bundle)
        _check_vectors(bundle)
        _check_manifest(bundle, section)
    except _Differs as difference:
        file, what = difference.args
        raise DerivedFileError(f"{bundle.path / file}: {what}") from None
