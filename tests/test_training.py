"""Training and evaluation on real clips: artist-grouped, honest, and the model it writes loads safely."""

from __future__ import annotations

import json
import shutil
import stat
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import require_shared_data
from genresort.analysis.features.clip import FeatureSet
from genresort.analysis.model import CARD_JSON, MODEL_FILE, GenreModel
from genresort.analysis.model_file import ModelError, parse_classifier
from genresort.training.classifier import export_classifier, fit_classifier, fit_learnt, grouped_splits
from genresort.training.dataset import (
    DataSetError,
    LabelledFile,
    LearntSet,
    TrainingSet,
    read_genre_folders,
    read_manifest,
    training_set,
)
from genresort.training.evaluation import (
    choose_threshold,
    cross_validate,
    expected_calibration_error,
    plot_reliability,
    reliability,
    scores,
)
from genresort.training.fit import NETWORK_NAMES, prepare, train

GENRES = ("Classical", "Metal", "Hip-Hop", "Jazz")


@pytest.fixture(scope="module")
def small_data_set() -> list[LabelledFile]:
    """Ten clips of each of four genres, from as many artists as possible, plus their fragments."""
    files = read_manifest(require_shared_data() / "MANIFEST.tsv")
    chosen: list[LabelledFile] = []
    for genre in GENRES:
        scored = [file for file in files if file.genre == genre and file.scored]
        by_artist: dict[str, LabelledFile] = {}
        for file in scored:
            by_artist.setdefault(file.group, file)
        firsts = list(by_artist.values())
        chosen += (firsts + [file for file in scored if file not in firsts])[:10]
    return chosen


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One feature cache for the module: each clip is heard once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def prepared(small_data_set: list[LabelledFile], feature_cache: Path) -> tuple[list[LabelledFile], TrainingSet]:
    """The small data set's real features, as the rows the classifier is fitted on."""
    kept, clips = prepare(small_data_set, feature_cache)
    return kept, training_set(clips, FeatureSet.EMBEDDING, list(NETWORK_NAMES))


