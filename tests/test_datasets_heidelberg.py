"""SHD/SSC loading against hand-computed frames, the frame cache, errors, and pad_collate."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers import write_heidelberg_h5

from delaydeploy.datasets import SHD, SSC, heidelberg, load_dataset, pad_collate
from delaydeploy.datasets.heidelberg import bin_sample
from delaydeploy.errors import DatasetError


def frames(num_frames: int, counts: dict[tuple[int, int], int]) -> torch.Tensor:
    """Expected [T, 140] frames from {(frame, channel): count}."""
    x = torch.zeros(num_frames, 140)
    for (t, c), n in counts.items():
        x[t, c] = n
    return x


MS = 1 / 1024  # seconds; k * MS is exact in float16 for k < 2048, and 1000 * k * MS is exact in float32

# (k, unit) pairs: t = k/1024 s = 0.9765625 k ms. Channel = unit // 5.
SHD_SAMPLE = [(0, 0), (0, 1), (5, 7), (10, 699),  # 0 / 4.9 / 9.8 ms: one frame in both conventions
              (11, 5),                            # 10.7 ms > 10 ms after t_l = 0: next frame
              (20, 5),                            # 19.5 ms, 8.8 ms after the new t_l
              (100, 300), (110, 304)]             # silent gap, then 97.7 and 107.4 ms
SHD_EVENT_ALIGNED = frames(3, {(0, 0): 2, (0, 1): 1, (0, 139): 1, (1, 1): 2, (2, 60): 2})
SHD_GRID = frames(11, {(0, 0): 2, (0, 1): 1, (0, 139): 1, (1, 1): 2, (9, 60): 1, (10, 60): 1})


@pytest.fixture
def shd_dir(tmp_path: Path) -> Path:
    t = [k * MS for k, _ in SHD_SAMPLE]
    u = [unit for _, unit in SHD_SAMPLE]
    write_heidelberg_h5(tmp_path / "shd_train.h5", [(t, u), ([], []), ([0.5, 0.25], [10, 20])], [3, 19, 0])
    write_heidelberg_h5(tmp_path / "shd_test.h5", [([0.0], [0])], [1])
    return tmp_path


@pytest.fixture
def ssc_dir(tmp_path: Path) -> Path:
    # float64 times so that 0.51 - 0.50 is exactly 10 ms: the inclusive boundary.
    boundary = ([0.50, 0.51, 0.52], [10, 14, 15])
    for split, label in (("train", 34), ("valid", 1), ("test", 2)):
        write_heidelberg_h5(tmp_path / f"ssc_{split}.h5", [boundary], [label], times_dtype=np.float64)
    return tmp_path


def test_shd_event_aligned_frames_exact(shd_dir: Path) -> None:
    data = SHD(shd_dir, "train")
    assert (len(data), data.num_channels, data.num_classes, data.input_kind, data.dt) == (3, 140, 20, "counts", 0.01)
    x, label = data[0]
    assert x.dtype == torch.float32 and label == 3
    assert torch.equal(x, SHD_EVENT_ALIGNED)
    empty, label = data[1]
    assert torch.equal(empty, torch.zeros(1, 140)) and label == 19
    unsorted, _ = data[2]  # events out of time order are taken in time order
    assert torch.equal(unsorted, frames(2, {(0, 4): 1, (1, 2): 1}))


def test_shd_grid_frames_exact(shd_dir: Path) -> None:
    data = load_dataset("shd", shd_dir, "train", frames="grid")
    assert torch.equal(data[0][0], SHD_GRID)
    assert torch.equal(data[1][0], torch.zeros(1, 140))
    assert torch.equal(data[2][0], frames(51, {(25, 4): 1, (50, 2): 1}))


def test_ssc_inclusive_boundary_and_splits(ssc_dir: Path) -> None:
    aligned = SSC(ssc_dir, "train")
    assert aligned.num_classes == 35 and aligned[0][1] == 34
    # t_l = 500 ms; 510 ms is exactly 10 ms later and still belongs to the frame.
    assert torch.equal(aligned[0][0], frames(2, {(0, 2): 2, (1, 3): 1}))
    grid = SSC(ssc_dir, "train", frames="grid")
    assert torch.equal(grid[0][0], frames(53, {(50, 2): 1, (51, 2): 1, (52, 3): 1}))
    assert SSC(ssc_dir, "valid")[0][1] == 1
    assert SSC(ssc_dir, "test")[0][1] == 2


def test_channel_binning_option(shd_dir: Path) -> None:
    data = SHD(shd_dir, "train", channel_bin=1)
    assert data.num_channels == 700
    x = data[0][0]
    assert x.shape == (3, 700)
    assert (x[0, 0], x[0, 1], x[0, 7], x[0, 699], x[1, 5], x[2, 300], x[2, 304]) == (1, 1, 1, 1, 2, 1, 1)
    assert torch.equal(x.reshape(3, 140, 5).sum(-1), SHD_EVENT_ALIGNED)


def test_event_aligned_matches_fixed_spikingjelly_loop() -> None:
    """Random float16 samples against spikingjelly's loop fed with times in ms (the DCLS fix)."""
    shd = pytest.importorskip("spikingjelly.datasets.shd")
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 300))
        t = np.sort(np.concatenate([rng.uniform(0, 1.2, n), np.round(rng.uniform(0, 1.2, n // 3), 2)]))
        t = t.astype(np.float16)
        u = rng.integers(0, 700, len(t)).astype(np.uint16)
        ref = shd.integrate_events_by_fixed_duration_shd({"t": 1000 * t, "x": u}, 10, 700)
        expected = ref.reshape(len(ref), 140, 5).sum(-1)
        np.testing.assert_array_equal(bin_sample(t, u, "event_aligned", 0.01, 5), expected)


def test_cache_is_read_and_rebuilt_when_stale(shd_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    first = SHD(shd_dir, "train", cache_dir=cache)
    assert len(list(cache.glob("shd_train-*.pt"))) == 1
    real_reader = heidelberg.read_heidelberg

    def no_reading(*args, **kwargs):
        raise AssertionError("the HDF5 file was parsed although the cache is fresh")

    monkeypatch.setattr(heidelberg, "read_heidelberg", no_reading)
    second = SHD(shd_dir, "train", cache_dir=cache)
    assert [torch.equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(first, second)] == [True] * 3

    source = shd_dir / "shd_train.h5"
    write_heidelberg_h5(source, [([0.0, 0.001], [0, 5])], [7])
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="parsed"):
        SHD(shd_dir, "train", cache_dir=cache)
    monkeypatch.setattr(heidelberg, "read_heidelberg", real_reader)
    rebuilt = SHD(shd_dir, "train", cache_dir=cache)
    assert len(rebuilt) == 1 and rebuilt[0][1] == 7
    assert torch.equal(rebuilt[0][0], frames(1, {(0, 0): 1, (0, 1): 1}))

    SHD(shd_dir, "train", frames="grid", cache_dir=cache)  # another convention, another cache file
    assert len(list(cache.glob("shd_train-*.pt"))) == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"shd_train\.h5: file not found"):
        SHD(tmp_path, "train")


@pytest.mark.parametrize("drop", ["spikes/times", "spikes/units", "labels"])
def test_wrong_layout(tmp_path: Path, drop: str) -> None:
    path = tmp_path / "shd_test.h5"
    write_heidelberg_h5(path, [([0.0], [0])], [0])
    with h5py.File(path, "a") as h5:
        del h5[drop]
    with pytest.raises(DatasetError, match=f"shd_test.h5: missing dataset '{drop}'"):
        SHD(tmp_path, "test")


def test_not_hdf5(tmp_path: Path) -> None:
    (tmp_path / "shd_test.h5").write_bytes(b"not an hdf5 file")
    with pytest.raises(DatasetError, match="shd_test.h5: not a readable HDF5 file"):
        SHD(tmp_path, "test")


def test_bad_values(tmp_path: Path) -> None:
    write_heidelberg_h5(tmp_path / "shd_train.h5", [([0.0], [1]), ([0.0, 0.1], [3, 700])], [0, 1])
    with pytest.raises(DatasetError, match="shd_train.h5: sample 1 has unit 700, outside 0..699"):
        SHD(tmp_path, "train")
    write_heidelberg_h5(tmp_path / "shd_train.h5", [([0.0, 0.1, 0.2], [1, 2])], [0])
    with pytest.raises(DatasetError, match="shd_train.h5: sample 0 has 3 spike times but 2 units"):
        SHD(tmp_path, "train")
    write_heidelberg_h5(tmp_path / "shd_train.h5", [([0.0], [1])], [20])
    with pytest.raises(DatasetError, match=r"shd_train.h5: label 20 of sample 0 is outside 0..19"):
        SHD(tmp_path, "train")
    with h5py.File(tmp_path / "shd_train.h5", "a") as h5:
        del h5["labels"]
        h5["labels"] = np.zeros(2, dtype=np.uint16)
    with pytest.raises(DatasetError, match="1 spike-time lists, 1 unit lists and 2 labels"):
        SHD(tmp_path, "train")


def test_splits_and_options(shd_dir: Path) -> None:
    with pytest.raises(DatasetError, match="SHD has no validation split"):
        SHD(shd_dir, "valid")
    with pytest.raises(DatasetError, match="unknown frame convention 'fixed'"):
        SHD(shd_dir, "train", frames="fixed")
    with pytest.raises(DatasetError, match="has no option 'bins'"):
        load_dataset("shd", shd_dir, "train", bins=5)
    with pytest.raises(DatasetError, match="unknown dataset 'mnist'"):
        load_dataset("mnist", shd_dir, "train")
    assert len(load_dataset("shd", shd_dir, "test")) == 1


def test_pad_collate() -> None:
    batch = [(torch.ones(3, 4), 2), (torch.full((5, 4), 2.0), 0), (torch.ones(1, 4, dtype=torch.float64), 1)]
    x, labels, lengths = pad_collate(batch)
    assert x.shape == (5, 3, 4) and x.dtype == torch.float32
    assert labels.dtype == torch.long and labels.tolist() == [2, 0, 1]
    assert lengths.dtype == torch.long and lengths.tolist() == [3, 5, 1]
    assert torch.equal(x[:3, 0], torch.ones(3, 4)) and not x[3:, 0].any()
    assert torch.equal(x[:, 1], torch.full((5, 4), 2.0))
    assert x[0, 2].eq(1).all() and not x[1:, 2].any()
