"""Music or not: the detector's arithmetic, its threshold, its grouped cross-validation, and one real check that
a noise file and a Hip-Hop clip land on the right side."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import require_shared_data, shared_clip, unavailable
from genresort.analysis.features.clip import ClipFeatures, FeatureSet, feature_vector
from genresort.analysis.features.embedding import OUTPUTS
from genresort.analysis.model_file import parse_classifier
from genresort.training.dataset import TrainingSet, training_set
from genresort.training.fit import NETWORK_NAMES
from genresort.training.music_detector import (
    Sample,
    choose_threshold,
    cross_validate_detector,
    fit_detector,
    fit_final,
    logit,
    read_samples,
    synthesise_babble,
    synthesise_nonmusic,
    synthesise_speech,
    tag_columns,
)
from genresort.training.openworld import NonMusicFile, features_of, read_nonmusic


def blobs(seed: int = 0, count: int = 60, width: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Music around +1, not music around -1, in every dimension."""
    rng = np.random.default_rng(seed)
    is_music = np.arange(count) % 3 != 0
    vectors = rng.normal(size=(count, width)) + np.where(is_music, 1.0, -1.0)[:, np.newaxis]
    return vectors.astype(np.float32), is_music


def test_a_fitted_detector_is_the_logistic_regression_as_plain_arrays_that_survive_json() -> None:
    vectors, is_music = blobs()
    detector = fit_detector(vectors, is_music, np.ones(len(vectors)), np.arange(8), regularisation=1.0)
    assert (detector.is_music(vectors) == is_music).mean() > 0.95
    classifier = detector.classifier
    logit = ((vectors - classifier.scaler_mean) / classifier.scaler_scale) @ classifier.weights[:, 0]
    by_hand = 1 / (1 + np.exp(-(logit + classifier.intercept[0])))
    np.testing.assert_allclose(detector.probability(vectors), by_hand, rtol=1e-5)
    restored = parse_classifier(classifier.to_json())
    np.testing.assert_array_equal(restored.predict_proba(vectors), classifier.predict_proba(vectors))


def test_a_detector_reads_only_its_columns() -> None:
    vectors, is_music = blobs(width=4)
    noisy = np.concatenate([vectors, np.random.default_rng(1).normal(size=(len(vectors), 3))], axis=1)
    detector = fit_detector(noisy, is_music, np.ones(len(noisy)), np.array([0, 1, 2, 3]), regularisation=1.0)
    changed = noisy.copy()
    changed[:, 4:] = 1000.0
    np.testing.assert_array_equal(detector.probability(changed), detector.probability(noisy))


def test_tag_columns_are_each_networks_taggram_mean_and_spread() -> None:
    rng = np.random.default_rng(0)
    widths = {"taggram": 5, "penultimate": 7, "max_pool": 3, "mean_pool": 3}
    outputs = {name: {output: rng.normal(size=(4, widths[output])) for output in OUTPUTS} for name in ("a", "b")}
    clip = ClipFeatures(handcrafted=np.zeros(0), network_outputs=outputs)
    vector = feature_vector(clip, FeatureSet.EMBEDDING, ["a", "b"])
    expected = np.concatenate(
        [np.concatenate([outputs[name]["taggram"].mean(axis=0), outputs[name]["taggram"].std(axis=0)]) for name in "ab"]
    )
    np.testing.assert_allclose(vector[tag_columns(clip, ["a", "b"])], expected, rtol=1e-6)


def test_threshold_sits_halfway_between_the_classes_and_gives_way_to_music_where_they_overlap() -> None:
    music = np.array([0.8, 0.9, 0.95, 0.99])
    not_music = np.array([0.01, 0.2])
    threshold = choose_threshold(music, not_music, music_loss=0.0)
    assert logit(threshold) == pytest.approx((logit(0.8) + logit(0.2)) / 2)

    overlapping_music = np.linspace(0.05, 0.99, 200)
    threshold = choose_threshold(overlapping_music, np.array([0.5, 0.9]), music_loss=0.01)
    assert (overlapping_music < threshold).mean() <= 0.01


