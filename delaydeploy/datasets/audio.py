"""Audio front ends, written with numpy and torch ops only (no torchaudio).

* :func:`read_wav` reads PCM WAV files with Python's :mod:`wave` module.
* :func:`resample`, :func:`power_spectrogram`, :func:`mel_filterbank` and
  :func:`amplitude_to_db` reproduce the torchaudio defaults (``Resample``, ``Spectrogram``,
  ``melscale_fbanks``, ``AmplitudeToDB``) that the published DCLS GSC models were trained
  with; :func:`gsc_features` chains them into that front end.
* :class:`CochleaEncoder` turns any audio into spike counts per 10 ms frame, for datasets
  that come as audio but are to be fed to a spiking network (FSDD).
"""

from __future__ import annotations

import math
import os
import wave
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import DTypeLike

from delaydeploy.errors import DatasetError

_PCM_DTYPES: dict[int, DTypeLike] = {1: np.uint8, 2: np.dtype("<i2"), 4: np.dtype("<i4")}


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a PCM WAV file: float32 samples in ``[-1, 1)`` (channels averaged) and the rate.

    Raises :class:`DatasetError` naming the file if it is missing, not a PCM WAV,
    truncated or empty.
    """
    try:
        with wave.open(os.fspath(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            expected = wav.getnframes()
            raw = wav.readframes(expected)
    except (wave.Error, EOFError, OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a readable PCM WAV file ({exc})") from exc
    frames = len(raw) // (width * channels)
    if frames != expected or len(raw) % (width * channels):
        raise DatasetError(f"{path}: truncated WAV file (header says {expected} frames, found {frames})")
    if frames == 0:
        raise DatasetError(f"{path}: WAV file holds no samples")
    if width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8
        samples = ints / float(1 << 23)
    elif width == 1:
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    elif width in _PCM_DTYPES:
        samples = np.frombuffer(raw, dtype=_PCM_DTYPES[width]) / float(1 << (8 * width - 1))
    else:
        raise DatasetError(f"{path}: unsupported sample width of {width} bytes")
    return samples.reshape(frames, channels).mean(axis=1).astype(np.float32), rate


def resample(
    waveform: torch.Tensor,
    orig_freq: int,
    new_freq: int,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
) -> torch.Tensor:
    """Band-limited resampling along the last axis, as torchaudio's ``Resample`` default.

    Windowed sinc (Hann window) with cutoff ``rolloff * min(orig, new) / 2`` and
    ``lowpass_filter_width`` zero crossings each side; the kernel is built in float64 and
    applied in the waveform's dtype. Output length is ``ceil(len * new / orig)``.
    """
    if orig_freq == new_freq:
        return waveform
    gcd = math.gcd(int(orig_freq), int(new_freq))
    orig, new = int(orig_freq) // gcd, int(new_freq) // gcd
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base)
    # t[p, k]: distance (in input periods x base) from output phase p to input tap k.
    taps = torch.arange(-width, width + orig, dtype=torch.float64) / orig
    t = (torch.arange(0, -new, -1, dtype=torch.float64)[:, None] / new + taps[None, :]) * base
    t = t.clamp(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t)
    kernel = (sinc * window * (base / orig)).to(waveform.dtype)[:, None, :]

    shape = waveform.shape
    length = shape[-1]
    x = F.pad(waveform.reshape(-1, 1, length), (width, width + orig))
    y = F.conv1d(x, kernel, stride=orig).transpose(1, 2).reshape(x.shape[0], -1)
    return y[:, : -(-new * length // orig)].reshape(*shape[:-1], -1)


def power_spectrogram(waveform: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """``|STFT|^2`` with a periodic Hann window of ``n_fft``, centred with reflect padding.

    Returns ``[..., n_fft // 2 + 1, frames]`` (torchaudio ``Spectrogram(power=2)`` layout).
    """
    window = torch.hann_window(n_fft, dtype=waveform.dtype, device=waveform.device)
    spec = torch.stft(waveform, n_fft, hop_length, window=window, center=True,
                      pad_mode="reflect", return_complex=True)
    return spec.abs().pow(2)


def hz_to_mel(freq: float | np.ndarray) -> float | np.ndarray:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(freq) / 700.0)


def mel_to_hz(mel: float | np.ndarray) -> float | np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


def mel_filterbank(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> torch.Tensor:
    """Triangular HTK-mel filterbank ``[n_freqs, n_mels]``, unnormalised (torchaudio defaults).

    Bands that lie above the Nyquist frequency are all zero, as in ``melscale_fbanks``.
    """
    freqs = np.linspace(0.0, sample_rate // 2, n_freqs)
    edges = np.asarray(mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2)))
    widths = np.diff(edges)
    slopes = edges[None, :] - freqs[:, None]
    rising = -slopes[:, :-2] / widths[:-1]
    falling = slopes[:, 2:] / widths[1:]
    return torch.from_numpy(np.maximum(0.0, np.minimum(rising, falling)))


def amplitude_to_db(power: torch.Tensor, amin: float = 1e-10) -> torch.Tensor:
    """``10 * log10(max(power, amin))`` (torchaudio ``AmplitudeToDB`` on power, no top_db)."""
    return 10.0 * torch.log10(torch.clamp(power, min=amin))


GSC_SAMPLE_RATE = 8000
GSC_N_FFT = 256
GSC_HOP = 80
GSC_MELS = 140
GSC_F_MIN = 50.0
GSC_F_MAX = 14000.0


def gsc_features(waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """The published DCLS GSC front end: log-mel frames ``[101, 140]`` of a 1-D waveform.

    Pad with zeros or cut to 1 s, resample to 8 kHz, power spectrogram (n_fft 256, hop 80),
    140 HTK mel bands over 50 Hz - 14 kHz (bands above 4 kHz stay zero), then dB.
    Computed in the waveform's dtype.
    """
    one_second = int(sample_rate)
    waveform = F.pad(waveform[:one_second], (0, max(0, one_second - waveform.shape[-1])))
    waveform = resample(waveform, sample_rate, GSC_SAMPLE_RATE)
    power = power_spectrogram(waveform, GSC_N_FFT, GSC_HOP)
    return amplitude_to_db(power.transpose(-1, -2) @ _gsc_filterbank(waveform.dtype))


@lru_cache(maxsize=4)
def _gsc_filterbank(dtype: torch.dtype) -> torch.Tensor:
    """The GSC mel filterbank ``[129, 140]``, built once per dtype."""
    return mel_filterbank(GSC_N_FFT // 2 + 1, GSC_F_MIN, GSC_F_MAX, GSC_MELS, GSC_SAMPLE_RATE).to(dtype)


def erb_rate(freq: np.ndarray | float) -> np.ndarray:
    """Glasberg & Moore ERB-rate scale (cochlear place, in ERBs)."""
    return 21.4 * np.log10(1.0 + 0.00437 * np.asarray(freq))


def erb_rate_to_hz(erbs: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`erb_rate`."""
    return (10.0 ** (np.asarray(erbs) / 21.4) - 1.0) / 0.00437


@lru_cache(maxsize=16)
def cochlea_filterbank(sample_rate: int, n_fft: int, channels: int, f_min: float, f_max: float) -> np.ndarray:
    """Power weights ``[n_fft // 2 + 1, channels]`` of gammatone-like band-pass channels.

    Centre frequencies are evenly spaced on the ERB-rate scale; each channel has the
    power response of a 4th-order gammatone, ``(1 + ((f - fc) / b)^2)^-4`` with
    ``b = 1.019 ERB(fc)``, normalised to unit sum so channels are comparable in level.
    """
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    centres = erb_rate_to_hz(np.linspace(erb_rate(f_min), erb_rate(f_max), channels))
    bandwidths = 1.019 * 24.7 * (4.37 * centres / 1000.0 + 1.0)
    weights = (1.0 + ((freqs[:, None] - centres[None, :]) / bandwidths[None, :]) ** 2) ** -4
    weights /= weights.sum(axis=0, keepdims=True)
    weights.flags.writeable = False
    return weights


@dataclass(frozen=True)
class CochleaEncoder:
    """Deterministic cochlea-like spike encoder: audio -> spike COUNTS ``[T, channels]``.

    Per ``dt`` frame: pre-emphasis, a ``window`` Hann STFT, gammatone-like ERB-spaced
    channels, band level in dB. Levels are normalised per utterance to the top
    ``dynamic_range_db`` below its loudest band (levels ``silence_db`` under a full-scale
    sine never count), which keeps the spectral shape and removes the recording gain.
    Each channel drives a non-leaky integrate-and-fire unit (threshold 1, soft reset) with

        drive = max_spikes * clip(sustained * level^2 + onset * max(level - level_prev, 0), 0, 1)

    so a frame carries at most ``max_spikes`` spikes, loud bands fire steadily, quiet ones
    sparsely, and rises in level (onsets) are emphasised. ``T = ceil(samples / (dt * rate))``.
    """

    channels: int = 140
    dt: float = 0.01
    max_spikes: int = 4
    f_min: float = 100.0
    f_max: float | None = None
    window: float = 0.025
    pre_emphasis: float = 0.97
    dynamic_range_db: float = 50.0
    silence_db: float = -100.0
    sustained: float = 0.5
    onset: float = 0.75

    def __post_init__(self) -> None:
        if self.channels < 1 or self.max_spikes < 1 or not self.dt > 0 or not self.window >= self.dt:
            raise ValueError(f"invalid CochleaEncoder settings: {self}")

    def __call__(self, waveform: np.ndarray, sample_rate: int) -> torch.Tensor:
        """Encode a 1-D waveform (floats in ``[-1, 1]``) sampled at ``sample_rate`` Hz."""
        f_max = 0.95 * sample_rate / 2 if self.f_max is None else self.f_max
        if not 0 < self.f_min < f_max <= sample_rate / 2:
            raise ValueError(f"band {self.f_min}..{f_max} Hz does not fit a {sample_rate} Hz recording")
        hop = int(round(sample_rate * self.dt))
        length = int(round(sample_rate * self.window))
        n_fft = 1 << math.ceil(math.log2(2 * length))
        num_frames = -(-len(waveform) // hop)
        if num_frames == 0:
            return torch.zeros(0, self.channels)

        x = np.asarray(waveform, dtype=np.float64)
        x = np.concatenate([x[:1], x[1:] - self.pre_emphasis * x[:-1]])
        left = length // 2 - hop // 2  # window centred on the middle of its frame
        x = np.pad(x, (left, num_frames * hop + length))
        window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)
        segments = np.lib.stride_tricks.sliding_window_view(x, length)[::hop][:num_frames] * window
        power = np.abs(np.fft.rfft(segments, n_fft, axis=1)) ** 2
        bands = power @ cochlea_filterbank(sample_rate, n_fft, self.channels, self.f_min, f_max)

        full_scale_db = 20.0 * np.log10(window.sum() / 2.0)
        floor_db = full_scale_db + self.silence_db
        level_db = 10.0 * np.log10(np.maximum(bands, 10.0 ** (floor_db / 10.0)))
        base_db = max(level_db.max() - self.dynamic_range_db, floor_db)
        level = np.clip((level_db - base_db) / self.dynamic_range_db, 0.0, 1.0)
        rise = np.maximum(np.diff(level, axis=0, prepend=0.0), 0.0)
        drive = self.max_spikes * np.clip(self.sustained * level**2 + self.onset * rise, 0.0, 1.0)
        fired = np.floor(np.cumsum(drive, axis=0))
        return torch.from_numpy(np.diff(fired, axis=0, prepend=0.0).astype(np.float32))
