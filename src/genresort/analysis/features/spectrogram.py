"""The one short-time Fourier transform every feature shares, and musicnn's mel filter bank.

musicnn fixes the analysis (16 kHz, 512-point FFT, hop 256), so the handcrafted features use the same frames
instead of paying for a second transform. Both are plain numpy (equal to librosa's `stft` and `filters.mel`
to float32 precision; a test checks): importing librosa costs half a second and 150 MB that the daemon,
which only needs these two, does without.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000
N_FFT = 512
HOP_LENGTH = 256

_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann


def power_spectrogram(audio: np.ndarray) -> np.ndarray:
    """Mono float32 audio at `SAMPLE_RATE` -> |STFT|^2, shape (N_FFT // 2 + 1, frames).

    Frames are centred (the signal is padded with N_FFT // 2 zeros at both ends), as librosa does.
    """
    padded = np.pad(audio.astype(np.float32, copy=False), N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH]
    spectrum = np.fft.rfft(frames * _WINDOW, axis=1)
    return (spectrum.real**2 + spectrum.imag**2).T.astype(np.float32)


def _hz_to_mel(frequencies: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    frequencies = np.asarray(frequencies, dtype=np.float64)
    linear = frequencies / (200.0 / 3)
    logarithmic = 15.0 + np.log(np.maximum(frequencies, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(frequencies >= 1000.0, logarithmic, linear)


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    linear = mels * (200.0 / 3)
    logarithmic = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mels - 15.0))
    return np.where(mels >= 15.0, logarithmic, linear)


def mel_filters(bands: int) -> np.ndarray:
    """Triangular mel filters (Slaney scale and area normalisation), shape (bands, N_FFT // 2 + 1)."""
    fft_frequencies = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), bands + 2))
    widths = np.diff(edges)
    ramps = edges[:, np.newaxis] - fft_frequencies[np.newaxis, :]
    rising = -ramps[:-2] / widths[:-1, np.newaxis]
    falling = ramps[2:] / widths[1:, np.newaxis]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, np.newaxis]
    return weights.astype(np.float32)