def small_study(groups_per_side: int = 12) -> tuple[list[Sample], TrainingSet]:
    """Blobs as samples of several groups each, plus training-only samples, one row per sample."""
    vectors, is_music = blobs(count=6 * groups_per_side)
    samples = [
        Sample(
            f"file{index}", bool(music), "music" if music else "noise", f"group{index % (2 * groups_per_side)}", True
        )
        for index, music in enumerate(is_music)
    ]
    samples += [Sample("fragment", True, "music", "group1", False), Sample("fragment", True, "music", "lonely", False)]
    vectors = np.concatenate([vectors, np.ones((2, vectors.shape[1]), dtype=np.float32)])
    return samples, TrainingSet.of(vectors)


def test_cross_validation_scores_every_scored_sample_once_per_repeat_on_a_fold_chosen_threshold() -> None:
    samples, rows = small_study()
    held = cross_validate_detector(samples, rows, np.arange(8), regularisation=1.0, folds=4, repeats=2)
    assert [sample.name for sample in held.samples] == [sample.name for sample in samples if sample.scored]
    assert held.probabilities.shape == held.thresholds.shape == (2, len(held.samples))
    assert np.all((held.thresholds > 0) & (held.thresholds < 1))
    assert len(np.unique(held.thresholds[0])) > 1  # each fold its own threshold
    is_music = np.array([sample.is_music for sample in held.samples])
    assert (held.called_music == is_music).mean() > 0.9


def test_the_final_detector_has_a_threshold_chosen_by_grouped_cross_validation() -> None:
    samples, rows = small_study()
    detector = fit_final(samples, rows, np.arange(8), regularisation=1.0)
    assert 0 < detector.threshold < 1 and detector.threshold != 0.5


def test_synthetic_nonmusic_is_the_same_every_time_and_grouped_by_generator(tmp_path: Path) -> None:
    first = synthesise_nonmusic(tmp_path / "a", kinds=("tone",))
    second = synthesise_nonmusic(tmp_path / "b", kinds=("tone",))
    assert len(first) == 6 and {file.group for file in first} == {"synthetic-tone"}
    for one, other in zip(first, second, strict=True):
        assert one.path.read_bytes() == other.path.read_bytes()
    info = soundfile.info(first[0].path)
    assert info.format == "MP3" and info.duration > 5


def test_a_detector_fitted_on_real_features_hears_noise_as_not_music_and_hiphop_as_music(tmp_path: Path) -> None:
    """A small real training set (no white noise in it, no artist of the Hip-Hop clip tested), real features."""
    data = require_shared_data()
    genres = ("blues", "classical", "country", "disco", "jazz", "metal", "pop", "reggae", "rock")
    music = [NonMusicFile(shared_clip(genre), "music", genre, f"music-{genre}") for genre in genres]
    music += [NonMusicFile(shared_clip("hiphop", number), "music", "hiphop", f"hiphop-{number}") for number in (0, 1)]
    recordings = read_nonmusic(data / "nonmusic" / "MANIFEST.tsv")
    speech = [file for file in recordings if file.category in ("gtzan-speech", "read-speech-en")][:5]
    environment = [file for file in recordings if file.kind == "environment" and "single" in file.path.name][:5]
    synthetic = synthesise_nonmusic(tmp_path / "synthetic", kinds=("pink-noise", "tone"))[::2]
    tested = [
        NonMusicFile(shared_clip("hiphop", 8), "music", "hiphop", "hiphop-8"),  # artist 183, unlike clips 0 and 1
        synthesise_nonmusic(tmp_path / "white", kinds=("white-noise",))[2],
    ]
    files, clips = features_of(music + speech + environment + synthetic + tested, tmp_path / "cache")
    assert len(files) == len(music + speech + environment + synthetic + tested)
    samples = [Sample(str(file.path), file.kind == "music", file.kind, file.group, True) for file in files]
    rows = training_set(clips[:-2], FeatureSet.EMBEDDING, list(NETWORK_NAMES))
    detector = fit_final(samples[:-2], rows, np.arange(rows.vectors.shape[1]), regularisation=0.001)
    vectors = np.stack([feature_vector(clip, FeatureSet.EMBEDDING, list(NETWORK_NAMES)) for clip in clips[-2:]])
    assert detector.is_music(vectors).tolist() == [True, False], detector.probability(vectors)


