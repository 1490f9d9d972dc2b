"""Free Spoken Digit Dataset (FSDD): real recordings encoded into spike counts.

The ``recordings`` folder holds ``{digit}_{speaker}_{index}.wav`` (8 kHz mono 16-bit).
The dataset authors' split: indices 0-4 are the test set, 5 and above the training set; the
same speakers are in both. ``test_speakers`` gives a speaker-independent split instead: the
test set is every recording of those speakers, the training set every other recording.
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


def parse_speakers(test_speakers: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...] | None:
    """``"a,b"`` or ``["a", "b"]`` as ``("a", "b")``; None (or empty) for the official split."""
    if test_speakers is None:
        return None
    names = test_speakers.split(",") if isinstance(test_speakers, str) else list(test_speakers)
    if not all(isinstance(name, str) for name in names):
        raise DatasetError(f"test_speakers = {test_speakers!r}: expected speaker names")
    names = [name.strip() for name in names if name.strip()]
    return tuple(dict.fromkeys(names)) or None


def _recordings(data_dir: str | os.PathLike) -> tuple[Path, list[tuple[Path, int, str, int]]]:
    """The recordings folder and ``(path, digit, speaker, index)`` of every recording in it, by file name."""
    root = Path(data_dir)
    if (root / "recordings").is_dir():
        root = root / "recordings"
    if not root.is_dir():
        raise DatasetError(f"{root}: FSDD recordings folder not found")
    recordings = []
    for name in sorted(os.listdir(root)):
        if not name.lower().endswith(".wav"):
            continue
        match = FSDD_NAME.fullmatch(name)
        if match is None:
            raise DatasetError(f"{root / name}: not an FSDD file name ({{digit}}_{{speaker}}_{{index}}.wav)")
        recordings.append((root / name, int(match["digit"]), match["speaker"], int(match["index"])))
    return root, recordings


def fsdd_split_files(data_dir: str | os.PathLike, split: str,
                     test_speakers: tuple[str, ...] | None = None) -> list[tuple[Path, int]]:
    """``(wav path, digit)`` of every recording in ``split``, sorted by file name.

    ``data_dir`` is the ``recordings`` folder or the FSDD folder that contains it. Without
    ``test_speakers`` the split is the official one (by index); with them, ``test`` is every
    recording of those speakers and ``train`` every other one.
    """
    check_split(Path(data_dir), "FSDD", split, ("train", "test"))
    root, recordings = _recordings(data_dir)
    if test_speakers:
        found = sorted({speaker for _, _, speaker, _ in recordings})
        unknown = [name for name in test_speakers if name not in found]
        if unknown:
            raise DatasetError(f"{root}: no recordings of speaker {', '.join(unknown)}; "
                               f"speakers found: {', '.join(found) or 'none'}")
        files = [(path, digit) for path, digit, speaker, _ in recordings
                 if (speaker in test_speakers) == (split == "test")]
    else:
        files = [(path, digit) for path, digit, _, index in recordings if (index in TEST_INDICES) == (split == "test")]
    if not files:
        raise DatasetError(f"{root}: no FSDD recordings for the {split} split"
                           + (f" (test speakers: {', '.join(test_speakers)})" if test_speakers else ""))
    return files


def fsdd_speakers(data_dir: str | os.PathLike) -> list[str]:
    """The speakers of the recordings in ``data_dir``, sorted."""
    return sorted({speaker for _, _, speaker, _ in _recordings(data_dir)[1]})


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
        test_speakers: str | list[str] | None = None,
    ) -> None:
        if int(channels) != channels or channels < 1:
            raise DatasetError(f"{data_dir}: channels must be a positive integer, got {channels}")
        encoder = CochleaEncoder(channels=int(channels), dt=self.dt)
        self.files = fsdd_split_files(data_dir, split, parse_speakers(test_speakers))
        self.num_channels = int(channels)
        options = {"encoder": dataclasses.asdict(encoder)}
        packed = cached_frames(cache_dir, f"fsdd_{split}", options, [path for path, _ in self.files],
                               lambda: encode_files(self.files, encoder))
        super().__init__(packed)
