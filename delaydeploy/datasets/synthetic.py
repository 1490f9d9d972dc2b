"""An embedded task that needs delays: classes differ only in relative spike timing.

Every class is a pattern in which each of ``num_channels`` input channels fires exactly once,
at a class-specific offset (offsets of a class are distinct multiples of ``spacing`` in
``0..max_offset``, so no two channels of a pattern fire in the same step). A sample
places the pattern at a random onset, jitters spikes by one step, drops a few and adds
background noise. Spike counts per channel are the same for every class and absolute time is
random, so only relative timing carries the label: a network must align spikes from
different channels (delays) to detect the pattern by coincidence. Samples are generated on
the fly from ``(seed, split, index)``, so the task needs no files and is deterministic.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

_SPLITS = {"train": (0, 2048), "valid": (1, 512), "test": (2, 512)}


class SyntheticTimingDataset(Dataset):
    """Relative-timing classification, ``x`` ``[steps, num_channels]`` binary, balanced labels."""

    num_channels = 12
    num_classes = 8
    steps = 50
    spacing = 2
    max_offset = 22
    input_kind = "binary"
    dt = 1e-3
    jitter_probability = 0.15
    drop_probability = 0.05
    noise_rate = 0.01

    def __init__(self, split: str, num_samples: int | None = None, seed: int = 0) -> None:
        if split not in _SPLITS:
            raise ValueError(f"split {split!r}: the synthetic task has splits {', '.join(_SPLITS)}")
        self.split_id, default_size = _SPLITS[split]
        self.num_samples = default_size if num_samples is None else num_samples
        self.seed = seed
        templates = np.random.default_rng([seed, 7919])
        self.offsets = np.stack(
            [self.spacing * templates.permutation(self.max_offset // self.spacing + 1)[: self.num_channels]
             for _ in range(self.num_classes)]
        )

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < self.num_samples:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.split_id, index])
        label = index % self.num_classes
        onset = rng.integers(1, self.steps - self.max_offset - 1)
        times = onset + self.offsets[label] + rng.choice([-1, 1], self.num_channels) * (
            rng.random(self.num_channels) < self.jitter_probability
        )
        keep = rng.random(self.num_channels) >= self.drop_probability
        x = (rng.random((self.steps, self.num_channels)) < self.noise_rate).astype(np.float32)
        x[times[keep], np.arange(self.num_channels)[keep]] = 1.0
        return torch.from_numpy(x), int(label)