def test_synthetic_speech_is_espeak_reading_a_paragraph_alone_or_in_a_crowd(tmp_path: Path) -> None:
    if shutil.which("espeak-ng") is None:
        unavailable("espeak-ng is not installed (apt-get install espeak-ng)")
    speech = synthesise_speech(tmp_path, "de", "f2")
    assert (speech.kind, speech.group) == ("espeak-speech", "synthetic-espeak-speech")
    assert 15 < soundfile.info(speech.path).duration < 60
    babble = synthesise_babble(tmp_path, voices=3, seed=0)
    assert (babble.kind, babble.group) == ("espeak-babble", "synthetic-espeak-babble")
    assert soundfile.info(babble.path).duration > 10
    assert not list(tmp_path.glob("*.wav"))


def shared_data_subset(folder: Path, chosen: dict[str, tuple[str, ...]]) -> Path:
    """A copy of the shared data's manifests holding only the rows whose file is `chosen` (per manifest: "" for
    GTZAN's, "realworld", "nonmusic"), beside links to the shared audio: the real layout, a few files to hear."""
    data = require_shared_data()
    for manifest, files in chosen.items():
        source, target = data / manifest, folder / manifest
        target.mkdir(parents=True, exist_ok=True)
        header, *rows = (source / "MANIFEST.tsv").read_text().splitlines()
        kept = [row for row in rows if row.split("\t")[0] in files]
        assert len(kept) == len(files)
        (target / "MANIFEST.tsv").write_text("\n".join([header, *kept]) + "\n")
        for name in {file.split("/")[0] for file in files}:
            (target / name).symlink_to(source / name)
    return folder


def test_read_samples_marks_music_and_not_music_with_their_groups_and_sets_spoken_comedy_apart(
    tmp_path: Path,
) -> None:
    data = shared_data_subset(
        tmp_path / "data",
        {
            "": ("gtzan/hiphop/hiphop.00002.mp3", "gtzan-fragments/hiphop/hiphop.00010.mp3"),
            "realworld": ("MT0002233402.mp3", "MT0007697753.mp3"),  # C-Murder (Rap); Bill Hicks (Comedy/Spoken)
            "nonmusic": ("environment/esc10-chainsaw-fold1.mp3", "speech/cv-de.mp3"),
        },
    )
    # no synthetic kind: synthesising every generator's sounds alone takes half a minute, hearing them more
    samples, clips, aside = read_samples(data, tmp_path / "synthetic", tmp_path / "cache", synthetic_kinds=())
    assert len(samples) == len(clips) == 5  # the spoken comedy aside, no synthetic sound
    by_name = {sample.name: sample for sample in samples}
    assert by_name["gtzan/hiphop/hiphop.00002.mp3"] == Sample(
        "gtzan/hiphop/hiphop.00002.mp3", True, "GTZAN Hip-Hop", "artist-178", True
    )
    assert by_name["gtzan-fragments/hiphop/hiphop.00010.mp3"] == Sample(
        "gtzan-fragments/hiphop/hiphop.00010.mp3", True, "GTZAN Hip-Hop", "artist-183", False
    )
    assert by_name["realworld/MT0002233402.mp3 (Ghetto Ties)"] == Sample(
        "realworld/MT0002233402.mp3 (Ghetto Ties)", True, "realworld rap", "artist-c-murder", True
    )
    assert by_name["nonmusic/environment/esc10-chainsaw-fold1.mp3"] == Sample(
        "nonmusic/environment/esc10-chainsaw-fold1.mp3", False, "environment", "esc-fold1", True
    )
    assert by_name["nonmusic/speech/cv-de.mp3"] == Sample(
        "nonmusic/speech/cv-de.mp3", False, "speech", "commonvoice-de", True
    )
    assert [song.title for song, _ in aside] == ["The Elephant Is Dead (Bush)"]
