"""Audio front ends against independent numpy computations; WAV reading; the cochlea encoder."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from delaydeploy.datasets.audio import (
    CochleaEncoder,
    erb_rate,
    erb_rate_to_hz,
    gsc_features,
    mel_filterbank,
    power_spectrogram,
    read_wav,
    resample,
)
from delaydeploy.errors import DatasetError


def numpy_resample(x: np.ndarray, orig: int, new: int, width: int = 6, rolloff: float = 0.99) -> np.ndarray:
    """Hann-windowed sinc interpolation written from its definition, output sample by sample:
    ``y[m] = sum_i x[i] (c / orig) h(c (i / orig - m / new))`` with ``c = rolloff * min(orig, new)``
    in units of the reduced rates, ``h(u) = sinc(u) cos^2(pi u / 2 width)`` for ``|u| <= width``."""
    g = math.gcd(orig, new)
    orig, new = orig // g, new // g
    cutoff = rolloff * min(orig, new)
    out = np.arange(-(-len(x) * new // orig))
    reach = int(np.ceil(width * orig / cutoff)) + orig + 1
    taps = (out * orig) // new
    i = taps[:, None] + np.arange(-reach, reach + 1)[None, :]
    u = cutoff * (i / orig - out[:, None] / new)
    h = np.where(np.abs(u) <= width, np.sinc(u) * np.cos(np.pi * u / (2 * width)) ** 2, 0.0) * cutoff / orig
    inside = (i >= 0) & (i < len(x))
    return (h * np.where(inside, x[np.clip(i, 0, len(x) - 1)], 0.0)).sum(axis=1)


def numpy_power_spectrogram(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Centred (reflect-padded) periodic-Hann STFT power, ``[frames, n_fft // 2 + 1]``."""
    padded = np.pad(x, n_fft // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    starts = range(0, len(padded) - n_fft + 1, hop)
    return np.array([np.abs(np.fft.rfft(padded[s:s + n_fft] * window)) ** 2 for s in starts])


def numpy_mel_matrix(n_freqs: int, f_min: float, f_max: float, n_mels: int, rate: int) -> np.ndarray:
    """Triangles between consecutive HTK-mel points, band by band."""
    mel = lambda f: 2595.0 * math.log10(1.0 + f / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)  # noqa: E731
    points = [hz(mel(f_min) + k * (mel(f_max) - mel(f_min)) / (n_mels + 1)) for k in range(n_mels + 2)]
    freqs = np.linspace(0, rate // 2, n_freqs)
    matrix = np.zeros((n_freqs, n_mels))
    for b in range(n_mels):
        lo, centre, hi = points[b:b + 3]
        for k, f in enumerate(freqs):
            matrix[k, b] = max(0.0, min((f - lo) / (centre - lo), (hi - f) / (hi - centre)))
    return matrix


def numpy_gsc_features(x: np.ndarray, rate: int) -> np.ndarray:
    x = np.pad(x[:rate], (0, max(0, rate - len(x))))
    power = numpy_power_spectrogram(numpy_resample(x, rate, 8000), 256, 80)
    return 10 * np.log10(np.maximum(power @ numpy_mel_matrix(129, 50.0, 14000.0, 140, 8000), 1e-10))


def test_resample_matches_windowed_sinc_definition() -> None:
    x = np.random.default_rng(0).standard_normal(1601)
    for orig, new in ((16000, 8000), (8000, 16000), (16000, 11025), (44100, 16000)):
        got = resample(torch.from_numpy(x), orig, new).numpy()
        np.testing.assert_allclose(got, numpy_resample(x, orig, new), atol=1e-10)
    batched = resample(torch.from_numpy(np.stack([x, -x])).float(), 16000, 8000)
    assert batched.shape == (2, 801) and batched.dtype == torch.float32
    assert torch.allclose(batched[1], -batched[0])


def test_resample_preserves_a_sine() -> None:
    n = np.arange(16000)
    sine = torch.from_numpy(np.sin(2 * np.pi * 440 * n / 16000))
    y = resample(sine, 16000, 8000).numpy()
    assert y.shape == (8000,)
    spectrum = np.abs(np.fft.rfft(y))
    assert np.argmax(spectrum) * 8000 / len(y) == pytest.approx(440, abs=1)
    middle = slice(100, 7900)  # away from the zero-padded edges
    np.testing.assert_allclose(y[middle], np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)[middle], atol=5e-3)
    assert np.abs(y[middle]).max() == pytest.approx(1.0, abs=5e-3)


def test_power_spectrogram_and_mel_filterbank() -> None:
    x = np.random.default_rng(1).standard_normal(8000)
    spec = power_spectrogram(torch.from_numpy(x), 256, 80).numpy()
    assert spec.shape == (129, 101)
    np.testing.assert_allclose(spec.T, numpy_power_spectrogram(x, 256, 80), rtol=1e-9, atol=1e-9)
    fb = mel_filterbank(129, 50.0, 14000.0, 140, 8000).numpy()
    np.testing.assert_allclose(fb, numpy_mel_matrix(129, 50.0, 14000.0, 140, 8000), atol=1e-12)
    zero = ~fb.any(axis=0)
    assert zero[-1] and not zero[0] and zero[np.argmax(zero):].all()  # bands above 4 kHz are zero


@pytest.mark.parametrize("seconds", [0.6, 1.3])
def test_gsc_front_end_matches_numpy(seconds: float) -> None:
    """Pad/cut, resample, spectrogram, mel, dB: float64 run against numpy to 1e-4 dB."""
    rng = np.random.default_rng(2)
    t = np.arange(int(16000 * seconds)) / 16000
    x = 0.3 * np.sin(2 * np.pi * 300 * t) * np.exp(-3 * t) + 0.01 * rng.standard_normal(len(t))
    expected = numpy_gsc_features(x, 16000)
    got = gsc_features(torch.from_numpy(x), 16000)
    assert got.shape == (101, 140) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-4)
    single = gsc_features(torch.from_numpy(x).float(), 16000)
    assert single.dtype == torch.float32
    np.testing.assert_allclose(single.numpy(), expected, atol=2e-3)


