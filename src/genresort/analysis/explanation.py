"""Why a file got its genre: what each analysis window heard, and the networks' strongest tags ("male vocal",
"electric guitar", "slow") over the whole clip. Pure: a clip's features and the model's arrays in, words out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from genresort.analysis.features.clip import ClipFeatures, FeatureSet, feature_vector
from genresort.analysis.model_file import LinearClassifier

STRONGEST_TAGS = 6


@dataclass(frozen=True)
class WindowVerdict:
    window: int  # 1 for the first analysis window
    genre: str  # what the classifier hears in this window alone
    probability: float


@dataclass(frozen=True)
class Explanation:
    windows: tuple[WindowVerdict, ...]  # one per analysis window (one for a short clip heard whole)
    tags: tuple[tuple[str, float], ...]  # the strongest tags of both networks, most probable first

    def as_fields(self) -> dict[str, list]:
        return {
            "windows": [[verdict.genre, round(verdict.probability, 4)] for verdict in self.windows],
            "tags": [[tag, round(probability, 4)] for tag, probability in self.tags],
        }


def explain(
    clip: ClipFeatures,
    classifier: LinearClassifier,
    feature_set: FeatureSet,
    network_names: list[str],
    tag_names: Mapping[str, Sequence[str]],
    strongest: int = STRONGEST_TAGS,
) -> Explanation:
    """`tag_names`: network name -> its tags in taggram column order. A tag both networks name counts once, at its
    higher probability."""
    counts = clip.window_patch_counts or (len(next(iter(clip.network_outputs[network_names[0]].values()))),)
    ends = np.cumsum(counts)
    verdicts = []
    for number, (start, end) in enumerate(zip(ends - np.asarray(counts), ends, strict=True), start=1):
        vector = feature_vector(clip, feature_set, network_names, np.arange(start, end))
        probabilities = classifier.predict_proba(vector[np.newaxis, :])[0]
        best = int(probabilities.argmax())
        verdicts.append(WindowVerdict(number, classifier.classes[best], float(probabilities[best])))
    tags: dict[str, float] = {}
    for name in network_names:
        means = clip.network_outputs[name]["taggram"].mean(axis=0)
        for tag, probability in zip(tag_names[name], means, strict=True):
            tags[tag] = max(tags.get(tag, 0.0), float(probability))
    ranked = sorted(tags.items(), key=lambda item: item[1], reverse=True)[:strongest]
    return Explanation(tuple(verdicts), tuple(ranked))
