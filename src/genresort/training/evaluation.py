"""Honest evaluation: artist-grouped cross-validation and every figure we report from it.

GTZAN repeats artists heavily: a random split of clips puts one artist on both sides and overstates accuracy
by 5-10 points. Folds here are grouped by artist, and the 2 s fragments only ever train.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score
from sklearn.pipeline import Pipeline

from genresort.progress import progress
from genresort.training.classifier import fit_classifier, grouped_splits
from genresort.training.dataset import LabelledFile, TrainingSet


@dataclass(frozen=True)
class CrossValidation:
    """Out-of-fold probabilities for the scored clips, averaged over repeats."""

    genres: list[str]  # column order of `probabilities`
    true_genres: np.ndarray  # (clips,)
    probabilities: np.ndarray  # (clips, genres)


def cross_validate(
    files: list[LabelledFile],
    rows: TrainingSet,
    folds: int = 5,
    repeats: int = 3,
    fit: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int], Pipeline] = fit_classifier,
    test_vectors: np.ndarray | None = None,
) -> CrossValidation:
    """Artist-grouped cross-validation: no artist is ever on both sides; fragments train but are not scored.

    Fragments whose artist is in the test fold are left out of that fold's training as well. A clip is
    scored on its own (whole) vector, or on `test_vectors` (one per file) when given, e.g. to see how it
    fares when heard through fewer windows; the rows of its windows only ever train.
    """
    if test_vectors is None:
        test_vectors = rows.vectors[rows.own_row]
    genres = np.array([file.genre for file in files])
    groups = np.array([file.group for file in files])
    scored = np.array([file.scored for file in files])
    scored_index = np.flatnonzero(scored)
    labels = sorted(set(genres))
    totals = np.zeros((len(scored_index), len(labels)))
    splits = [
        (repeat, split)
        for repeat in range(repeats)
        for split in grouped_splits(genres[scored_index], groups[scored_index], folds, seed=repeat)
    ]
    for repeat, (train, test) in progress(splits, len(splits), "cross-validation"):
        test_groups = set(groups[scored_index[test]])
        training = np.concatenate([scored_index[train], np.flatnonzero(~scored & ~np.isin(groups, list(test_groups)))])
        assert not test_groups & set(groups[training]), "an artist on both sides of a split"
        training_rows = np.flatnonzero(np.isin(rows.clip_of_row, training))
        clip_of_row = rows.clip_of_row[training_rows]
        model = fit(
            rows.vectors[training_rows],
            genres[clip_of_row],
            groups[clip_of_row],
            rows.weights[training_rows],
            repeat,
        )
        columns = [labels.index(genre) for genre in model.classes_]
        totals[np.ix_(test, columns)] += model.predict_proba(test_vectors[scored_index[test]])
    return CrossValidation(
        genres=labels,
        true_genres=genres[scored_index],
        probabilities=totals / repeats,
    )


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> list[dict]:
    """What a confidence means: per non-empty equal-width confidence bin, its bounds, how many files fall in it, and
    their mean confidence and accuracy (calibrated, the two are equal)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    return [
        {
            "low": float(edges[index]),
            "high": float(edges[index + 1]),
            "files": int(np.sum(which == index)),
            "confidence": float(confidence[which == index].mean()),
            "accuracy": float(correct[which == index].mean()),
        }
        for index in range(bins)
        if np.any(which == index)
    ]


def expected_calibration_error(correct: np.ndarray, confidence: np.ndarray, bins: int = 10) -> float:
    """Mean gap between confidence and accuracy over equal-width confidence bins, weighted by bin size."""
    return float(
        sum(abs(row["accuracy"] - row["confidence"]) * row["files"] for row in reliability(confidence, correct, bins))
        / len(confidence)
    )


def choose_threshold(correct: np.ndarray, confidence: np.ndarray, target_precision: float) -> dict:
    """The lowest confidence threshold at which the files sorted are right at least `target_precision` of
    the time (computed on out-of-fold predictions), with the share of files it sorts."""
    for threshold in np.unique(np.round(confidence, 3)):
        sorted_mask = confidence >= threshold
        if correct[sorted_mask].mean() >= target_precision:
            return {
                "value": float(threshold),
                "target_precision": target_precision,
                "precision": float(correct[sorted_mask].mean()),
                "coverage": float(sorted_mask.mean()),
            }
    return {"value": 1.0, "target_precision": target_precision, "precision": float("nan"), "coverage": 0.0}


