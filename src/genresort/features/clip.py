"""From decoded analysis windows to the features of one clip, and from those to a classifier's input vector."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from genresort.features.embedding import MusicnnNetwork, log_mel_patches, summarise_outputs
from genresort.features.handcrafted import handcrafted_features
from genresort.features.spectrogram import power_spectrogram


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


def extract_clip_features(
    windows: list[np.ndarray], networks: list[MusicnnNetwork], with_handcrafted: bool = True
) -> ClipFeatures:
    """Mono 16 kHz analysis windows -> handcrafted descriptors (unless not wanted: they cost a third of the
    time and the shipped model does not use them) and every network's per-patch outputs."""
    powers = [power_spectrogram(window) for window in windows]
    patches = np.concatenate([log_mel_patches(power) for power in powers])
    return ClipFeatures(
        handcrafted=handcrafted_features(windows, powers) if with_handcrafted else np.zeros(0, dtype=np.float32),
        network_outputs={network.name: network.run(patches) for network in networks},
    )


def feature_vector(clip: ClipFeatures, feature_set: FeatureSet, network_names: list[str]) -> np.ndarray:
    """The classifier's input for one clip."""
    parts = []
    if feature_set in (FeatureSet.HANDCRAFTED, FeatureSet.COMBINED):
        parts.append(clip.handcrafted)
    if feature_set in (FeatureSet.EMBEDDING, FeatureSet.COMBINED):
        parts.extend(summarise_outputs(clip.network_outputs[name]) for name in network_names)
    return np.concatenate(parts).astype(np.float32)
