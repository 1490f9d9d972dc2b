"""``python -m delaydeploy.exporters.pynn.spinnaker_map FOLDER INPUTS.npy``: map a PyNN bundle's network with
sPyNNaker on a virtual board and print what it placed as one JSON line: all cores, and per
population its cores and ring-buffer shifts; delay-extension cores by the source they delay.

Started by :func:`delaydeploy.exporters.pynn.spinnaker.map_virtual` in a temporary home whose
``.spynnaker.cfg`` asks for a virtual board; this package's ``run.py`` (the script a bundle
carries) builds the network from the folder's files.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from delaydeploy.exporters.pynn import run as script
from delaydeploy.exporters.pynn.spinnaker import RECEPTORS


def main(folder: str, inputs_file: str) -> None:
    model, connections = script.load_network(Path(folder))
    x = np.load(inputs_file)
    sim = script.import_simulator("spiNNaker")
    frames = script.setup(sim, "spiNNaker", model, x)
    layers, readout = script.build(sim, "spiNNaker", model, connections, x, frames)
    sim.run(model["time_step_ms"])  # mapping and data generation; a virtual board runs nothing

    from spynnaker.pyNN.data import SpynnakerDataView

    cores: Counter = Counter()
    delay_cores: Counter = Counter()
    for placement in SpynnakerDataView.iterate_placemements():
        vertex = placement.vertex
        if vertex.label is None or vertex.label.startswith("SYSTEM"):
            continue
        if "DelayExtension" in type(vertex).__name__:  # labelled by the population whose spikes it delays
            delay_cores[vertex.label.removeprefix("Delay extension for ")] += 1
        else:
            cores[vertex.label.split("(")[0]] += 1
    populations = {}
    for population in [*layers, readout]:
        shifts = [int(s) for s in population._vertex.get_ring_buffer_shifts()]  # noqa: SLF001 (no public API)
        populations[population.label] = {"cores": cores[population.label],
                                         "ring_buffer_shifts": dict(zip(RECEPTORS, shifts))}
    sim.end()
    print(json.dumps({"cores": sum(cores.values()) + sum(delay_cores.values()), "populations": populations,
                      "delay_extension_cores": dict(delay_cores)}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