def scores(result: CrossValidation, target_precision: float = 0.9) -> dict:
    """Every figure we report for one cross-validation."""
    predicted = np.array(result.genres)[result.probabilities.argmax(axis=1)]
    confidence = result.probabilities.max(axis=1)
    correct = predicted == result.true_genres
    per_genre = {}
    for genre in result.genres:
        actual = result.true_genres == genre
        chosen = predicted == genre
        per_genre[genre] = {
            "clips": int(actual.sum()),
            "recall": float(correct[actual].mean()) if actual.any() else float("nan"),
            "precision": float((result.true_genres[chosen] == genre).mean()) if chosen.any() else float("nan"),
        }
    return {
        "clips": int(len(correct)),
        "accuracy": float(accuracy_score(result.true_genres, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(result.true_genres, predicted)),
        "macro_f1": float(f1_score(result.true_genres, predicted, average="macro")),
        "expected_calibration_error": expected_calibration_error(correct, confidence),
        "per_genre": per_genre,
        "confusion": confusion_matrix(result.true_genres, predicted, labels=result.genres).tolist(),
        "threshold": choose_threshold(correct, confidence, target_precision),
    }


def format_comparison(results: dict[str, dict]) -> str:
    """Headline figures of several feature sets side by side, as a Markdown table."""
    names = list(results)
    rows = [
        ("accuracy", "accuracy"),
        ("balanced accuracy", "balanced_accuracy"),
        ("macro-F1", "macro_f1"),
        ("calibration error (ECE)", "expected_calibration_error"),
    ]
    lines = ["| figure | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(f"{results[name][key]:.3f}" for name in names) + " |" for label, key in rows]
    lines.append(
        "| sorted share at >=90% right | "
        + " | ".join(f"{results[name]['threshold']['coverage']:.3f}" for name in names)
        + " |"
    )
    return "\n".join(lines)


def format_scores(figures: dict) -> str:
    """One cross-validation's per-genre table and confusion matrix, as Markdown."""
    genres = list(figures["per_genre"])
    lines = ["| genre | clips | recall | precision |", "|---|---|---|---|"]
    lines += [
        f"| {genre} | {row['clips']} | {row['recall']:.3f} | {row['precision']:.3f} |"
        for genre, row in figures["per_genre"].items()
    ]
    lines += ["", "Confusion matrix (rows: true genre, columns: predicted):", ""]
    lines.append("| true \\ predicted | " + " | ".join(genres) + " |")
    lines.append("|---" * (len(genres) + 1) + "|")
    lines += [
        f"| {genre} | " + " | ".join(str(count) for count in row) + " |"
        for genre, row in zip(genres, figures["confusion"], strict=True)
    ]
    return "\n".join(lines)


def plot_confusion(figures: dict, title: str, path: Path) -> None:
    """The confusion matrix as a PNG, counts in each cell."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    genres = list(figures["per_genre"])
    matrix = np.array(figures["confusion"])
    figure, axes = pyplot.subplots(figsize=(7, 6))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(genres)), genres, rotation=45, ha="right")
    axes.set_yticks(range(len(genres)), genres)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    for row, column in np.ndindex(matrix.shape):
        color = "white" if matrix[row, column] > matrix.max() / 2 else "black"
        axes.text(column, row, str(matrix[row, column]), ha="center", va="center", color=color)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def plot_reliability(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, path: Path) -> None:
    """One PNG: for each named curve (confidence, correct), accuracy against mean confidence per bin, the diagonal,
    and a bar/histogram of how many files fall in each bin; matplotlib Agg like plot_confusion."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (curve_axes, count_axes) = pyplot.subplots(
        2, 1, figsize=(7, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    curve_axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="calibrated")
    bins = 10
    width = 1 / bins / (len(curves) + 1)  # each curve's bar beside the others' within its bin
    for number, (name, (confidence, correct)) in enumerate(curves.items()):
        rows = reliability(confidence, correct, bins)
        (line,) = curve_axes.plot(
            [row["confidence"] for row in rows], [row["accuracy"] for row in rows], marker="o", label=name
        )
        count_axes.bar(
            [row["low"] + (number + 1) * width for row in rows],
            [row["files"] for row in rows],
            width=width,
            color=line.get_color(),
        )
    curve_axes.set_xlim(0, 1)
    curve_axes.set_ylim(0, 1)
    curve_axes.set_ylabel("accuracy (share right)")
    curve_axes.set_title(title)
    curve_axes.legend(loc="upper left")
    count_axes.set_xlabel("confidence")
    count_axes.set_ylabel("files")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
