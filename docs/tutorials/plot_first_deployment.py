"""
From training to three targets, verified
========================================

This tutorial takes a delay network the whole way: it trains one on the embedded synthetic
task, lowers it to the deployment IR, simulates it with the reference, exports it to NIR,
to a Lava bundle and to a PyNN bundle, verifies each export spike for spike against the
reference, and draws the spikes of one sample.

It needs the ``lava`` and ``nest`` extras (``pip install 'delaydeploy[lava,nest]'`` on
Python 3.10; ``make test`` sets them up) and runs in well under a minute on two cores. The
test suite runs it, so it cannot rot.
"""

# %%
# Train
# -----
# The synthetic task has 8 classes that differ only in the relative timing of spikes on 12
# channels: without delays it cannot be learned. Four epochs on 1,536 training samples
# (about ten seconds) are enough to see the delays at work. ``train_preset`` is what
# ``delaydeploy train`` runs; it saves a checkpoint (a plain dict of tensors, read back with
# ``torch.load(weights_only=True)``).
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from delaydeploy.training import train_preset

folder = Path(tempfile.mkdtemp(prefix="delaydeploy-tutorial-"))
outcome = train_preset("synthetic", output=str(folder / "model.pt"), epochs=4,
                       max_samples=1536, seed=0, progress=False)
accuracy = outcome.test_accuracy_rounded
print(f"test accuracy with rounded delays: {accuracy:.1%} (512 test samples)")

# %%
# Lower to the deployment IR
# --------------------------
# Loading the checkpoint as an *artifact* lowers it: the learned positions become integer
# delays (half to even), BatchNorm folds into the biases. ``network`` is the one hand-off
# every target translates.
from delaydeploy.artifacts import load_artifact

model = load_artifact(folder / "model.pt")
network = model.network
for layer in network.layers:
    delays = f"{layer.delays.min()}..{layer.delays.max()}"
    print(f"{layer.name}: {layer.in_size} -> {layer.size}, delays {delays}")

# %%
# Simulate with the reference
# ---------------------------
# The reference simulator is the oracle: every target is checked against it. Inputs are
# time first, ``[T, B, C]``; here, eight test samples.
from delaydeploy.datasets import pad_collate
from delaydeploy.datasets.synthetic import SyntheticTimingDataset
from delaydeploy.reference import simulate

test_set = SyntheticTimingDataset("test")
x, labels, _ = pad_collate([test_set[i] for i in range(8)])
x = x.double().numpy()
expected = simulate(network, x)
print("predicted:", expected.prediction().tolist())
print("labels:   ", labels.tolist())

# %%
# Export and verify
# -----------------
# ``export`` writes a NIR file and two bundles (a folder with the network, its test vectors
# and a hash of every file). Each export is loaded back as an artifact and run on its own
# backend: the NIR file by executing its graph, the Lava bundle on Lava's CPU backend, the
# PyNN bundle on NEST and on Brian 2. ``compare`` checks every spike and the readout against
# the reference.
from delaydeploy.comparison import compare
from delaydeploy.export import export
from delaydeploy.verify import run_backend

layer_names = [layer.name for layer in network.layers]
for target, path, backends in (("nir", "model.nir", ["nir"]), ("lava", "bundle_lava", ["lava-cpu"]),
                               ("pynn", "bundle_pynn", ["nest", "brian2"])):
    exported = load_artifact(export(model, target, folder / path, x))
    for backend in backends:
        result = compare(expected, run_backend(exported, backend, x), layer_names)
        mismatches = sum(result.spike_mismatches.values())
        print(f"{target:4s} on {backend:8s}: {mismatches} spike mismatches, readout within "
              f"{result.readout_max_error:.1e}")
        assert result.ok, result.first_divergence

# %%
# The same on the command line: ``delaydeploy export model.pt --target pynn -o bundle_pynn``,
# then ``delaydeploy verify bundle_pynn``, which exits 0 only with 0 spike mismatches.
#
# Look at the spikes
# ------------------
# One sample's input and hidden spikes, as the reference (and so every verified target)
# computes them. The input pattern's timing is what the delays learned to line up.
sample = 0
panels = [("input", x[:, sample, :])] + [(name, spikes[:, sample, :].numpy())
                                         for name, spikes in zip(layer_names, expected.spikes)]
figure, axes = plt.subplots(len(panels), 1, figsize=(7, 6), sharex=True)
for axis, (name, spikes) in zip(axes, panels):
    steps, neurons = np.nonzero(spikes)
    axis.scatter(steps, neurons, s=16, marker="|", color="black")
    axis.set_ylabel(name)
    axis.yaxis.set_major_locator(MaxNLocator(integer=True))
axes[-1].set_xlabel("time step")
predicted = int(expected.prediction()[sample])
axes[0].set_title(f"sample {sample}: label {int(labels[sample])}, predicted {predicted}")
figure.tight_layout()
plt.show()
