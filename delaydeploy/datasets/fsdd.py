"""Free Spoken Digit Dataset (FSDD): real recordings encoded into spike counts.

The ``recordings`` folder holds ``{digit}_{speaker}_{index}.wav`` (8 kHz mono 16-bit).
The dataset authors' split: indices 0-4 are the test set, 5 and above the training set.
Items are spike counts ``[T, channels]`` per 10 ms frame from
:class:`delaydeploy.datasets.audio.CochleaEncoder`; a split is encoded once on
construction (and cached on disk given a ``cache_dir``).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import numpy as np

from delaydeploy.datasets.audio import CochleaEncoder, read_wav
from delaydeploy.datasets.common import FramesDataset, PackedFrames, cached_frames, check_split
from delaydeploy.errors import DatasetError

FSDD_NAME = re.compile(r"(?P<digit>\d)_(?P<speaker>[^_]+)_(?P<index>\d+)\.wav", re.IGNORECASE)
TEST_INDICES = range(0, 5)


def fsdd_split_files(data_dir: str | os.PathLike, split: str) -> list[tuple[Path, int]]:
    """``(wav path, digit)`` of every recording in ``split``, sorted by file name.

    ``data_dir`` is the ``recordings`` folder or the FSDD folder that contains it.
    """
    root = Path(data_dir)
    check_split(root, "FSDD", split, ("train", "test"))
    if (root / "recordings").is_dir():
        root = root / "recordings"
    if not root.is_dir():
        raise DatasetError(f"{root}: FSDD recordings folder not found")
    files = []
    for name in sorted(os.listdir(root)):
        if not name.lower().endswith(".wav"):
            continue
        match = FSDD_NAME.fullmatch(name)
        if match is None:
            raise DatasetError(f"{root / name}: not an FSDD file name ({{digit}}_{{speaker}}_{{index}}.wav)")
        if (int(match["index"]) in TEST_INDICES) == (split == "test"):
            files.append((root / name, int(match["digit"])))
    if not files:
        raise DatasetError(f"{root}: no FSDD recordings for the {split} split")
    return files


def encode_files(files: list[tuple[Path, int]], encoder: CochleaEncoder) -> PackedFrames:
    """Encode every file into spike counts and pack them with their labels."""
    frames = []
    for path, _ in files:
        samples, rate = read_wav(path)
        try:
            frames.append(encoder(samples, rate).numpy().astype(np.int64))
        except ValueError as exc:
            raise DatasetError(f"{path}: cannot encode ({exc})") from exc
    return PackedFrames.pack(frames, [label for _, label in files], encoder.channels)


class FSDD(FramesDataset):
    """One split of FSDD as cochlea-encoded spike counts ``[T, channels]``."""

    num_classes = 10
    input_kind = "counts"
    dt = 0.01

    def __init__(
        self,
        data_dir: str | os.PathLike,
        split: str = "train",
        channels: int = 140,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        if int(channels) != channels or channels < 1:
            raise DatasetError(f"{data_dir}: channels must be a positive integer, got {channels}")
        encoder = CochleaEncoder(channels=int(channels), dt=self.dt)
        self.files = fsdd_split_files(data_dir, split)
        self.num_channels = int(channels)
        options = {"encoder": dataclasses.asdict(encoder)}
        packed = cached_frames(cache_dir, f"fsdd_{split}", options, [path for path, _ in self.files],
                               lambda: encode_files(self.files, encoder))
        super().__init__(packed)
