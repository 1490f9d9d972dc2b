"""``delaydeploy export``: one IR, every target.

``nir`` writes a NIR file; ``lava`` and ``loihi2`` write a deployment bundle (with test
vectors from the oracle: the float reference, or the integer reference for Loihi 2);
``netx`` writes a lava-dl netx HDF5 file of the Loihi 2 integer form; ``pynn`` a bundle with a
standalone PyNN script for NEST and SpiNNaker. A bundle records the dataset the artifact was
made for (where it knows it) and can be signed (:mod:`delaydeploy.signing`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from delaydeploy.artifacts import Artifact
from delaydeploy.bundle import MANIFEST, write_bundle
from delaydeploy.bundle import TARGETS as BUNDLE_TARGETS
from delaydeploy.errors import DelayDeployError
from delaydeploy.fileio import check_output_directory, check_output_file
from delaydeploy.reference import simulate

TARGETS = ("nir", "lava", "loihi2", "netx", "pynn")


def export(artifact: Artifact, target: str, output: str | os.PathLike, inputs: np.ndarray, *,
           sign_key: str | os.PathLike | None = None) -> Path:
    """Translate ``artifact`` for ``target``; ``inputs`` become test vectors and calibration data;
    a bundle is signed with the private key ``sign_key`` where one is given.

    ``output`` and the key are checked before any work (a bundle's directory is replaced only if
    empty or a bundle).
    """
    if target not in TARGETS:
        raise DelayDeployError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    if target in BUNDLE_TARGETS:
        check_output_directory(output, MANIFEST)
    else:
        check_output_file(output)
    if sign_key is not None:
        if target not in BUNDLE_TARGETS:
            raise DelayDeployError(f"--sign signs a bundle ({', '.join(BUNDLE_TARGETS)}); a {target} file is not one")
        from delaydeploy.signing import key_fingerprint

        key_fingerprint(sign_key, private=True)
    recorded: dict[str, Any] = {"dataset": artifact.dataset, "sign_key": sign_key}
    network = artifact.network
    if target == "nir":
        from delaydeploy.exporters.nir import write_nir

        write_nir(network, output)
        return Path(output)
    if target == "lava":
        return write_bundle(output, network, "lava", inputs, simulate(network, inputs), **recorded)
    if target == "pynn":
        from delaydeploy.exporters.pynn.files import pynn_files

        files, section = pynn_files(network, inputs)
        return write_bundle(output, network, "pynn", inputs, simulate(network, inputs), files=files, sections=section,
                            **recorded)
    from delaydeploy.fixed_reference import simulate_fixed
    from delaydeploy.quantize import quantize

    if target == "netx":
        from delaydeploy.exporters.netx import NETX_BIAS_EXP, write_netx

        # netx stores integer weights and biases in a_in units: it picks no exponents of ours
        write_netx(quantize(network, calibration=inputs, weight_exp=0, bias_exp=NETX_BIAS_EXP), output)
        return Path(output)
    fixed = quantize(network, calibration=inputs)
    return write_bundle(output, network, "loihi2", inputs, simulate_fixed(fixed, inputs), fixed=fixed, **recorded)
