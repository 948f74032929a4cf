"""Fitting a Familiarity (analysis.familiarity): the training clips' neighbourhood, and how far from it a song of a
new artist still lies, so that a song unlike anything the genre model learnt from is not given one of its genres."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from genresort.analysis.familiarity import Familiarity
from genresort.training.realworld import artist_folds

#: No feature's scale is below this share of the median feature's spread. Standard scaling alone blows up units
#: that are all but constant among the training clips (a network unit that barely moves, or moves by float32
#: rounding): a song that moves one of them by 0.06 lay thousands of spreads away, and one such artist in a held-out
#: fold set the threshold of a Disco+Pop familiarity so high that it flagged nothing at all (tools/familiarity_study).
SPREAD_FLOOR = 0.1
#: The artist shuffle of the folds the threshold is chosen on.
FOLD_SEED = 0


def fit_projection(vectors: np.ndarray, dimensions: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clips, features) -> mean, scale and the (features, dimensions) principal axes of the standardised vectors:
    a few axes keep the directions music varies along, and leave out the many where a distance is only noise.
    `dimensions` is capped at what the clips can span (clips - 1 once centred, and the features); the scale is each
    feature's spread, but never below SPREAD_FLOOR times the median spread."""
    vectors = np.asarray(vectors, dtype=np.float64)
    mean = vectors.mean(axis=0)
    spread = vectors.std(axis=0)
    scale = np.maximum(spread, SPREAD_FLOOR * np.median(spread))
    _, _, axes = np.linalg.svd((vectors - mean) / scale, full_matrices=False)
    return mean, scale, axes[: min(dimensions, len(vectors) - 1, vectors.shape[1])].T


def fit_neighbourhood(vectors: np.ndarray, dimensions: int, neighbours: int, threshold: float) -> Familiarity:
    """The projection fitted on these clips, with the clips themselves as references (at most `neighbours` of
    them are averaged: a taxonomy of a few files may have fewer)."""
    mean, scale, components = fit_projection(vectors, dimensions)
    references = ((np.asarray(vectors, dtype=np.float64) - mean) / scale) @ components
    return Familiarity(mean, scale, components, references, min(neighbours, len(vectors)), threshold)


def held_out_distances(
    vectors: np.ndarray, groups: Sequence[str], dimensions: int, neighbours: int, folds: int
) -> np.ndarray:
    """(clips,) each clip's distance to the clips of the other artists, with the projection fitted on those alone:
    how far a song of an artist the model never heard lies (a clip's own artist would make it look near). NaN for
    the clips of a fold that leaves fewer than two other clips to fit a projection on."""
    distances = np.full(len(vectors), np.nan)
    for train, test in artist_folds(groups, folds, FOLD_SEED):
        if len(test) and len(train) >= 2:
            neighbourhood = fit_neighbourhood(vectors[train], dimensions, neighbours, threshold=np.inf)
            distances[test] = neighbourhood.distance(vectors[test])
    return distances


def fit_familiarity(
    vectors: np.ndarray,
    groups: Sequence[str],
    dimensions: int = 32,
    neighbours: int = 3,
    keep: float = 0.98,
    folds: int = 5,
) -> Familiarity:
    """The familiarity of these clips (one whole-clip embedding vector each, `groups` their artists): fitted on all
    of them, with the threshold that keeps `keep` of the clips when each is measured against the other artists'
    clips alone, as a new song is. The defaults come from tools/familiarity_study.py: 32 axes; 3 neighbours, which
    stay within a genre of a few clips (5 reached into the other genre of a small Classical+Metal taxonomy and flagged
    less than half as much); keep 0.98, which flagged 1-2% of new artists' clips of the model's own genres."""
    if len(vectors) != len(groups):
        raise ValueError(f"{len(vectors)} vectors for {len(groups)} groups")
    if len(set(groups)) < 2:
        raise ValueError("need clips of at least two artists to measure how far a new artist lies")
    distances = held_out_distances(np.asarray(vectors), groups, dimensions, neighbours, folds)
    measured = distances[~np.isnan(distances)]
    if not len(measured):
        raise ValueError("too few clips: no artist's clips have two clips of other artists to be measured against")
    threshold = float(np.quantile(measured, keep))
    if not threshold > 0:
        raise ValueError("the clips of different artists are copies of one another: no distance to learn from")
    return fit_neighbourhood(vectors, dimensions, neighbours, threshold)
