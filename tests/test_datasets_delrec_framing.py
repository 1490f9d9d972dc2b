"""The DelRec presets' framing of SSC ("digitize") and SHD ("onset_grid") against independent references.

The references below restate the DelRec loaders (alexmaxad/DelRec ``src/datasets.py``
``SSC_SpikeIterator`` and ``src/SHD/SHD_downloader.py`` ``integrate_events_by_fixed_duration_shd``
with ``BinnedSpikingHeidelbergDigits``'s channel sums) one event at a time, without numpy's
vectorised binning; hand-computed frames check the references themselves.
"""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers import write_heidelberg_h5

from delaydeploy.config import get_preset
from delaydeploy.datasets import SHD, SSC, load_dataset
from delaydeploy.datasets.heidelberg import bin_sample
from delaydeploy.errors import DatasetError

EDGES = np.linspace(0, 1.4, num=250)  # SSC_SpikeIterator: np.linspace(0, max_time=1.4, num=time_window=250)


def channel_sums(dense: np.ndarray, n_bins: int = 5) -> np.ndarray:
    """The authors' channel binning: channel i sums units n_bins*i .. n_bins*(i+1)-1 (700 // n_bins channels)."""
    out = np.zeros((dense.shape[0], dense.shape[1] // n_bins))
    for channel in range(out.shape[1]):
        for unit in range(n_bins * channel, n_bins * (channel + 1)):
            out[:, channel] += dense[:, unit]
    return out


def reference_digitize(times: np.ndarray, units: np.ndarray, edges: np.ndarray = EDGES) -> np.ndarray:
    """Step of an event = how many edges are <= t (np.digitize, right=False), float64 comparisons; a
    [len(edges), 700] tensor of ones summed per (step, unit), as the sparse-to-dense conversion sums them."""
    dense = np.zeros((len(edges), 700))
    for t, unit in zip(times.tolist(), units.tolist()):
        step = sum(1 for edge in edges.tolist() if edge <= t)
        if step >= len(edges):
            raise IndexError("the reference has no step for this event")
        dense[step, unit] += 1
    return channel_sums(dense)


def reference_onset_grid(times: np.ndarray, units: np.ndarray, duration: int = 10) -> np.ndarray:
    """The dev spikingjelly SHD loop: ms relative to the first event, frames_num = ceil(last / duration),
    frame i < frames_num - 1 holds the events not yet taken whose (t // duration) < i + 1, and the last
    frame everything left. Arithmetic as written there under numpy 1.x, as the authors pin (1.23.5): its
    value-based casting reads the 1000 as uint16, so float16 times become float32 (numpy 2 keeps float16)."""
    t = times.astype(np.float32) * np.float32(1000) if times.dtype == np.float16 else 1000 * times
    t = t - t[0]
    frames_num = int(math.ceil(t[-1] / duration))
    if frames_num == 0:  # there, the remaining events go to frames[-1] of an empty array
        raise IndexError("no last frame for the events")
    dense = np.zeros((frames_num, 700))
    taken = 0
    for frame in range(frames_num):
        last = frame == frames_num - 1
        while taken < len(t) and (last or t[taken] // duration < frame + 1):
            dense[frame, units[taken]] += 1
            taken += 1
    return channel_sums(dense)


def frames_of(shape: tuple[int, int], counts: dict[tuple[int, int], int]) -> np.ndarray:
    x = np.zeros(shape)
    for (step, channel), n in counts.items():
        x[step, channel] = n
    return x


# ---------------------------------------------------------------- SSC, "digitize"

# (time in s, unit); float64 file so that times can sit exactly on the float64 edges.
SSC_EDGE_CASES = [
    (0.0, 0),                           # t = 0 = edge 0: step 1 (step 0 is always empty)
    (0.0, 3),                           # same step, another unit of channel 0
    (float(np.nextafter(EDGES[1], 0)), 6),  # just below edge 1: step 1
    (float(EDGES[1]), 5),               # exactly on edge 1: step 2
    (float(EDGES[1]), 9),               # repeated event in that step, channel 1 again
    (0.5, 699), (0.5, 699),             # repeated (step, unit): a count of 2
    (float(EDGES[248]), 10),            # exactly on the second-to-last edge: the last step, 249
    (float(np.nextafter(1.4, 0)), 14),  # just below the last edge: step 249, channel 2
]
SSC_EDGE_FRAMES = frames_of((250, 140), {(1, 0): 2, (1, 1): 1, (2, 1): 2, (89, 139): 2, (249, 2): 2})


def as_arrays(events: list[tuple[float, int]]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([t for t, _ in events]), np.array([u for _, u in events], dtype=np.uint16)


def random_samples(rng: np.random.Generator, count: int, span: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sorted float16 times in [0, span) with many repeats, as in the published files."""
    samples = []
    for _ in range(count):
        n = int(rng.integers(1, 400))
        t = np.concatenate([rng.uniform(0, span, n), np.round(rng.uniform(0, span, n // 3), 2)])
        t = np.sort(t).astype(np.float16)
        t = t[t < span]
        samples.append((t, rng.integers(0, 700, len(t)).astype(np.uint16)))
    return samples


def test_digitize_reference_is_right_on_hand_cases() -> None:
    t, u = as_arrays(SSC_EDGE_CASES)
    np.testing.assert_array_equal(reference_digitize(t, u), SSC_EDGE_FRAMES)


def test_digitize_edge_cases_match_reference() -> None:
    t, u = as_arrays(SSC_EDGE_CASES)
    ours = bin_sample(t, u, "digitize", 0.01, 5, 250, 1.4)
    assert ours.shape == (250, 140)
    np.testing.assert_array_equal(ours, reference_digitize(t, u))
    # against floor(t / dt) every event sits one step later: the former "grid" preset differs
    grid = bin_sample(t, u, "grid", 1.4 / 249, 5)
    assert grid.shape != ours.shape or not np.array_equal(grid, ours)


@pytest.mark.parametrize("late", [1.4, float(np.nextafter(1.4, 2)), 1.5])
def test_digitize_refuses_events_at_or_after_the_last_edge(tmp_path: Path, late: float) -> None:
    t, u = as_arrays([(0.1, 0), (late, 1)])
    with pytest.raises(IndexError):
        reference_digitize(t, u)
    with pytest.raises(DatasetError, match=r"at or after max_time = 1\.4 s"):
        bin_sample(t, u, "digitize", 0.01, 5, 250, 1.4)
    write_heidelberg_h5(tmp_path / "ssc_test.h5", [([0.2], [3]), (t.tolist(), u.tolist())], [0, 1],
                        times_dtype=np.float64)
    with pytest.raises(DatasetError, match=r"ssc_test\.h5: sample 1 has a spike at"):
        SSC(tmp_path, "test", frames="digitize")


def test_digitize_random_float16_samples_match_reference() -> None:
    rng = np.random.default_rng(1)
    for t, u in random_samples(rng, 60, 1.4):
        ours = bin_sample(t, u, "digitize", 0.01, 5, 250, 1.4)
        np.testing.assert_array_equal(ours, reference_digitize(t, u))
        assert ours.shape == (250, 140) and not ours[0].any()


def test_digitize_other_steps_and_max_time() -> None:
    edges = np.linspace(0, 1.0, num=11)
    t, u = as_arrays([(0.0, 0), (0.1, 5), (0.3, 5), (0.35, 699), (0.99, 3)])
    np.testing.assert_array_equal(bin_sample(t, u, "digitize", 0.01, 5, 11, 1.0), reference_digitize(t, u, edges))


@pytest.fixture
def ssc_dir(tmp_path: Path) -> Path:
    t, u = as_arrays(SSC_EDGE_CASES)
    write_heidelberg_h5(tmp_path / "ssc_train.h5", [(t.tolist(), u.tolist()), ([], [])], [4, 0], times_dtype=np.float64)
    rng = np.random.default_rng(2)
    samples = random_samples(rng, 6, 1.4)
    write_heidelberg_h5(tmp_path / "ssc_test.h5", samples, list(range(6)))  # float16, as published
    return tmp_path


def test_delrec_ssc_preset_frames(ssc_dir: Path) -> None:
    preset = get_preset("delrec_ssc")
    assert preset.dataset_options == {"frames": "digitize", "steps": 250, "max_time": 1.4}
    train = load_dataset(preset.dataset, ssc_dir, "train", **preset.dataset_options)
    assert train.dt == preset.network.dt == 1.4 / 249 and train.num_channels == preset.network.input_size
    x, label = train[0]
    assert label == 4 and x.dtype == torch.float32
    np.testing.assert_array_equal(x.numpy(), SSC_EDGE_FRAMES)
    empty, _ = train[1]
    assert torch.equal(empty, torch.zeros(250, 140))  # every sample has exactly 250 steps
    test = load_dataset(preset.dataset, ssc_dir, "test", **preset.dataset_options)
    with h5py.File(ssc_dir / "ssc_test.h5") as h5:
        for i in range(len(test)):
            t, u = h5["spikes/times"][i], h5["spikes/units"][i]
            assert t.dtype == np.float16
            np.testing.assert_array_equal(test[i][0].numpy(), reference_digitize(t, u))


def test_digitize_options_and_cache(ssc_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="takes steps and max_time, not dt"):
        SSC(ssc_dir, "train", frames="digitize", dt=0.01)
    with pytest.raises(DatasetError, match="options of the 'digitize' convention only"):
        SSC(ssc_dir, "train", frames="grid", steps=250)
    with pytest.raises(DatasetError, match="integer steps >= 2"):
        SSC(ssc_dir, "train", frames="digitize", steps=1)
    for max_time in (0.0, float("inf"), float("nan"), "1.4"):
        with pytest.raises(DatasetError, match="integer steps >= 2 and a finite max_time > 0"):
            SSC(ssc_dir, "train", frames="digitize", max_time=max_time)
    for steps in (250.5, float("nan"), "250", True):
        with pytest.raises(DatasetError, match="integer steps >= 2"):
            SSC(ssc_dir, "train", frames="digitize", steps=steps)
    for frames in ("grid", "event_aligned", "onset_grid"):
        for dt in (float("inf"), float("nan"), "0.01", 0.0):
            with pytest.raises(DatasetError, match="dt must be a finite number > 0"):
                SSC(ssc_dir, "train", frames=frames, dt=dt)
    default = SSC(ssc_dir, "train", frames="digitize")  # the authors' 250 steps over 1.4 s
    np.testing.assert_array_equal(default[0][0].numpy(), SSC_EDGE_FRAMES)

    cache = tmp_path / "cache"
    first = SSC(ssc_dir, "train", frames="digitize", cache_dir=cache)
    again = SSC(ssc_dir, "train", frames="digitize", cache_dir=cache)
    assert torch.equal(first[0][0], again[0][0]) and len(list(cache.glob("ssc_train-*.pt"))) == 1
    other = SSC(ssc_dir, "train", frames="digitize", steps=300, max_time=1.5, cache_dir=cache)
    assert len(other[0][0]) == 300 and len(list(cache.glob("ssc_train-*.pt"))) == 2
    edges = np.linspace(0, 1.5, num=300)
    t, u = as_arrays(SSC_EDGE_CASES)
    np.testing.assert_array_equal(other[0][0].numpy(), reference_digitize(t, u, edges))
    twice = SSC(ssc_dir, "train", frames="digitize", steps=499, max_time=2.8, cache_dir=cache)  # dt 1.4 / 249 too
    assert twice.dt == first.dt and len(twice[0][0]) == 499 and len(list(cache.glob("ssc_train-*.pt"))) == 3
    grid = SSC(ssc_dir, "train", frames="grid", dt=1.4 / 249, cache_dir=cache)  # same dt, own cache entry
    assert len(list(cache.glob("ssc_train-*.pt"))) == 4 and not torch.equal(grid[0][0][:250], first[0][0])


# ---------------------------------------------------------------- SHD, "onset_grid"

# float64 times, chosen so that 1000 t - 125 is exactly 10, 20, 50 and 60 ms: events on edges.
SHD_EDGE_CASES = [
    (0.125, 0), (0.125, 1),   # the onset; frame 0, repeated in channel 0
    (0.130, 7),               # 5 ms: frame 0, channel 1
    (0.135, 10),              # exactly 10 ms: frame 1 (bins are closed on the left)
    (0.1449999, 11),          # 19.9999 ms: frame 1, channel 2 again
    (0.145, 12),              # exactly 20 ms: frame 2
    (0.175, 300),             # exactly 50 ms: frame 5 (frames 3 and 4 stay empty)
    (0.185, 699),             # exactly 60 ms, the last edge: ceil(60 / 10) = 6 frames, so the last one, 5
]
SHD_EDGE_FRAMES = frames_of((6, 140), {(0, 0): 2, (0, 1): 1, (1, 2): 2, (2, 2): 1, (5, 60): 1, (5, 139): 1})


def test_onset_grid_reference_is_right_on_hand_cases() -> None:
    t, u = as_arrays(SHD_EDGE_CASES)
    assert [1000 * s - 125 for s in (0.135, 0.145, 0.175, 0.185)] == [10.0, 20.0, 50.0, 60.0]
    np.testing.assert_array_equal(reference_onset_grid(t, u), SHD_EDGE_FRAMES)


def test_onset_grid_edge_cases_match_reference() -> None:
    t, u = as_arrays(SHD_EDGE_CASES)
    np.testing.assert_array_equal(bin_sample(t, u, "onset_grid", 0.01, 5), reference_onset_grid(t, u))
    # one event past the last edge opens a seventh frame, which the 60 ms event then joins
    t2, u2 = as_arrays(SHD_EDGE_CASES + [(0.18501, 0)])
    ours = bin_sample(t2, u2, "onset_grid", 0.01, 5)
    assert ours.shape == (7, 140) and ours[6, 0] == 1 and ours[6, 139] == 1 and ours[5].sum() == 1
    np.testing.assert_array_equal(ours, reference_onset_grid(t2, u2))


def test_onset_grid_random_float16_samples_match_reference() -> None:
    rng = np.random.default_rng(3)
    samples = random_samples(rng, 80, 1.3)
    # onsets well after 0, and last events on the 10 ms edges of the float32 arithmetic
    samples += [(t + np.float16(0.25), u) for t, u in samples[:20]]
    for k in (10, 11, 40, 41, 1024):
        t = np.array([k / 1024, k / 1024, (k + 512) / 1024, (k + 1024) / 1024], dtype=np.float16)
        samples.append((t, np.array([0, 5, 10, 699], dtype=np.uint16)))
    for t, u in samples:
        if len(t) < 2 or t[-1] == t[0]:
            continue
        np.testing.assert_array_equal(bin_sample(t, u, "onset_grid", 0.01, 5), reference_onset_grid(t, u))


def test_onset_grid_float32_times_keep_float32_arithmetic() -> None:
    """In float32 files 1000 t and the differences round in float32 there: events near edges move."""
    rng = np.random.default_rng(5)
    moved = 0
    for _ in range(30):
        t = rng.uniform(0, 1.3, 200)
        t = np.sort(np.concatenate([t, t.min() + np.arange(1, 60) * 0.01])).astype(np.float32)
        u = rng.integers(0, 700, len(t)).astype(np.uint16)
        expected = reference_onset_grid(t, u)
        np.testing.assert_array_equal(bin_sample(t, u, "onset_grid", 0.01, 5), expected)
        in_float64 = reference_onset_grid(t.astype(np.float64), u)
        moved += in_float64.shape != expected.shape or not np.array_equal(in_float64, expected)
    assert moved  # the check above can tell the two arithmetics apart


def test_onset_grid_where_the_reference_has_no_frame() -> None:
    # every event at the onset: the reference makes 0 frames and fails; here one frame holds them all
    t, u = as_arrays([(0.3, 0), (0.3, 4), (0.3, 5)])
    with pytest.raises(IndexError):
        reference_onset_grid(t, u)
    np.testing.assert_array_equal(bin_sample(t, u, "onset_grid", 0.01, 5), frames_of((1, 140), {(0, 0): 2, (0, 1): 1}))
    empty = bin_sample(np.zeros(0), np.zeros(0, np.uint16), "onset_grid", 0.01, 5)
    np.testing.assert_array_equal(empty, np.zeros((1, 140)))


def test_delrec_shd_preset_frames(tmp_path: Path) -> None:
    preset = get_preset("delrec_shd")
    assert preset.dataset_options == {"frames": "onset_grid", "dt": 0.01}
    t, u = as_arrays(SHD_EDGE_CASES)
    rng = np.random.default_rng(4)
    samples = random_samples(rng, 5, 1.3)
    write_heidelberg_h5(tmp_path / "shd_train.h5", [(t.tolist(), u.tolist())], [7], times_dtype=np.float64)
    write_heidelberg_h5(tmp_path / "shd_test.h5", samples, [0, 1, 2, 3, 4])
    train = load_dataset(preset.dataset, tmp_path, "train", **preset.dataset_options)
    assert train.dt == preset.network.dt and train.num_channels == preset.network.input_size
    x, label = train[0]
    assert label == 7
    np.testing.assert_array_equal(x.numpy(), SHD_EDGE_FRAMES)
    test = load_dataset(preset.dataset, tmp_path, "test", **preset.dataset_options)
    for i, (t, u) in enumerate(samples):
        np.testing.assert_array_equal(test[i][0].numpy(), reference_onset_grid(t, u))
    # the earlier conventions differ on these samples: the preset really selects this one
    aligned = SHD(tmp_path, "train")
    assert aligned[0][0].shape != x.shape


def test_onset_grid_cache_is_its_own(tmp_path: Path) -> None:
    t, u = as_arrays(SHD_EDGE_CASES)
    write_heidelberg_h5(tmp_path / "shd_train.h5", [(t.tolist(), u.tolist())], [7], times_dtype=np.float64)
    cache = tmp_path / "cache"
    grid = SHD(tmp_path, "train", frames="grid", cache_dir=cache)
    onset = SHD(tmp_path, "train", frames="onset_grid", cache_dir=cache)
    assert len(list(cache.glob("shd_train-*.pt"))) == 2
    np.testing.assert_array_equal(onset[0][0].numpy(), SHD_EDGE_FRAMES)
    assert grid[0][0].shape[0] == 19  # floor(185 ms / 10 ms) + 1 frames from t = 0
