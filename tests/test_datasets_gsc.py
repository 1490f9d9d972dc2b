"""GSC folder layout, split membership, labels and the front end on a small fake folder."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from test_audio import numpy_gsc_features

from delaydeploy.datasets import GSC, GSC_LABELS, load_dataset, pad_collate
from delaydeploy.errors import DatasetError

FILES = {
    "bed/aaaa_nohash_0.wav": 0.6,
    "bed/bbbb_nohash_0.wav": 1.0,
    "yes/aaaa_nohash_0.wav": 1.3,
    "yes/cccc_nohash_1.wav": 0.8,
    "zero/dddd_nohash_0.wav": 1.0,
    "_background_noise_/noise.wav": 2.0,
    "unknown_word/eeee_nohash_0.wav": 1.0,
}


def samples(name: str, seconds: float) -> np.ndarray:
    """A deterministic, file-specific 16-bit signal."""
    rng = np.random.default_rng(sum(map(ord, name)))
    t = np.arange(int(16000 * seconds)) / 16000
    x = 0.4 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) + 0.02 * rng.standard_normal(len(t))
    return np.round(x * 32767).astype("<i2")


def write_wav(path: Path, data: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(data.tobytes())


@pytest.fixture
def gsc_dir(tmp_path: Path) -> Path:
    for name, seconds in FILES.items():
        write_wav(tmp_path / name, samples(name, seconds))
    (tmp_path / "validation_list.txt").write_text("bed/bbbb_nohash_0.wav\n")
    (tmp_path / "testing_list.txt").write_text("yes/cccc_nohash_1.wav\nzero/dddd_nohash_0.wav\n\n")
    return tmp_path


def test_split_membership_and_labels(gsc_dir: Path) -> None:
    def members(split: str) -> list[tuple[str, int]]:
        return [(path.relative_to(gsc_dir).as_posix(), label) for path, label in GSC(gsc_dir, split).files]

    assert members("train") == [("bed/aaaa_nohash_0.wav", 1), ("yes/aaaa_nohash_0.wav", 33)]
    assert members("valid") == [("bed/bbbb_nohash_0.wav", 1)]
    assert members("test") == [("yes/cccc_nohash_1.wav", 33), ("zero/dddd_nohash_0.wav", 34)]
    assert len(GSC_LABELS) == 35 and GSC_LABELS[0] == "backward" and GSC_LABELS.index("sheila") == 24


def test_items_are_the_published_front_end(gsc_dir: Path) -> None:
    data = load_dataset("gsc", gsc_dir, "train")
    assert (data.num_channels, data.num_classes, data.input_kind, data.dt) == (140, 35, "analog", 0.01)
    for (x, label), name in zip(data, ["bed/aaaa_nohash_0.wav", "yes/aaaa_nohash_0.wav"]):
        assert x.shape == (101, 140) and x.dtype == torch.float32
        assert label == GSC_LABELS.index(name.split("/")[0])
        expected = numpy_gsc_features(samples(name, FILES[name]) / 32768.0, 16000)
        np.testing.assert_allclose(x.numpy(), expected, atol=2e-3)  # float32 against float64
        assert (x.numpy()[:, -1] == -100.0).all()  # mel bands above 4 kHz are empty
    batch, labels, lengths = pad_collate([data[0], data[1]])
    assert batch.shape == (101, 2, 140) and labels.tolist() == [1, 33] and lengths.tolist() == [101, 101]


def test_long_files_are_cut_to_one_second(gsc_dir: Path) -> None:
    long = samples("yes/aaaa_nohash_0.wav", 1.3)
    write_wav(gsc_dir / "yes" / "aaaa_nohash_0.wav", long[:16000])
    cut = GSC(gsc_dir, "train")[1][0]
    write_wav(gsc_dir / "yes" / "aaaa_nohash_0.wav", long)
    assert torch.equal(GSC(gsc_dir, "train")[1][0], cut)


def test_errors(gsc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(DatasetError, match="no WAV files in any of the 35 GSC label folders"):
        GSC(empty, "train")
    with pytest.raises(DatasetError, match="GSC folder not found"):
        GSC(empty / "missing", "train")
    (gsc_dir / "testing_list.txt").rename(gsc_dir / "testing.txt")
    with pytest.raises(DatasetError, match=r"testing_list\.txt: list file not found"):
        GSC(gsc_dir, "train")
    (gsc_dir / "testing_list.txt").write_text("yes/gone_nohash_0.wav\n")
    with pytest.raises(DatasetError, match="lists 'yes/gone_nohash_0.wav', which is not in"):
        GSC(gsc_dir, "test")
    (gsc_dir / "testing_list.txt").write_text("")
    (gsc_dir / "bed" / "aaaa_nohash_0.wav").write_bytes(b"RIFF\x00\x00")
    data = GSC(gsc_dir, "train")
    with pytest.raises(DatasetError, match=r"bed/aaaa_nohash_0\.wav: not a readable PCM WAV file"):
        data[0]
    with pytest.raises(DatasetError, match="unknown split 'dev'"):
        GSC(gsc_dir, "dev")
