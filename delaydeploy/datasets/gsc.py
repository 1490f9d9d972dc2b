"""Google Speech Commands v0.02 with the published DCLS log-mel front end.

The standard folder: one sub-folder per label holding 16 kHz mono 16-bit WAV files, plus
``validation_list.txt`` and ``testing_list.txt`` (paths like ``bed/0a7c2a8d_nohash_0.wav``).
Training is every labelled file in neither list; ``_background_noise_`` and any folder that
is not one of the 35 labels are ignored. Items are log-mel frames ``[101, 140]``
(:func:`delaydeploy.datasets.audio.gsc_features`), computed when an item is read.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from delaydeploy.datasets.audio import gsc_features, read_wav
from delaydeploy.datasets.common import check_split
from delaydeploy.errors import DatasetError

GSC_LABELS: tuple[str, ...] = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward",
    "four", "go", "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on",
    "one", "right", "seven", "sheila", "six", "stop", "three", "tree", "two", "up", "visual",
    "wow", "yes", "zero",
)
_LIST_FILES = {"valid": "validation_list.txt", "test": "testing_list.txt"}


def _read_list(root: Path, split: str, available: set[str]) -> list[str]:
    path = root / _LIST_FILES[split]
    if not path.is_file():
        raise DatasetError(f"{path}: list file not found (a GSC v0.02 folder has {' and '.join(_LIST_FILES.values())})")
    entries = [line.strip().replace("\\", "/") for line in path.read_text().splitlines() if line.strip()]
    for entry in entries:
        if entry.split("/")[0] not in GSC_LABELS:
            raise DatasetError(f"{path}: entry {entry!r} is not in one of the 35 label folders")
        if entry not in available:
            raise DatasetError(f"{path}: lists {entry!r}, which is not in {root}")
    return entries


def gsc_split_files(data_dir: str | os.PathLike, split: str) -> list[tuple[Path, int]]:
    """``(wav path, label index)`` of every file in ``split``, sorted by relative path."""
    root = Path(data_dir)
    check_split(root, "GSC", split, ("train", "valid", "test"))
    if not root.is_dir():
        raise DatasetError(f"{root}: GSC folder not found")
    available = {f"{label}/{name}" for label in GSC_LABELS if (root / label).is_dir()
                 for name in os.listdir(root / label) if name.lower().endswith(".wav")}
    if not available:
        raise DatasetError(f"{root}: no WAV files in any of the 35 GSC label folders")
    held_out = {name: set(_read_list(root, name, available)) for name in _LIST_FILES}
    chosen = held_out[split] if split in held_out else available - held_out["valid"] - held_out["test"]
    return [(root / entry, GSC_LABELS.index(entry.split("/")[0])) for entry in sorted(chosen)]


class GSC(Dataset):
    """One split of Google Speech Commands v0.02 as log-mel frames ``[101, 140]``."""

    num_channels = 140
    num_classes = 35
    input_kind = "analog"
    dt = 0.01

    def __init__(self, data_dir: str | os.PathLike, split: str = "train") -> None:
        self.files = gsc_split_files(data_dir, split)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.files[index]
        samples, rate = read_wav(path)
        return gsc_features(torch.from_numpy(samples), rate), label
