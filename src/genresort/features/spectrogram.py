"""The one short-time Fourier transform every feature shares.

musicnn fixes the analysis (16 kHz, 512-point FFT, hop 256), so the handcrafted features use the same frames
instead of paying for a second transform.
"""

from __future__ import annotations

import librosa
import numpy as np

SAMPLE_RATE = 16_000
N_FFT = 512
HOP_LENGTH = 256


def power_spectrogram(audio: np.ndarray) -> np.ndarray:
    """Mono float32 audio at `SAMPLE_RATE` -> |STFT|^2, shape (N_FFT // 2 + 1, frames)."""
    spectrum = librosa.stft(audio, n_fft=N_FFT, hop_length=HOP_LENGTH, center=True)
    return (np.abs(spectrum) ** 2).astype(np.float32)
