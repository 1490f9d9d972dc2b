"""Spiking Heidelberg Digits (SHD) and Spiking Speech Commands (SSC) from the published HDF5 files.

Layout of ``shd_{train,test}.h5`` / ``ssc_{train,valid,test}.h5``: ``spikes/times``
(variable-length float arrays, seconds), ``spikes/units`` (variable-length uint16 arrays,
0..699) and ``labels``; the ``extra/`` group is ignored.

Each sample becomes spike COUNTS per ``dt`` frame, the 700 units summed in groups of
``channel_bin`` (default 5, 140 channels: channel = unit // 5). Four frame conventions:

* ``"event_aligned"`` (default): the one the published DCLS models were trained with,
  spikingjelly's ``integrate_events_by_fixed_duration_shd`` with times converted to ms.
  A frame starts at the first event not yet taken, at time ``t_l``, and takes every
  following event with ``t - t_l <= dt`` (inclusive); the next frame starts at the next
  event, so silent gaps are skipped. The arithmetic is the reference code's: ms are
  ``1000 * times`` under numpy 1.x promotion (float16 files, as published, give float32)
  and differences are taken in that dtype.
* ``"grid"``: frame ``floor(t / dt)`` on a fixed grid, ``floor(t_max / dt) + 1`` frames.
* ``"onset_grid"``: the DelRec SHD loader's (``src/SHD/SHD_downloader.py`` of alexmaxad/DelRec,
  spikingjelly's later ``integrate_events_by_fixed_duration_shd``): a fixed ``dt`` grid that
  starts at the sample's first event. With ``r = fl(fl(1000 t) - fl(1000 t_0))`` in the ms
  dtype above, ``n = ceil(r_last / d)`` frames (``d = 1000 dt``) and event frame
  ``min(r // d, n - 1)``: bins are closed on the left, and an event exactly on the last
  edge joins the last frame; silent gaps keep their empty frames. Where the reference
  fails (every event at ``t_0``, so ``n = 0``; or no event), this gives one frame.
* ``"digitize"``: the DelRec SSC loader's (``SSC_SpikeIterator`` in ``src/datasets.py``):
  ``np.digitize(t, np.linspace(0, max_time, steps))``, exactly ``steps`` frames of
  ``dt = max_time / (steps - 1)`` s. Step ``k`` takes ``edge[k-1] <= t < edge[k]`` (times
  compared in float64), so an event on an edge opens the next step and step 0 stays empty
  (times are >= 0). An event at or after ``max_time`` would be step ``steps``, which the
  reference writes out of bounds (the next sample's step 0, or past the batch): refused.
  Defaults: the authors' ``steps = 250``, ``max_time = 1.4`` s; ``dt`` is not an option here.

In every convention events are taken in time order (the published files are sorted).
A sample without events gives one empty frame (``steps`` empty frames for ``"digitize"``).
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import ClassVar

import h5py
import numpy as np

from delaydeploy.datasets.common import FramesDataset, PackedFrames, cached_frames, check_split, compact_counts
from delaydeploy.errors import DatasetError

NUM_UNITS = 700
FRAME_CONVENTIONS: tuple[str, ...] = ("event_aligned", "grid", "onset_grid", "digitize")
DIGITIZE_STEPS = 250  # DelRec configs/perf_SSC.py time_window
DIGITIZE_MAX_TIME = 1.4  # seconds, DelRec src/datasets.py SSC_dataloaders max_time
_CHUNK = 1024  # samples read from the HDF5 file at a time


def event_aligned_frame_index(times: np.ndarray, duration_ms: float) -> np.ndarray:
    """Frame index of each event (times sorted, seconds) in the event-aligned convention.

    With ``fl()`` the rounding of the ms dtype, ``nxt[i]`` (the first event that no longer fits
    in a frame starting at event ``i``) is the first ``j`` with ``fl(t[j] - t[i]) > d``.
    A search in exact float64 arithmetic finds it up to rounding; since rounding is
    monotone, a few vectorised steps back or forward then settle it exactly.
    """
    n = len(times)
    t = 1000 * times  # numpy promotion as in the reference: float16 seconds -> float32 ms
    d = t.dtype.type(duration_ms)
    exact = t.astype(np.float64)
    rows = np.arange(n)

    def exceeds(j: np.ndarray) -> np.ndarray:
        """``fl(t[j] - t[i]) > d`` row by row; False where ``j == n``."""
        return (j < n) & ((t[np.minimum(j, n - 1)] - t) > d)

    nxt = np.searchsorted(exact, exact + float(d), side="right")
    while True:
        back = (nxt - 1 > rows) & exceeds(nxt - 1)
        forward = (nxt < n) & ~exceeds(nxt)
        if not (back.any() or forward.any()):
            break
        nxt = nxt - back + forward
    starts = np.zeros(n, dtype=bool)
    i = 0
    while i < n:
        starts[i] = True
        i = nxt[i]
    return np.cumsum(starts) - 1


def grid_frame_index(times: np.ndarray, dt: float) -> np.ndarray:
    """Frame index ``floor(t / dt)`` of each event, computed in ms in float64."""
    return np.floor(times.astype(np.float64) * 1000.0 / (dt * 1000.0)).astype(np.int64)


def ms_times(times: np.ndarray) -> np.ndarray:
    """``1000 * times`` in the dtype numpy 1.x gives it (1000 promotes as uint16: float16 -> float32)."""
    dtype = np.promote_types(np.uint16, times.dtype)
    return times.astype(dtype) * dtype.type(1000)


def onset_grid_frame_index(times: np.ndarray, dt: float) -> tuple[np.ndarray, int]:
    """Frame index of each event (times sorted, seconds) and the frame count, ``"onset_grid"``.

    The arithmetic is the reference's: ms and differences in the ms dtype, ``//`` in that
    dtype; ``dt`` of a whole number of ms is a Python int there, as in the reference.
    """
    t = ms_times(times)
    t = t - t[0]
    duration_ms = dt * 1000.0
    duration: float = round(duration_ms) if abs(duration_ms - round(duration_ms)) < 1e-9 else duration_ms
    num_frames = max(int(math.ceil(t[-1] / duration)), 1)
    index = np.minimum(t // duration, num_frames - 1).astype(np.int64)
    return index, num_frames


def digitize_edges(steps: int, max_time: float) -> np.ndarray:
    """The reference's bin edges, ``np.linspace(0, max_time, steps)`` (float64)."""
    return np.linspace(0, max_time, num=steps)


