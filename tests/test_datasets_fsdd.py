"""FSDD: the official split of the real recordings, label parsing, encoding, cache and errors."""

from __future__ import annotations

import math
import shutil
import wave
from collections import Counter
from pathlib import Path

import pytest
import torch

from delaydeploy.checkpoint import load_checkpoint
from delaydeploy.cli import main
from delaydeploy.datasets import FSDD, fsdd, load_dataset
from delaydeploy.datasets.fsdd import fsdd_split_files
from delaydeploy.errors import DatasetError

SAMPLE_FILES = ["0_george_0.wav", "0_george_5.wav", "3_jackson_7.wav", "7_lucas_2.wav", "9_yweweler_49.wav"]


def test_official_split_of_the_real_recordings(fsdd_dir: Path) -> None:
    train, test = fsdd_split_files(fsdd_dir, "train"), fsdd_split_files(fsdd_dir, "test")
    assert (len(train), len(test)) == (2250, 250)  # 5 speakers x 10 digits x 45 / x 5
    for files, per_digit, indices in ((train, 225, set(range(5, 50))), (test, 25, set(range(5)))):
        assert Counter(label for _, label in files) == {d: per_digit for d in range(10)}
        names = [path.name for path, _ in files]
        assert {int(name[:-4].split("_")[2]) for name in names} == indices
        assert Counter(name.split("_")[1] for name in names) == {
            s: 10 * per_digit // 5 for s in ("george", "jackson", "lucas", "nicolas", "yweweler")}
        assert all(label == int(path.name[0]) for path, label in files)
    assert fsdd_split_files(fsdd_dir.parent, "test") == test  # the FSDD folder works too


def test_real_test_split_encoding_is_sparse_and_informative(fsdd_dir: Path) -> None:
    data = FSDD(fsdd_dir, "test")
    assert (len(data), data.num_channels, data.num_classes, data.input_kind, data.dt) == (250, 140, 10, "counts", 0.01)
    counts = torch.cat([x for x, _ in data])
    assert 0.1 < counts.mean() < 1.0 and 0.1 < (counts > 0).float().mean() < 0.7
    assert counts.max() <= 4 and (counts == 4).float().mean() < 0.01
    assert counts.sum(0).min() > 0  # every channel is used


@pytest.fixture
def small_dir(fsdd_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "recordings"
    folder.mkdir()
    for name in SAMPLE_FILES:
        shutil.copyfile(fsdd_dir / name, folder / name)
    return folder


def wav_frames(path: Path) -> int:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes()


def test_encoding_shapes_labels_and_determinism(small_dir: Path) -> None:
    train = load_dataset("fsdd", small_dir, "train")
    test = load_dataset("fsdd", small_dir, "test", channels=64)
    assert [path.name for path, _ in train.files] == ["0_george_5.wav", "3_jackson_7.wav", "9_yweweler_49.wav"]
    assert [label for _, label in test] == [0, 7] and test.num_channels == 64
    for data in (train, test):
        for (x, _), (path, _) in zip(data, data.files):
            assert x.shape == (math.ceil(wav_frames(path) / 80), data.num_channels) and x.dtype == torch.float32
            assert x.min() >= 0 and torch.equal(x, x.round()) and x.sum() > 0
    again = FSDD(small_dir, "train")
    assert all(torch.equal(a[0], b[0]) for a, b in zip(train, again))


def test_cache(small_dir: Path, fsdd_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    first = FSDD(small_dir, "train", cache_dir=cache)
    monkeypatch.setattr(fsdd, "encode_files", lambda *args: pytest.fail("encoded although cached"))
    second = FSDD(small_dir, "train", cache_dir=cache)
    assert all(torch.equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(first, second))
    changed = small_dir / "3_jackson_7.wav"
    shutil.copyfile(fsdd_dir / "3_jackson_8.wav", changed)  # another size and mtime: the cache is stale
    with pytest.raises(pytest.fail.Exception, match="encoded although cached"):
        FSDD(small_dir, "train", cache_dir=cache)
    monkeypatch.undo()
    rebuilt = FSDD(small_dir, "train", cache_dir=cache)
    assert rebuilt[1][0].shape[0] == math.ceil(wav_frames(changed) / 80)
    assert len(list(cache.iterdir())) == 1


def test_errors(small_dir: Path) -> None:
    with pytest.raises(DatasetError, match="FSDD has no validation split"):
        FSDD(small_dir, "valid")
    with pytest.raises(DatasetError, match="FSDD recordings folder not found"):
        FSDD(small_dir / "missing", "train")
    (small_dir / "3_jackson_7.wav").write_bytes(b"RIFF....WAVEfmt ")
    with pytest.raises(DatasetError, match=r"3_jackson_7\.wav: not a readable PCM WAV file"):
        FSDD(small_dir, "train")
    (small_dir / "3_jackson_7.wav").rename(small_dir / "three.wav")
    with pytest.raises(DatasetError, match=r"three\.wav: not an FSDD file name"):
        FSDD(small_dir, "test")


def test_upper_case_extensions_are_recordings_too(tmp_path: Path) -> None:
    for name in ("0_george_1.wav", "3_theo_9.WAV", "7_lucas_2.Wav", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [(path.name, digit) for path, digit in fsdd_split_files(tmp_path, "train")] == [("3_theo_9.WAV", 3)]
    assert [(path.name, digit) for path, digit in fsdd_split_files(tmp_path, "test")] == [
        ("0_george_1.wav", 0), ("7_lucas_2.Wav", 7)]  # recordings 0-4 of each speaker and digit are the test split


def test_fsdd_preset_trains_from_a_wav_folder(small_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "fsdd.pt"
    assert main(["train", "--preset", "fsdd", "--data-dir", str(small_dir), "--epochs", "1", "--quiet",
                 "-o", str(output)]) == 0
    checkpoint = load_checkpoint(output)
    assert checkpoint.preset == "fsdd" and checkpoint.metrics["dataset"] == "fsdd"
    assert checkpoint.config.input_size == 140 and checkpoint.config.num_classes == 10


def test_speaker_independent_split_of_the_real_recordings(fsdd_dir: Path) -> None:
    """``test_speakers``: the test split is every recording of those speakers, training all the others."""
    test = fsdd_split_files(fsdd_dir, "test", ("nicolas",))
    train = fsdd_split_files(fsdd_dir, "train", ("nicolas",))
    assert len(test) == 500 and len(train) == 2000
    assert {path.name.split("_")[1] for path, _ in test} == {"nicolas"}
    assert "nicolas" not in {path.name.split("_")[1] for path, _ in train}
    assert Counter(label for _, label in test) == {d: 50 for d in range(10)}
    two = fsdd_split_files(fsdd_dir, "test", fsdd.parse_speakers("george, lucas"))
    assert {path.name.split("_")[1] for path, _ in two} == {"george", "lucas"} and len(two) == 1000
    assert fsdd.fsdd_speakers(fsdd_dir) == ["george", "jackson", "lucas", "nicolas", "yweweler"]


def test_an_unknown_speaker_names_the_speakers_found(small_dir: Path) -> None:
    with pytest.raises(DatasetError, match=r"no recordings of speaker alice; speakers found: george, jackson, lucas, "
                                           r"yweweler"):
        FSDD(small_dir, "test", test_speakers="george,alice")
    with pytest.raises(DatasetError, match="no FSDD recordings for the train split"):
        FSDD(small_dir, "train", test_speakers="george,jackson,lucas,yweweler")


def test_the_checkpoint_records_the_split_and_report_and_finetune_use_it(small_dir: Path, tmp_path: Path,
                                                                          capsys) -> None:
    output = tmp_path / "fsdd.pt"
    assert main(["train", "--preset", "fsdd", "--data-dir", str(small_dir), "--epochs", "1", "--quiet",
                 "--test-speakers", "george", "-o", str(output)]) == 0
    assert "2 test samples" in capsys.readouterr().out  # george's two recordings
    assert load_checkpoint(output).metrics["dataset_options"]["test_speakers"] == ["george"]
    report = tmp_path / "report"
    assert main(["report", str(output), "--data-dir", str(small_dir), "--lava-samples", "0", "--quiet",
                 "-o", str(report)]) == 0
    assert "(fsdd test split, 2 samples)" in capsys.readouterr().out
    tuned = tmp_path / "ft.pt"
    assert main(["finetune", str(output), "--data-dir", str(small_dir), "--epochs", "1", "--quiet",
                 "--test-speakers", "jackson,lucas", "-o", str(tuned)]) == 0
    assert "test accuracy on 2 samples" in capsys.readouterr().out
    assert load_checkpoint(tuned).metrics["dataset_options"]["test_speakers"] == ["jackson", "lucas"]
    assert main(["train", "--preset", "synthetic", "--epochs", "1", "--test-speakers", "x", "-o",
                 str(tmp_path / "s.pt")]) == 2
    assert "has no option 'test_speakers'" in capsys.readouterr().err
