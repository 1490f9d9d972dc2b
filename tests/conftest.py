"""Test set-up: one torch thread, the shared fixtures and Lava gate (:mod:`data_fixtures`)."""

from __future__ import annotations

import delaydeploy.exporters.lava.env  # noqa: F401  (first: Lava must be importable after tqdm ran)

# isort: split

import torch
from data_fixtures import (  # noqa: F401  (fixtures, hook)
    delrec_vectors,
    fsdd_dir,
    pytest_collection_modifyitems,
    pytest_ignore_collect,
    snn_delays_vectors,
    state_dict_from,
)

# The tests run many tiny tensor operations: one intra-op thread is faster than two and
# keeps timings stable on a 2-core CI machine.
torch.set_num_threads(1)