def bin_sample(
    times: np.ndarray,
    units: np.ndarray,
    frames: str,
    dt: float,
    channel_bin: int,
    steps: int = DIGITIZE_STEPS,
    max_time: float = DIGITIZE_MAX_TIME,
) -> np.ndarray:
    """Spike counts ``[T, ceil(700 / channel_bin)]`` (int64) of one sample.

    ``dt`` is not used by ``"digitize"``, ``steps`` and ``max_time`` only by it. A
    ``"digitize"`` event at or after ``max_time`` raises a :class:`DatasetError`.
    """
    num_channels = -(-NUM_UNITS // channel_bin)
    if frames == "digitize":
        index = np.digitize(times, digitize_edges(steps, max_time)).astype(np.int64)
        if len(index) and index.max() >= steps:
            late = times[np.argmax(index)]
            raise DatasetError(f"has a spike at {float(late)!r} s, at or after max_time = {max_time!r} s, the last "
                               f"bin edge of the 'digitize' convention (the reference writes it out of bounds)")
        num_frames = steps
    elif len(times) == 0:
        return np.zeros((1, num_channels), dtype=np.int64)
    else:
        if np.any(times[1:] < times[:-1]):
            order = np.argsort(times, kind="stable")
            times, units = times[order], units[order]
        if frames == "event_aligned":
            index = event_aligned_frame_index(times, dt * 1000.0)
            num_frames = int(index[-1]) + 1
        elif frames == "onset_grid":
            index, num_frames = onset_grid_frame_index(times, dt)
        else:
            index = grid_frame_index(times, dt)
            num_frames = int(index[-1]) + 1
    flat = index * num_channels + units.astype(np.int64) // channel_bin
    return np.bincount(flat, minlength=num_frames * num_channels).reshape(num_frames, num_channels)


def _dataset(path: Path, h5: h5py.File, name: str) -> h5py.Dataset:
    expected = "expected the SHD/SSC layout spikes/times, spikes/units, labels"
    item = h5.get(name)
    if not isinstance(item, h5py.Dataset):
        raise DatasetError(f"{path}: missing dataset '{name}' ({expected})")
    if item.ndim != 1:
        raise DatasetError(f"{path}: '{name}' has shape {item.shape}, expected one entry per sample")
    return item


def _check_sample(path: Path, index: int, times: np.ndarray, units: np.ndarray) -> None:
    if len(times) != len(units):
        raise DatasetError(f"{path}: sample {index} has {len(times)} spike times but {len(units)} units")
    if not np.issubdtype(units.dtype, np.integer):
        raise DatasetError(f"{path}: sample {index} has units of type {units.dtype}, expected integers")
    if len(units) and (units.min() < 0 or units.max() >= NUM_UNITS):
        value = units.max() if units.max() >= NUM_UNITS else units.min()
        raise DatasetError(f"{path}: sample {index} has unit {value}, outside 0..{NUM_UNITS - 1}")
    if not np.issubdtype(times.dtype, np.floating) or not np.all(np.isfinite(times)) or np.any(times < 0):
        raise DatasetError(f"{path}: sample {index} has spike times that are not finite non-negative seconds")


def read_heidelberg(
    path: Path,
    num_classes: int,
    frames: str,
    dt: float,
    channel_bin: int,
    steps: int = DIGITIZE_STEPS,
    max_time: float = DIGITIZE_MAX_TIME,
) -> PackedFrames:
    """Read and bin every sample of one SHD/SSC HDF5 file, checking its layout and values.

    Samples are read in chunks and kept as compact counts, so SSC fits in memory.
    """
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"{path}: not a readable HDF5 file ({exc})") from exc
    samples = []
    with h5:
        times_set = _dataset(path, h5, "spikes/times")
        units_set = _dataset(path, h5, "spikes/units")
        labels = _dataset(path, h5, "labels")[()]
        if not len(times_set) == len(units_set) == len(labels):
            raise DatasetError(f"{path}: {len(times_set)} spike-time lists, {len(units_set)} unit lists "
                               f"and {len(labels)} labels; they must match")
        bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
        if bad.size:
            raise DatasetError(f"{path}: label {labels[bad[0]]} of sample {bad[0]} is outside 0..{num_classes - 1}")
        for start in range(0, len(labels), _CHUNK):
            chunk = zip(times_set[start:start + _CHUNK], units_set[start:start + _CHUNK])
            for index, (times, units) in enumerate(chunk, start):
                times, units = np.asarray(times), np.asarray(units)
                _check_sample(path, index, times, units)
                try:
                    counts = bin_sample(times, units, frames, dt, channel_bin, steps, max_time)
                except DatasetError as exc:
                    raise DatasetError(f"{path}: sample {index} {exc}") from None
                samples.append(compact_counts(counts))
    return PackedFrames.pack(samples, labels.astype(np.int64), -(-NUM_UNITS // channel_bin))


class HeidelbergDataset(FramesDataset):
    """One split of SHD or SSC as spike-count frames ``[T, 140]`` (see the module docstring)."""

    name: ClassVar[str]
    splits: ClassVar[tuple[str, ...]]
    input_kind = "counts"

    def __init__(
        self,
        data_dir: str | os.PathLike,
        split: str = "train",
        frames: str = "event_aligned",
        dt: float | None = None,
        channel_bin: int = 5,
        cache_dir: str | os.PathLike | None = None,
        steps: int | None = None,
        max_time: float | None = None,
    ) -> None:
        check_split(data_dir, self.name.upper(), split, self.splits)
        if frames not in FRAME_CONVENTIONS:
            raise DatasetError(f"{data_dir}: unknown frame convention {frames!r} "
                               f"(choose from {', '.join(FRAME_CONVENTIONS)})")
        if frames == "digitize":
            if dt is not None:
                raise DatasetError(f"{data_dir}: the 'digitize' convention takes steps and max_time, not dt "
                                   f"(its dt is max_time / (steps - 1))")
            steps = DIGITIZE_STEPS if steps is None else steps
            max_time = DIGITIZE_MAX_TIME if max_time is None else max_time
            if not (isinstance(steps, numbers.Integral) and not isinstance(steps, bool) and steps >= 2
                    and isinstance(max_time, numbers.Real) and 0 < max_time < math.inf):
                raise DatasetError(f"{data_dir}: 'digitize' needs an integer steps >= 2 and a finite max_time > 0 "
                                   f"(got steps={steps}, max_time={max_time})")
            steps, max_time = int(steps), float(max_time)
            dt = max_time / (steps - 1)
        elif steps is not None or max_time is not None:
            raise DatasetError(f"{data_dir}: steps and max_time are options of the 'digitize' convention only")
        dt = 0.01 if dt is None else dt
        if not (isinstance(dt, numbers.Real) and 0 < dt < math.inf and isinstance(channel_bin, numbers.Integral)
                and channel_bin >= 1):
            raise DatasetError(f"{data_dir}: dt must be a finite number > 0 and channel_bin a positive integer "
                               f"(got dt={dt}, channel_bin={channel_bin})")
        path = Path(data_dir) / f"{self.name}_{split}.h5"
        if not path.is_file():
            raise DatasetError(f"{path}: file not found")
        self.dt = float(dt)
        self.frames = frames
        self.num_channels = -(-NUM_UNITS // int(channel_bin))
        digitize = {"steps": steps, "max_time": max_time} if frames == "digitize" else {}
        options = {"frames": frames, "dt": self.dt, "channel_bin": int(channel_bin), **digitize}
        packed = cached_frames(cache_dir, f"{self.name}_{split}", options, [path],
                               lambda: read_heidelberg(path, self.num_classes, frames, self.dt, int(channel_bin),
                                                       **digitize))
        super().__init__(packed)


class SHD(HeidelbergDataset):
    """Spiking Heidelberg Digits: 20 classes, train and test splits."""

    name = "shd"
    splits = ("train", "test")
    num_classes = 20


class SSC(HeidelbergDataset):
    """Spiking Speech Commands: 35 classes, train, valid and test splits."""

    name = "ssc"
    splits = ("train", "valid", "test")
    num_classes = 35
