"""From decoded analysis windows to the features of one clip, and from those to a classifier's input vector."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from genresort.analysis.features.embedding import MusicnnNetwork, log_mel_patches, summarise_outputs
from genresort.analysis.features.spectrogram import power_spectrogram


class FeatureSet(StrEnum):
    HANDCRAFTED = "handcrafted"  # the tutorial's features and friends
    EMBEDDING = "embedding"  # the musicnn networks' outputs
    COMBINED = "combined"  # both side by side


@dataclass(frozen=True)
class ClipFeatures:
    """What a clip's analysis produced, before summarising: kept whole so a feature cache can serve
    many classifier experiments."""

    handcrafted: np.ndarray  # (descriptors,)
    network_outputs: dict[str, dict[str, np.ndarray]]  # network name -> output name -> (patches, width)
    # how many patches each analysis window gave, in order (what an explanation splits by); empty for a clip read
    # from the feature cache, which does not keep it
    window_patch_counts: tuple[int, ...] = ()


#: Every clip is heard at the same loudness (RMS over its windows, about -20 dBFS): the networks' log
#: compression is not gain-invariant, and a quiet recording (-20 dB) changed half of the model's answers.
TARGET_RMS = 0.1


def normalise_loudness(windows: list[np.ndarray]) -> list[np.ndarray]:
    """Scale all windows of a clip by one gain so that their joint RMS is TARGET_RMS."""
    energy = sum(float(np.dot(window, window)) for window in windows)
    count = sum(len(window) for window in windows)
    rms = np.sqrt(energy / max(count, 1))
    gain = TARGET_RMS / rms if rms > 0 else 1.0
    return [(window * gain).astype(np.float32) for window in windows]


def extract_clip_features(
    windows: list[np.ndarray], networks: list[MusicnnNetwork], with_handcrafted: bool = True
) -> ClipFeatures:
    """Mono 16 kHz analysis windows -> handcrafted descriptors (unless not wanted: they cost a third of the
    time and the shipped model does not use them) and every network's per-patch outputs."""
    windows = normalise_loudness(windows)
    powers = [power_spectrogram(window) for window in windows]
    per_window = [log_mel_patches(power) for power in powers]
    patches = np.concatenate(per_window)
    handcrafted = np.zeros(0, dtype=np.float32)
    if with_handcrafted:
        from genresort.analysis.features.handcrafted import handcrafted_features  # imports librosa: only when needed

        handcrafted = handcrafted_features(windows, powers)
    return ClipFeatures(
        handcrafted=handcrafted,
        network_outputs={network.name: network.run(patches) for network in networks},
        window_patch_counts=tuple(len(window) for window in per_window),
    )


#: Parts of a clip the classifier also learns from, as (windows, patches per window): a long track is heard
#: in a few windows, and a model that only ever saw whole clips loses 8 points of accuracy on such input.
AUGMENTATION_WINDOWS = ((4, 2), (3, 2), (2, 2))


def feature_vector(
    clip: ClipFeatures, feature_set: FeatureSet, network_names: list[str], patches: np.ndarray | None = None
) -> np.ndarray:
    """The classifier's input for one clip, or for some of its patches (indices in `patches`)."""
    parts = []
    if feature_set in (FeatureSet.HANDCRAFTED, FeatureSet.COMBINED):
        parts.append(clip.handcrafted)
    if feature_set in (FeatureSet.EMBEDDING, FeatureSet.COMBINED):
        for name in network_names:
            outputs = clip.network_outputs[name]
            if patches is not None:
                outputs = {output: values[patches] for output, values in outputs.items()}
            parts.append(summarise_outputs(outputs))
    return np.concatenate(parts).astype(np.float32)


def taggram_mean_columns(clip: ClipFeatures, network_names: list[str], network: str) -> np.ndarray:
    """The entries of the embedding vector (`feature_vector` of FeatureSet.EMBEDDING) that hold `network`'s tag
    probabilities averaged over the clip: its part of the vector ends with the taggram's mean, then its spread."""
    start = 0
    for name in network_names:
        outputs = clip.network_outputs[name]
        end = start + len(summarise_outputs(outputs))
        if name == network:
            width = outputs["taggram"].shape[1]
            return np.arange(end - 2 * width, end - width)
        start = end
    raise ValueError(f"{network} is not among the networks {list(network_names)}")


def window_patches(patch_count: int, windows: int, patches_per_window: int) -> np.ndarray | None:
    """Indices of the patches that `windows` windows spread from 10% to 90% of a clip would hear; None when
    the clip is too short to differ from the whole."""
    if patch_count <= windows * patches_per_window:
        return None
    starts = np.linspace(0.1 * patch_count, 0.9 * patch_count - patches_per_window, windows).round().astype(int)
    return np.unique(np.concatenate([np.arange(start, start + patches_per_window) for start in starts]))


def window_vectors(clip: ClipFeatures, feature_set: FeatureSet, network_names: list[str]) -> list[np.ndarray]:
    """Vectors of the parts of a clip listed in AUGMENTATION_WINDOWS (the handcrafted part stays whole-clip)."""
    if feature_set == FeatureSet.HANDCRAFTED or not network_names:
        return []
    patch_count = len(next(iter(clip.network_outputs[network_names[0]].values())))
    selections = [window_patches(patch_count, *windows) for windows in AUGMENTATION_WINDOWS]
    return [feature_vector(clip, feature_set, network_names, patches) for patches in selections if patches is not None]