def write_wav(path: Path, data: bytes, width: int, channels: int = 1, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(data)


def test_read_wav_sample_formats(tmp_path: Path) -> None:
    values = np.array([0, 1, -1, 12345, -32768, 32767], dtype=np.int64)
    write_wav(tmp_path / "16.wav", values.astype("<i2").tobytes(), 2, rate=16000)
    x, rate = read_wav(tmp_path / "16.wav")
    assert rate == 16000 and x.dtype == np.float32
    np.testing.assert_array_equal(x, values / 32768.0)

    write_wav(tmp_path / "8.wav", bytes([128, 0, 255]), 1)
    np.testing.assert_array_equal(read_wav(tmp_path / "8.wav")[0], [0.0, -1.0, 127 / 128])

    v24 = np.array([0, 1, -1, 2**23 - 1, -(2**23)])
    raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in v24)
    write_wav(tmp_path / "24.wav", raw, 3)
    np.testing.assert_allclose(read_wav(tmp_path / "24.wav")[0], v24 / 2**23, rtol=1e-7)

    write_wav(tmp_path / "32.wav", np.array([2**30, -(2**31)], dtype="<i4").tobytes(), 4)
    np.testing.assert_array_equal(read_wav(tmp_path / "32.wav")[0], [0.5, -1.0])

    stereo = np.array([1000, 3000, -2000, 0], dtype="<i2").tobytes()
    write_wav(tmp_path / "stereo.wav", stereo, 2, channels=2)
    np.testing.assert_allclose(read_wav(tmp_path / "stereo.wav")[0], [2000 / 32768, -1000 / 32768])


def test_read_wav_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="missing.wav: not a readable PCM WAV file"):
        read_wav(tmp_path / "missing.wav")
    (tmp_path / "text.wav").write_text("hello")
    with pytest.raises(DatasetError, match="text.wav: not a readable PCM WAV file"):
        read_wav(tmp_path / "text.wav")
    write_wav(tmp_path / "float.wav", np.zeros(4, dtype="<i2").tobytes(), 2)
    data = bytearray((tmp_path / "float.wav").read_bytes())
    data[20:22] = (3).to_bytes(2, "little")  # format tag 3: IEEE float, not PCM
    (tmp_path / "float.wav").write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="float.wav: not a readable PCM WAV file"):
        read_wav(tmp_path / "float.wav")
    write_wav(tmp_path / "cut.wav", np.zeros(100, dtype="<i2").tobytes(), 2)
    (tmp_path / "cut.wav").write_bytes((tmp_path / "cut.wav").read_bytes()[:-50])
    with pytest.raises(DatasetError, match="cut.wav: truncated WAV file"):
        read_wav(tmp_path / "cut.wav")
    write_wav(tmp_path / "empty.wav", b"", 2)
    with pytest.raises(DatasetError, match="empty.wav: WAV file holds no samples"):
        read_wav(tmp_path / "empty.wav")


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def test_encoder_output_contract() -> None:
    encoder = CochleaEncoder()
    x = tone(440, 0.437, 8000) + 0.05 * np.random.default_rng(3).standard_normal(3496).astype(np.float32)
    counts = encoder(x, 8000)
    assert counts.shape == (math.ceil(3496 / 80), 140) and counts.dtype == torch.float32
    assert counts.min() >= 0 and counts.max() <= encoder.max_spikes
    assert torch.equal(counts, counts.round())
    assert torch.equal(counts, CochleaEncoder()(x.copy(), 8000))  # deterministic
    assert CochleaEncoder(channels=32)(x, 16000).shape == (math.ceil(3496 / 160), 32)  # any rate
    assert not CochleaEncoder()(np.zeros(800, dtype=np.float32), 8000).any()  # silence never fires
    assert CochleaEncoder()(np.zeros(0, dtype=np.float32), 8000).shape == (0, 140)


def test_encoder_is_frequency_selective_and_emphasises_onsets() -> None:
    encoder = CochleaEncoder()
    counts = encoder(tone(500, 0.5, 8000), 8000)
    centres = erb_rate_to_hz(np.linspace(erb_rate(100.0), erb_rate(3800.0), 140))
    near, far = np.argmin(np.abs(centres - 500)), np.argmin(np.abs(centres - 3000))
    per_channel = counts.sum(0)
    assert abs(int(per_channel.argmax()) - near) <= 2
    assert per_channel[near] > 10 * per_channel[far]
    assert counts[0, near] > counts[10:40, near].mean()  # onset burst above the sustained rate
    quiet = encoder(tone(500, 0.5, 8000, amplitude=0.05), 8000)  # the recording gain is normalised away
    assert (quiet - counts).abs().sum() <= 0.01 * counts.sum()
