"""Test set-up: one torch thread, and the shared data fixtures (:mod:`data_fixtures`)."""

from __future__ import annotations

import exporters.lava_env  # noqa: F401  (Lava must be importable after tqdm ran)

import torch
from data_fixtures import delrec_vectors, fsdd_dir, snn_delays_vectors, state_dict_from  # noqa: F401  (fixtures)

# The tests run many tiny tensor operations: one intra-op thread is faster than two and
# keeps timings stable on a 2-core CI machine.
torch.set_num_threads(1)
