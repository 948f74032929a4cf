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
    handcrafted = np.zeros(0, dtype=np.float32)
    if with_handcrafted:
        from genresort.analysis.features.handcrafted import handcrafted_features  # imports librosa: only when needed

        handcrafted = handcrafted_features(windows, powers)
    return ClipFeatures(
        handcrafted=handcrafted,
        network_outputs=run_networks(networks, np.concatenate(per_window)),
        window_patch_counts=tuple(len(window) for window in per_window),
    )


def clip_patches(windows: list[np.ndarray]) -> np.ndarray:
    """Mono 16 kHz analysis windows -> the networks' input patches of all of them, in order: what the networks hear
    of a clip when the handcrafted descriptors are not wanted."""
    return np.concatenate([log_mel_patches(power_spectrogram(window)) for window in normalise_loudness(windows)])


def run_networks(networks: list[MusicnnNetwork], patches: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    return {network.name: network.run(patches) for network in networks}


def network_clip(network_outputs: dict[str, dict[str, np.ndarray]]) -> ClipFeatures:
    """A clip the networks heard, without the handcrafted descriptors (which the shipped model does not use)."""
    return ClipFeatures(np.zeros(0, dtype=np.float32), network_outputs)


def joined_outputs(
    first: dict[str, dict[str, np.ndarray]], first_patches: np.ndarray, rest: dict[str, dict[str, np.ndarray]]
) -> dict[str, dict[str, np.ndarray]]:
    """The network outputs of a clip's `first_patches` and of the rest of its patches, as one in the patches' order:
    the clip's vector then equals, to the last bit, the one of hearing all patches at once (float sums depend on
    their order)."""
    first_count = len(first_patches)
    rest_count = len(next(iter(next(iter(rest.values())).values())))
    others = np.delete(np.arange(first_count + rest_count), first_patches)
    order = np.argsort(np.concatenate([first_patches, others]))
    return {
        network: {output: np.concatenate([values, rest[network][output]])[order] for output, values in outputs.items()}
        for network, outputs in first.items()
    }


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


def window_places(patch_count: int, windows: int, patches_per_window: int) -> list[np.ndarray] | None:
    """The patches of each of `windows` windows spread from 10% to 90% of a clip (indices); None when the clip is
    too short to differ from the whole."""
    if patch_count <= windows * patches_per_window:
        return None
    starts = np.linspace(0.1 * patch_count, 0.9 * patch_count - patches_per_window, windows).round().astype(int)
    return [np.arange(start, start + patches_per_window) for start in starts]


def window_patches(patch_count: int, windows: int, patches_per_window: int) -> np.ndarray | None:
    """Indices of the patches that `windows` windows spread from 10% to 90% of a clip would hear; None when
    the clip is too short to differ from the whole."""
    places = window_places(patch_count, windows, patches_per_window)
    return None if places is None else np.unique(np.concatenate(places))


#: A first look at a clip: two of its places, two patches each (one of the parts in AUGMENTATION_WINDOWS, which the
#: classifier learnt). GenreModel.analyse decides from it alone when that is clearly settled, and hears the rest
#: otherwise (genresort evaluate measures what it does to the figures).
FIRST_LOOK_WINDOWS = (2, 2)


def first_look_places(patch_count: int) -> list[np.ndarray] | None:
    """The patches of each place a first look hears; None when the clip is too short to hear less of it."""
    return window_places(patch_count, *FIRST_LOOK_WINDOWS)


@dataclass(frozen=True)
class FirstLookVectors:
    """The classifier's inputs for what a first look at each clip hears: all its places, and each place alone."""

    glance: np.ndarray  # (clips, features)
    places: tuple[np.ndarray, ...]  # one (clips, features) array per place

    @classmethod
    def of(cls, clips: list[ClipFeatures], feature_set: FeatureSet, network_names: list[str]) -> FirstLookVectors:
        """A clip too short to hear less of is heard whole, at every place."""
        glances, places = [], []
        for clip in clips:
            patch_count = len(next(iter(clip.network_outputs[network_names[0]].values())))
            parts = first_look_places(patch_count) or [None] * FIRST_LOOK_WINDOWS[0]
            whole = None if parts[0] is None else np.unique(np.concatenate(parts))
            glances.append(feature_vector(clip, feature_set, network_names, whole))
            places.append([feature_vector(clip, feature_set, network_names, part) for part in parts])
        return cls(np.stack(glances), tuple(np.stack(column) for column in zip(*places, strict=True)))

    def rows(self, index: np.ndarray) -> FirstLookVectors:
        return FirstLookVectors(self.glance[index], tuple(place[index] for place in self.places))


def window_vectors(clip: ClipFeatures, feature_set: FeatureSet, network_names: list[str]) -> list[np.ndarray]:
    """Vectors of the parts of a clip listed in AUGMENTATION_WINDOWS (the handcrafted part stays whole-clip)."""
    if feature_set == FeatureSet.HANDCRAFTED or not network_names:
        return []
    patch_count = len(next(iter(clip.network_outputs[network_names[0]].values())))
    selections = [window_patches(patch_count, *windows) for windows in AUGMENTATION_WINDOWS]
    return [feature_vector(clip, feature_set, network_names, patches) for patches in selections if patches is not None]
