"""What every dataset shares: the item convention, batching, packed frames and the cache.

Items are ``(x, label)`` with ``x`` a float32 tensor ``[T, C]`` (time first) and ``label``
an int. Each dataset class exposes ``num_channels``, ``num_classes``, ``input_kind``
(``"binary"``, ``"counts"`` or ``"analog"``) and ``dt`` (seconds per step).

Datasets whose frames are costly to compute (spike times binned from HDF5, encoded audio)
compute them once into a :class:`PackedFrames` and, given a ``cache_dir``, keep it on disk
(:func:`cached_frames`) keyed by the source files' size and mtime, so a changed source
rebuilds the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from delaydeploy.errors import DatasetError
from delaydeploy.fileio import atomic_path
from delaydeploy.ir import InputKind


def pad_collate(batch: Sequence[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch items of different lengths: ``(x [T_max, B, C] zero-padded at the end, labels, lengths)``."""
    lengths = torch.tensor([x.shape[0] for x, _ in batch], dtype=torch.long)
    labels = torch.tensor([int(label) for _, label in batch], dtype=torch.long)
    x = torch.nn.utils.rnn.pad_sequence([x.to(torch.float32) for x, _ in batch])
    return x, labels, lengths


def check_split(where: str | os.PathLike, dataset: str, split: str, splits: Sequence[str]) -> None:
    """Raise a :class:`DatasetError` unless ``split`` is one of the dataset's ``splits``."""
    if split in splits:
        return
    if split == "valid":
        raise DatasetError(f"{where}: {dataset} has no validation split (splits: {', '.join(splits)})")
    raise DatasetError(f"{where}: unknown split {split!r} for {dataset} (splits: {', '.join(splits)})")


_COUNT_DTYPES = (np.uint8, np.int16, np.int32, np.int64)


def compact_counts(counts: np.ndarray) -> np.ndarray:
    """Non-negative integer counts in the smallest of uint8/int16/int32/int64 that holds them."""
    top = int(counts.max()) if counts.size else 0
    return counts.astype(next(d for d in _COUNT_DTYPES if top <= np.iinfo(d).max), copy=False)


@dataclass(frozen=True)
class PackedFrames:
    """Variable-length count frames in one tensor: sample ``i`` is ``data[offsets[i]:offsets[i+1]]``.

    ``data`` uses the smallest integer dtype that holds the largest count (usually uint8),
    which keeps SSC-sized datasets small in memory and on disk.
    """

    data: torch.Tensor
    offsets: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def pack(cls, frames: Sequence[np.ndarray], labels: Sequence[int], num_channels: int) -> PackedFrames:
        """Pack integer count arrays ``[T_i, num_channels]`` (any integer dtypes) and their labels."""
        lengths = np.array([len(f) for f in frames], dtype=np.int64)
        offsets = np.zeros(len(frames) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        data = np.concatenate(frames) if frames else np.zeros((0, num_channels), dtype=np.uint8)
        return cls(torch.from_numpy(compact_counts(data)), torch.from_numpy(offsets),
                   torch.as_tensor(np.asarray(labels, dtype=np.int64)))

    def __len__(self) -> int:
        return len(self.labels)

    def sample(self, index: int) -> torch.Tensor:
        """Frames of sample ``index`` as float32 ``[T, C]``."""
        return self.data[self.offsets[index]:self.offsets[index + 1]].to(torch.float32)


class FramesDataset(Dataset):
    """A dataset whose frames are precomputed and held packed in memory."""

    num_channels: int
    num_classes: int
    input_kind: InputKind
    dt: float

    def __init__(self, packed: PackedFrames) -> None:
        self._packed = packed

    def __len__(self) -> int:
        return len(self._packed)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        return self._packed.sample(index), int(self._packed.labels[index])

    @property
    def labels(self) -> torch.Tensor:
        """Labels of all samples, LongTensor ``[N]``."""
        return self._packed.labels


def source_signature(sources: Sequence[Path]) -> list[list]:
    """``[path, size, mtime_ns]`` of each source file; a cache is stale once any of them differs."""
    signature = []
    for source in sources:
        stat = source.stat()
        signature.append([str(source.resolve()), stat.st_size, stat.st_mtime_ns])
    return signature


def cached_frames(
    cache_dir: str | os.PathLike | None,
    name: str,
    options: dict,
    sources: Sequence[Path],
    build: Callable[[], PackedFrames],
) -> PackedFrames:
    """Return ``build()``, read from / written to ``cache_dir`` when one is given.

    The cache file is named after ``name`` and a digest of ``options`` and the source paths;
    it stores the sources' size and mtime and is rebuilt (atomically) when they changed or
    the file cannot be read.
    """
    if cache_dir is None:
        return build()
    key = json.dumps({"name": name, "options": options, "sources": source_signature(sources)}, sort_keys=True)
    identity = json.dumps({"options": options, "sources": [str(s.resolve()) for s in sources]}, sort_keys=True)
    path = Path(cache_dir) / f"{name}-{hashlib.sha256(identity.encode()).hexdigest()[:16]}.pt"
    if path.is_file():
        try:
            stored = torch.load(path, weights_only=True)
            if stored["key"] == key:
                return PackedFrames(stored["data"], stored["offsets"], stored["labels"])
        except Exception:  # an unreadable cache is only a miss: it is rebuilt below
            pass
    packed = build()
    try:
        with atomic_path(path) as tmp:
            torch.save({"key": key, "data": packed.data, "offsets": packed.offsets, "labels": packed.labels}, tmp)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot write the frame cache ({exc})") from exc
    return packed