@pytest.fixture(scope="module")
def trained_model_dir(
    small_data_set: list[LabelledFile], feature_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    output = tmp_path_factory.mktemp("model")
    train(small_data_set, output, feature_cache, "four genres of the shared data", repeats=1)
    return output


def test_grouped_folds_never_put_one_artist_on_both_sides() -> None:
    files = read_manifest(require_shared_data() / "MANIFEST.tsv")
    scored = [file for file in files if file.scored]
    genres = np.array([file.genre for file in scored])
    groups = np.array([file.group for file in scored])
    for train_index, test_index in grouped_splits(genres, groups, folds=5, seed=0):
        assert not set(groups[train_index]) & set(groups[test_index])


def test_cross_validation_scores_only_full_clips_and_never_trains_on_a_test_artist() -> None:
    """Fragments of a test artist would leak the artist into training; they must stay out of that fold."""
    rng = np.random.default_rng(0)
    files = [
        LabelledFile(Path(f"clip{index}.mp3"), genre, f"artist-{index % 12}", scored=index < 48)
        for index, genre in enumerate(["a", "b"] * 30)
    ]
    vectors = rng.standard_normal((len(files), 4))
    group_of_vector = {tuple(vector): file.group for vector, file in zip(vectors, files, strict=True)}
    folds = []

    class Recorder:
        def __init__(self, genres, training_groups):
            self.classes_ = np.unique(genres)
            self.training_groups = training_groups

        def predict_proba(self, test_vectors):
            folds.append((self.training_groups, {group_of_vector[tuple(vector)] for vector in test_vectors}))
            return np.full((len(test_vectors), len(self.classes_)), 1 / len(self.classes_))

    def fit(training_vectors, genres, groups, weights, seed):
        return Recorder(genres, set(groups))

    result = cross_validate(files, TrainingSet.of(vectors), folds=4, repeats=1, fit=fit)
    assert len(result.true_genres) == 48  # fragments are never scored
    assert len(folds) == 4
    for training_groups, test_groups in folds:
        assert not training_groups & test_groups


def test_a_small_training_run_beats_chance_on_held_out_artists(
    prepared: tuple[list[LabelledFile], TrainingSet],
) -> None:
    kept, rows = prepared
    figures = scores(cross_validate(kept, rows, folds=3, repeats=1))
    assert figures["accuracy"] > 0.6  # chance is 0.25 with four genres
    assert figures["balanced_accuracy"] > 0.6


@pytest.mark.parametrize("genres", [GENRES, GENRES[:2]], ids=["four genres", "two genres"])
def test_the_exported_arrays_give_the_pipelines_probabilities(
    prepared: tuple[list[LabelledFile], TrainingSet], genres: tuple[str, ...]
) -> None:
    """What the model file holds computes what scikit-learn computed, on every real row, in a batch and one row at
    a time as the analysis does (two genres: scikit-learn's binary case)."""
    kept, rows = prepared
    genre_of_row = np.array([file.genre for file in kept])[rows.clip_of_row]
    group_of_row = np.array([file.group for file in kept])[rows.clip_of_row]
    chosen = np.isin(genre_of_row, genres)
    vectors = rows.vectors[chosen]
    pipeline = fit_classifier(vectors, genre_of_row[chosen], group_of_row[chosen], rows.weights[chosen])
    exported = parse_classifier(export_classifier(pipeline).to_json())

    assert exported.classes == tuple(pipeline.classes_)

    def row_by_row(predict_proba: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        return np.concatenate([predict_proba(vector[np.newaxis]) for vector in vectors])

    assert np.abs(exported.predict_proba(vectors) - pipeline.predict_proba(vectors)).max() <= 1e-9
    assert np.abs(row_by_row(exported.predict_proba) - row_by_row(pipeline.predict_proba)).max() <= 1e-9


def test_the_trained_model_loads_and_classifies_a_real_clip(trained_model_dir: Path) -> None:
    model = GenreModel.load(trained_model_dir)
    card = json.loads((trained_model_dir / CARD_JSON).read_text())
    assert set(card["genres"]) == set(GENRES)
    assert card["figures"]["accuracy"] > 0.5 and 0 < card["threshold"]["value"] <= 1
    prediction = model.analyse(require_shared_data() / "gtzan" / "metal" / "metal.00002.mp3")
    assert prediction.genre in GENRES
    assert sum(probability for _, probability in prediction.ranking) == pytest.approx(1.0, abs=1e-6)
    assert len(prediction.top) == 3 and prediction.top[0][1] >= prediction.top[1][1]


def test_the_trained_model_keeps_what_its_classifier_learnt(trained_model_dir: Path) -> None:
    """training_set.npz, named and hashed by the card, refits the model file byte for byte (what retrain relies on)."""
    card = json.loads((trained_model_dir / CARD_JSON).read_text())
    entry = card["training_set"]
    learnt = LearntSet.load(trained_model_dir / entry["file"], entry["sha256"])
    assert entry["clips"] == len(learnt.genres) == card["data"]["scored_clips"] + card["data"]["training_only_clips"]
    assert set(learnt.genres) == set(GENRES) and entry["real_songs"] == 0 and len(learnt.vectors) == entry["rows"]
    assert export_classifier(fit_learnt(learnt)).to_json() == (trained_model_dir / MODEL_FILE).read_text()


def test_a_model_writable_by_others_is_refused(trained_model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(trained_model_dir, copy)
    (copy / MODEL_FILE).chmod(0o666)
    with pytest.raises(ModelError, match="writable by other users"):
        GenreModel.load(copy)
    (copy / MODEL_FILE).chmod(0o644)
    copy.chmod(copy.stat().st_mode | stat.S_IWOTH)
    with pytest.raises(ModelError, match="writable by other users"):
        GenreModel.load(copy)


def test_a_model_that_needs_librosa_says_how_to_get_it_where_it_is_not_installed(
    trained_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "model"
    shutil.copytree(trained_model_dir, copy)
    card = json.loads((copy / CARD_JSON).read_text())
    (copy / CARD_JSON).write_text(json.dumps(card | {"feature_set": "combined"}))
    monkeypatch.setitem(sys.modules, "librosa", None)  # as a run-time install without the train extra
    with pytest.raises(ModelError, match=r"genresort\[train\]"):
        GenreModel.load(copy)


def test_a_folder_without_a_model_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="genresort train"):
        GenreModel.load(tmp_path)


def test_the_shipped_model_loads_and_its_card_matches() -> None:
    model = GenreModel.load()
    assert len(model.genres) == 10 and model.threshold > 0


def test_training_from_genre_folders_groups_by_artist_tag(tmp_path: Path) -> None:
    from mutagen.easyid3 import EasyID3

    from conftest import write_mp3

    for genre, artist in (("Polka", "Band A"), ("Polka", "Band A"), ("Drone", "Band B")):
        path = write_mp3(tmp_path / genre / f"{artist}-{len(list(tmp_path.rglob('*.mp3')))}.mp3", seconds=2.0)
        tags = EasyID3()
        tags["artist"] = artist
        tags.save(path)
    (tmp_path / "Drone" / ".partial.mp3").write_bytes(b"")
    files = read_genre_folders(tmp_path)
    assert Counter(file.genre for file in files) == {"Polka": 2, "Drone": 1}
    assert {file.group for file in files if file.genre == "Polka"} == {"artist-band a"}


def test_a_single_genre_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Rock").mkdir()
    with pytest.raises(DataSetError, match="two genre folders"):
        read_genre_folders(tmp_path)


def test_threshold_is_the_lowest_that_keeps_sorted_files_right_often_enough() -> None:
    confidence = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([True, True, True, False, True, False])
    chosen = choose_threshold(correct, confidence, target_precision=0.75)
    assert chosen["value"] == pytest.approx(0.6) and chosen["coverage"] == pytest.approx(5 / 6)
    assert chosen["precision"] == pytest.approx(0.8)


def test_calibration_error_is_zero_for_perfectly_calibrated_bins() -> None:
    correct = np.array([True] * 9 + [False])
    assert expected_calibration_error(correct, np.full(10, 0.9)) == pytest.approx(0.0)


def test_reliability_gives_each_nonempty_bin_its_bounds_count_and_means() -> None:
    confidence = np.array([0.05, 0.3, 0.35, 0.38, 0.95, 1.0])
    correct = np.array([False, True, False, False, True, True])
    rows = reliability(confidence, correct, bins=4)
    assert [(row["low"], row["high"], row["files"]) for row in rows] == [(0.0, 0.25, 1), (0.25, 0.5, 3), (0.75, 1.0, 2)]
    assert [row["confidence"] for row in rows] == pytest.approx([0.05, (0.3 + 0.35 + 0.38) / 3, 0.975])
    assert [row["accuracy"] for row in rows] == pytest.approx([0.0, 1 / 3, 1.0])
    by_hand = (0.05 * 1 + abs(1 / 3 - (0.3 + 0.35 + 0.38) / 3) * 3 + 0.025 * 2) / 6
    assert expected_calibration_error(correct, confidence, bins=4) == pytest.approx(by_hand)


def test_plot_reliability_writes_a_png_that_reads_back(tmp_path: Path) -> None:
    import matplotlib.image

    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.1, 1.0, 300)
    curves = {
        "calibrated": (confidence, rng.uniform(size=300) < confidence),
        "overconfident": (confidence, rng.uniform(size=300) < confidence**2),
    }
    path = tmp_path / "report" / "reliability.png"
    plot_reliability(curves, "reliability", path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 400 and image.shape[1] > 400
    assert image.std() > 0  # something is drawn


def test_unreadable_training_files_are_skipped_not_fatal(tmp_path: Path) -> None:
    """A broken file in a user's genre folders is reported and left out; training goes on."""
    from conftest import write_mp3

    write_mp3(tmp_path / "Polka" / "good.mp3", seconds=2.0)
    write_mp3(tmp_path / "Drone" / "good.mp3", seconds=2.0, seed=1)
    (tmp_path / "Drone" / "broken.mp3").write_bytes(b"not audio")
    kept, clips = prepare(read_genre_folders(tmp_path), tmp_path / "cache")
    assert [file.path.name for file in kept] == ["good.mp3", "good.mp3"]
    assert len(clips) == 2
