"""The tutorial's features (zero-crossing rate, spectral centroid, roll-off, MFCC, chroma) and friends.

Each frame-level descriptor is summarised over a clip by its mean and standard deviation; tempo is one
number per clip. All are computed from the shared power spectrogram (see `spectrogram.py`).
"""

from __future__ import annotations

import librosa
import numpy as np

from genresort.analysis.features.spectrogram import HOP_LENGTH, N_FFT, SAMPLE_RATE

MFCC_COUNT = 20
MEL_BANDS = 96


def frame_descriptors(audio: np.ndarray, power: np.ndarray) -> np.ndarray:
    """Mono audio at 16 kHz and its power spectrogram -> descriptors, shape (descriptors, frames)."""
    magnitude = np.sqrt(power)
    frequencies = librosa.fft_frequencies(sr=SAMPLE_RATE, n_fft=N_FFT)
    mel = librosa.feature.melspectrogram(S=power, sr=SAMPLE_RATE, n_mels=MEL_BANDS)
    zero_crossing_rate = librosa.feature.zero_crossing_rate(audio, frame_length=N_FFT, hop_length=HOP_LENGTH)
    rows = [
        zero_crossing_rate[:, : power.shape[1]],
        librosa.feature.spectral_centroid(S=magnitude, freq=frequencies),
        librosa.feature.spectral_bandwidth(S=magnitude, freq=frequencies),
        librosa.feature.spectral_rolloff(S=magnitude, freq=frequencies, roll_percent=0.85),
        librosa.feature.spectral_flatness(S=magnitude),
        librosa.feature.rms(S=magnitude, frame_length=N_FFT),
        librosa.feature.spectral_contrast(S=magnitude, sr=SAMPLE_RATE, n_fft=N_FFT, fmin=100.0, n_bands=5),
        librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=MFCC_COUNT),
        librosa.feature.chroma_stft(S=power, sr=SAMPLE_RATE, n_fft=N_FFT),
    ]
    return np.vstack(rows).astype(np.float32)


def tempo(power: np.ndarray) -> float:
    """Beats per minute from the onset envelope of the mel spectrogram."""
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=SAMPLE_RATE, n_mels=MEL_BANDS))
    envelope = librosa.onset.onset_strength(S=mel_db, sr=SAMPLE_RATE, hop_length=HOP_LENGTH)
    return float(librosa.feature.tempo(onset_envelope=envelope, sr=SAMPLE_RATE, hop_length=HOP_LENGTH)[0])


def handcrafted_features(windows: list[np.ndarray], powers: list[np.ndarray]) -> np.ndarray:
    """Analysis windows (audio and power spectrogram each) -> one vector: mean and std per descriptor, tempo."""
    descriptors = np.hstack([frame_descriptors(audio, power) for audio, power in zip(windows, powers, strict=True)])
    tempos = [tempo(power) for power in powers]
    return np.concatenate([descriptors.mean(axis=1), descriptors.std(axis=1), [np.median(tempos)]]).astype(np.float32)
