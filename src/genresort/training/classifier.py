"""The classifier: one scikit-learn Pipeline (scaling, classifier, probability calibration), fitted on
artist-grouped folds so the calibration never sees an artist it was trained on."""

from __future__ import annotations

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits


def make_classifier(calibration_splits: list[tuple[np.ndarray, np.ndarray]], regularisation: float = 0.02) -> Pipeline:
    """Scaling, a class-weighted logistic regression, and temperature calibration on artist-grouped folds."""
    return Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "classify",
                CalibratedClassifierCV(
                    LogisticRegression(C=regularisation, class_weight="balanced", max_iter=5000),
                    method="temperature",
                    cv=calibration_splits,
                    ensemble=False,
                ),
            ),
        ]
    )


def grouped_splits(
    genres: np.ndarray, groups: np.ndarray, folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Artist-grouped, genre-stratified folds (indices into the given arrays)."""
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(genres)), genres, groups))


def fit_classifier(
    vectors: np.ndarray, genres: np.ndarray, groups: np.ndarray, weights: np.ndarray, seed: int = 0
) -> Pipeline:
    """Fit single-threaded: the matrices are small, and on a busy two-core machine BLAS threads made a fit
    fifty times slower than one thread."""
    classifier = make_classifier(grouped_splits(genres, groups, folds=3, seed=seed))
    with threadpool_limits(limits=1):
        return classifier.fit(vectors, genres, classify__sample_weight=weights)
