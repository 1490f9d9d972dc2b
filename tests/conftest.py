"""Test set-up: one torch thread, the shared fixtures and Lava gate (:mod:`data_fixtures`)."""

from __future__ import annotations

from delaydeploy.exporters.lava.env import lava_installed  # first: Lava must be importable after tqdm ran

# isort: split

import torch
from data_fixtures import (  # noqa: F401  (fixtures, hook)
    delrec_vectors,
    fsdd_dir,
    pytest_collection_modifyitems,
    snn_delays_vectors,
    state_dict_from,
)

# modules that import Lava at the top (all their tests are marked ``lava``)
collect_ignore = [] if lava_installed() else ["test_fixed_reference.py"]

# The tests run many tiny tensor operations: one intra-op thread is faster than two and
# keeps timings stable on a 2-core CI machine.
torch.set_num_threads(1)
