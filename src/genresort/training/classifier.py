"""The classifier: one scikit-learn Pipeline (scaling, classifier, probability calibration), fitted on
artist-grouped folds so the calibration never sees an artist it was trained on, and exported as plain arrays
(analysis.model_file.LinearClassifier) for the model file."""

from __future__ import annotations

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from genresort.analysis.model_file import LinearClassifier
from genresort.training.dataset import LearntSet


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


def calibration_groups(genres: np.ndarray, groups: np.ndarray, folds: int) -> np.ndarray:
    """What the calibration's folds keep apart: the artists, except within a genre of fewer artists than folds (a
    genre a person taught with a few files of one artist), whose rows are spread one by one. Every fold must learn
    every genre: a genre missing from one gets no logit there, and the temperature's loss is infinite. A few rows of
    one artist on both sides of a calibration fold only make the temperature a little sure of that genre."""
    genres, groups = np.asarray(genres), np.asarray(groups)
    few = [genre for genre in np.unique(genres) if len(np.unique(groups[genres == genre])) < folds]
    if not few:
        return groups
    spread = np.isin(genres, few)
    return np.where(spread, [f"row-{index}" for index in range(len(groups))], groups)


def fit_classifier(
    vectors: np.ndarray, genres: np.ndarray, groups: np.ndarray, weights: np.ndarray, seed: int = 0
) -> Pipeline:
    """Fit single-threaded: the matrices are small, and on a busy two-core machine BLAS threads made a fit
    fifty times slower than one thread."""
    folds = 3
    classifier = make_classifier(grouped_splits(genres, calibration_groups(genres, groups, folds), folds, seed))
    with threadpool_limits(limits=1):
        return classifier.fit(vectors, genres, classify__sample_weight=weights)


def fit_learnt(learnt: LearntSet, seed: int = 0) -> Pipeline:
    """The classifier of every row of `learnt`, each clip's rows under its genre and artist."""
    return fit_classifier(learnt.vectors, learnt.row_genres, learnt.row_groups, learnt.weights, seed)


def export_classifier(pipeline: Pipeline) -> LinearClassifier:
    """The fitted pipeline's numbers, unchanged, with its coef_ transposed (as its decision_function uses it).

    Its predict_proba is softmax(beta * decision_function(scaled x)): with ensemble=False there is one logistic
    regression and one temperature calibrator (scikit-learn 1.9, sklearn/calibration.py: _CalibratedClassifier's
    predict_proba and _TemperatureScaling). Two cases there need no number of their own: a binary decision d is read
    as the logits (-d, d), and so does LinearClassifier; decisions whose rows look like probabilities would be taken
    through a log, which does not happen here, as an L2-penalised multinomial regression's logits of a real clip
    sum to about zero. tests/test_model.py checks both models give the same probabilities."""
    scaler = pipeline.named_steps["scale"]
    calibrated = pipeline.named_steps["classify"]
    (member,) = calibrated.calibrated_classifiers_
    (calibrator,) = member.calibrators
    return LinearClassifier(
        classes=tuple(str(genre) for genre in calibrated.classes_),
        scaler_mean=np.asarray(scaler.mean_, dtype=np.float64),
        scaler_scale=np.asarray(scaler.scale_, dtype=np.float64),
        weights=np.asarray(member.estimator.coef_.T, dtype=np.float64),
        intercept=np.asarray(member.estimator.intercept_, dtype=np.float64),
        inverse_temperature=float(calibrator.beta_),
    )


def export_logistic(
    scaler: StandardScaler, regression: LogisticRegression, classes: tuple[str, str]
) -> LinearClassifier:
    """A fitted two-class scaler and logistic regression as a LinearClassifier: it reads its one logit d as
    (-d, d), and softmax(beta * (-d, d)) is the regression's own probability 1 / (1 + exp(-d)) for beta = 1/2.
    `classes` names the regression's classes_ in their order (False, True)."""
    assert len(regression.classes_) == 2
    return LinearClassifier(
        classes=classes,
        scaler_mean=np.asarray(scaler.mean_, dtype=np.float64),
        scaler_scale=np.asarray(scaler.scale_, dtype=np.float64),
        weights=np.asarray(regression.coef_.T, dtype=np.float64),
        intercept=np.asarray(regression.intercept_, dtype=np.float64),
        inverse_temperature=0.5,
    )
