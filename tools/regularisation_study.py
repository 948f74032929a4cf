"""Regularisation: does another C of the shipped genre classifier's logistic regression help GTZAN without costing
the real-world figures?

    .venv/bin/python tools/regularisation_study.py [--data ../shared/data] [--cache .cache/features] [--repeats 3]
        [--regularisation 0.005 0.01 0.02 0.05 0.1 0.3]

For each C the whole recipe of `genresort train` with the real-world songs is run (training.calibration.calibrate):
GTZAN's artist-grouped cross-validation of a classifier that also learns the real songs under their pseudo-labels,
and the placement check's coverage and precision on real songs of held-out artists (5 artist folds x `repeats`).
Features come from .cache/features (extracted by an earlier `train`); each C takes about five minutes on two cores.
A row is printed as each C finishes, and the whole Markdown table at the end.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from genresort.analysis.features.clip import FeatureSet
from genresort.training import classifier
from genresort.training.calibration import RealSongs, calibrate, read_real_songs
from genresort.training.dataset import LabelledFile, TrainingSet, read_manifest, training_set
from genresort.training.evaluation import scores
from genresort.training.fit import NETWORK_NAMES, TAGS_FILE, TARGET_PRECISION, prepare

REGULARISATIONS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.3)
SHIPPED = 0.02  # make_classifier's default
HEADER = (
    "| C | GTZAN accuracy | balanced accuracy | macro-F1 | real coverage (min-max) | real precision (min-max) | "
    "minutes |\n|---|---|---|---|---|---|---|"
)


@dataclass(frozen=True)
class Row:
    regularisation: float
    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    coverage: float
    coverage_range: tuple[float, float]
    precision: float
    precision_range: tuple[float, float]
    minutes: float

    def markdown(self) -> str:
        shipped = " (shipped)" if self.regularisation == SHIPPED else ""
        return (
            f"| {self.regularisation:g}{shipped} | {self.accuracy:.3f} | {self.balanced_accuracy:.3f} | "
            f"{self.macro_f1:.3f} | {self.coverage:.3f} ({self.coverage_range[0]:.3f}-{self.coverage_range[1]:.3f}) "
            f"| {self.precision:.3f} ({self.precision_range[0]:.3f}-{self.precision_range[1]:.3f}) "
            f"| {self.minutes:.1f} |"
        )


@contextmanager
def regularisation(value: float) -> Iterator[None]:
    """Every fit_classifier fits with C = `value` while inside.

    A study-only monkeypatch: fit_classifier looks make_classifier up in classifier.py's module globals, so binding
    its `regularisation` there reaches every fit calibrate makes (its pseudo-labelling model, SongLearner.model and
    GTZAN's cross-validation) without editing the shipped code. Restored on exit."""
    shipped = classifier.make_classifier
    classifier.make_classifier = functools.partial(shipped, regularisation=value)
    try:
        yield
    finally:
        classifier.make_classifier = shipped


def measure(value: float, files: list[LabelledFile], rows: TrainingSet, songs: RealSongs, repeats: int) -> Row:
    start = time.monotonic()
    with regularisation(value):
        calibrated = calibrate(files, rows, songs, TAGS_FILE, NETWORK_NAMES, TARGET_PRECISION, repeats)
    figures = scores(calibrated.gtzan, TARGET_PRECISION)
    held_out = calibrated.held_out
    coverages = [repeat.coverage for repeat in held_out.repeats]
    return Row(
        regularisation=value,
        accuracy=figures["accuracy"],
        balanced_accuracy=figures["balanced_accuracy"],
        macro_f1=figures["macro_f1"],
        coverage=held_out.coverage,
        coverage_range=(min(coverages), max(coverages)),
        precision=held_out.precision,
        precision_range=held_out.precision_range,
        minutes=(time.monotonic() - start) / 60,
    )


def study(data: Path, cache: Path, repeats: int, values: Sequence[float]) -> list[Row]:
    files, clips = prepare(read_manifest(data / "MANIFEST.tsv"), cache)
    rows = training_set(clips, FeatureSet.EMBEDDING, list(NETWORK_NAMES))
    songs = read_real_songs(data / "realworld" / "MANIFEST.tsv", cache, NETWORK_NAMES)
    print(HEADER, flush=True)
    results = []
    for value in values:
        results.append(measure(value, files, rows, songs, repeats))
        print(results[-1].markdown(), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache", type=Path, default=Path(".cache/features"))
    parser.add_argument("--repeats", type=int, default=3, help="shuffles of the artist folds (GTZAN and real songs)")
    parser.add_argument("--regularisation", type=float, nargs="+", default=list(REGULARISATIONS), help="values of C")
    arguments = parser.parse_args()
    results = study(arguments.data, arguments.cache, arguments.repeats, arguments.regularisation)
    print(
        f"\n## Regularisation (repeats={arguments.repeats}; real songs: check at target precision "
        f"{TARGET_PRECISION}, artists held out)\n\n{HEADER}"
    )
    print("\n".join(row.markdown() for row in results))


if __name__ == "__main__":
    main()
