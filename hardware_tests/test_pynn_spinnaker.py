"""SpiNNaker through sPyNNaker 7.4.1 on a virtual board (installed by the set-up; no board needed).

A virtual run records nothing, so these tests check what the export learns from sPyNNaker's
own mapping: cores per population (256 neurons each), delay-extension cores for delays past
a core's 32 slots, and ring-buffer shifts equal to the weight grid the manifest states (the
grid the SpiNNaker rung of the report simulates).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
from helpers import moderate_network

from delaydeploy.cli import main
from delaydeploy.ir_file import save_network


def test_virtual_board_mapping_matches_the_manifest(tmp_path, capsys) -> None:
    network = moderate_network(11, sizes=(20, 300, 40, 5), max_delay=6)
    network.layers[0].delays[:, :5] = 40  # past the 32 delay slots of a 256-neuron core: delay extensions
    network.layers[1].delays[:, :5] = 40  # within the 128 slots of a 40-neuron core
    model, bundle = tmp_path / "m.ddn", tmp_path / "bundle"
    save_network(network, model)
    home = os.environ.get("HOME")
    assert main(["export", str(model), "--target", "pynn", "-o", str(bundle), "--samples", "3"]) == 0
    assert os.environ.get("HOME") == home and not (tmp_path / ".spynnaker.cfg").exists()
    spinnaker = json.loads((bundle / "manifest.json").read_text())["pynn"]["spinnaker"]
    mapping = spinnaker["virtual_board_mapping"]
    populations = mapping["populations"]
    for stage in [*network.layers, network.readout]:
        assert populations[stage.name]["cores"] == math.ceil(stage.size / 256)
        grid = spinnaker["weights"]["stages"][stage.name]
        assert populations[stage.name]["ring_buffer_shifts"] == {
            receptor: grid[receptor]["ring_buffer_shift"] for receptor in ("excitatory", "inhibitory")}
    assert set(mapping["delay_extension_cores"]) == {"input"}  # only the input's synapses onto hidden0 need them
    assert mapping["cores"] == (2 + sum(p["cores"] for p in populations.values())
                                + mapping["delay_extension_cores"]["input"])
    assert spinnaker["delay_slots_per_core"] == {"hidden0": 32, "hidden1": 128, "readout": 1024}
    assert spinnaker["max_delay_ticks"] == 41
    negative = sum(int(np.count_nonzero(stage.weights < 0) + np.count_nonzero(stage.bias < 0))
                   for stage in [*network.layers, network.readout])
    assert spinnaker["inhibitory_synapses"] == negative
