"""Calibration on real recordings (issue 7, parts 2-3): the shipped genre classifier learns GTZAN and the real songs
under their pseudo-labels, and its placement check is fitted on real songs, on the probabilities of genre models
that never heard them. The whole recipe is measured on held-out artists before it is fitted on everything.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from sklearn.pipeline import Pipeline

from genresort.analysis.features.clip import ClipFeatures, FeatureSet, FirstLookVectors, feature_vector
from genresort.analysis.placement_check import PlacementCheck, evidence
from genresort.training.classifier import fit_classifier
from genresort.training.dataset import LabelledFile, LearntSet, TrainingSet, training_set
from genresort.training.evaluation import CrossValidation, cross_validate
from genresort.training.openworld import features_of, read_realworld
from genresort.training.realworld import (
    CHECK_FOLDS,
    FirstLook,
    HeldOut,
    Rows,
    artist_folds,
    cross_validate_rule,
    fit_check_on,
    fit_placement_rule,
    is_right,
    pseudo_labels,
    read_tag_names,
    settled_at_first_look,
    tag_agreement,
    with_songs,
)


@dataclass(frozen=True)
class RealSongs:
    """The real-world development set's songs with their features."""

    published: list[tuple[str, ...]]  # each song's published (AllMusic) genres
    groups: list[str]  # artist groups
    clips: list[ClipFeatures]
    vectors: np.ndarray  # (songs, features) whole-clip embedding vectors
    rows: TrainingSet  # the songs' classifier rows: whole clips and windows, as GTZAN's
    paths: tuple[Path, ...] = ()  # the songs' files (a study that only measures may leave them out)
    first_looks: FirstLookVectors | None = None  # what a first look at each song hears; None: not measured


def read_real_songs(manifest: Path, cache: Path, network_names: Sequence[str]) -> RealSongs:
    songs, clips = features_of(read_realworld(manifest), cache)
    names = list(network_names)
    return RealSongs(
        published=[song.published_genres for song in songs],
        groups=[song.group for song in songs],
        clips=clips,
        vectors=np.stack([feature_vector(clip, FeatureSet.EMBEDDING, names) for clip in clips]),
        rows=training_set(clips, FeatureSet.EMBEDDING, names),
        paths=tuple(song.path for song in songs),
        first_looks=FirstLookVectors.of(clips, FeatureSet.EMBEDDING, names),
    )


def learnt_songs(songs: RealSongs, labels: Sequence[str]) -> LearntSet:
    """The rows of the real songs a genre model learns, each under its pseudo-label ("" songs teach nothing), in the
    order realworld.with_songs adds them."""
    files = [
        LabelledFile(path=path, genre=label, group=group, scored=False)
        for path, label, group in zip(songs.paths, labels, songs.groups, strict=True)
    ]
    return LearntSet.of(files, songs.rows, real_songs=True).select(np.asarray(labels) != "")


def gtzan_rows(files: list[LabelledFile], rows: TrainingSet) -> Rows:
    """GTZAN's classifier rows with each row's genre and artist group."""
    return Rows(
        rows.vectors,
        np.array([file.genre for file in files])[rows.clip_of_row],
        np.array([file.group for file in files])[rows.clip_of_row],
        rows.weights,
    )


class SongLearner:
    """Genre models that learn GTZAN and some of the real songs, each under its pseudo-label. Memoised: the rule's
    cross-validation asks for the same training sets again."""

    def __init__(self, gtzan: Rows, songs: RealSongs, labels: Sequence[str]):
        self.gtzan = gtzan
        self.songs = songs
        self.labels = list(labels)
        self.fitted = functools.cache(self._fitted)

    def model(self, chosen: np.ndarray, seed: int = 0) -> Pipeline:
        rows = with_songs(self.gtzan, self.songs.rows, self.labels, self.songs.groups, np.asarray(chosen, dtype=int))
        return fit_classifier(rows.vectors, rows.genres, rows.groups, rows.weights, seed)

    def probabilities_for(self, chosen: np.ndarray) -> np.ndarray:
        """(songs, genres) probabilities of every song from the model that learnt GTZAN and the `chosen` songs."""
        return self.probabilities_of(chosen, self.songs.vectors)

    def probabilities_of(self, chosen: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """What the same model makes of other vectors of the songs (e.g. their first looks)."""
        return self.fitted(tuple(int(index) for index in chosen)).predict_proba(vectors)

    def _fitted(self, chosen: tuple[int, ...]) -> Pipeline:
        return self.model(np.array(chosen, dtype=int))


@dataclass(frozen=True)
class HeldOutSongs:
    """One artist-grouped pass over the real songs, each judged by a genre model and a check fitted without its
    artist: what a reliability diagram draws."""

    confidence: np.ndarray  # (songs,) the top genre's probability
    check_probability: np.ndarray  # (songs,) the check's P(the top genre is right)
    right: np.ndarray  # (songs,) whether the top genre is compatible with a published genre


@dataclass(frozen=True)
class Calibrated:
    labels: list[str]  # each real song's pseudo-label, the genre the classifier learns it as ("": none)
    check: PlacementCheck  # fitted on every real song
    genres: list[str]  # the classifier's (and the check's one-hot) genre order
    held_out: HeldOut  # the recipe's decisions on held-out artists, per repeat
    songs: HeldOutSongs
    gtzan: CrossValidation  # GTZAN's artist-grouped cross-validation of a classifier that also learns the songs
    first_look: FirstLookFigures | None = None


@dataclass(frozen=True)
class FirstLookFigures:
    """The recipe deciding from a first look where that is settled, as GenreModel.analyse does, on the same held-out
    data as the figures of hearing everything."""

    held_out: HeldOut  # real songs of held-out artists
    songs_settled: float  # share of real songs decided at first look (one pass of artist folds)
    gtzan: CrossValidation  # GTZAN clips: the first look's probabilities where it is settled, else everything's
    gtzan_settled: float  # share of GTZAN clips decided at first look


def calibrate(
    files: list[LabelledFile],
    rows: TrainingSet,
    songs: RealSongs,
    tags_file: Path,
    network_names: Sequence[str],
    target_precision: float,
    repeats: int,
    gtzan_first_looks: FirstLookVectors | None = None,
) -> Calibrated:
    """Measure the recipe (5 artist folds x `repeats` on the real songs; GTZAN's grouped cross-validation), then
    fit the check on everything; the classifier `train` fits learns GTZAN and each song under its pseudo-label
    (learnt_songs). With `gtzan_first_looks` (one row per file) and the songs' first looks, the recipe is measured
    again deciding at first look where that is settled."""
    gtzan = gtzan_rows(files, rows)
    first_model = fit_classifier(gtzan.vectors, gtzan.genres, gtzan.groups, gtzan.weights)
    genres = [str(genre) for genre in first_model.classes_]
    labels = pseudo_labels(songs.published, first_model.predict_proba(songs.vectors), genres)
    learner = SongLearner(gtzan, songs, labels)
    agreement = tag_agreement(genres, songs.clips[0], network_names, read_tag_names(tags_file))

    def evidence_of(probabilities: np.ndarray) -> np.ndarray:
        return evidence(probabilities, songs.vectors, agreement)

    def check_on(files: np.ndarray) -> PlacementCheck:
        return fit_check_on(
            files,
            learner.probabilities_for,
            evidence_of,
            songs.groups,
            songs.published,
            genres,
            target_precision,
            agreement,
        )

    placement_rule = functools.partial(
        fit_placement_rule,
        learner.probabilities_for,
        evidence_of,
        songs.groups,
        songs.published,
        genres,
        target_precision,
        agreement,
    )
    held_out = cross_validate_rule(songs.published, songs.groups, placement_rule(), repeats=repeats)
    judged = HeldOutSongs(np.zeros(len(songs.groups)), np.zeros(len(songs.groups)), np.zeros(len(songs.groups), bool))
    # one pass of artist folds, each with the check fitted on its training part (the reliability diagram and the
    # first look's share both read them)
    fold_checks = [(train, test, check_on(train)) for train, test in artist_folds(songs.groups, CHECK_FOLDS, seed=0)]
    for train, test, check in fold_checks:
        probabilities = learner.probabilities_for(train)
        top = np.asarray(genres)[probabilities.argmax(axis=1)]
        judged.confidence[test] = probabilities.max(axis=1)[test]
        judged.check_probability[test] = check.probability(evidence_of(probabilities))[test]
        judged.right[test] = [is_right(top[index], songs.published[index]) for index in test]
    everything = np.arange(len(songs.groups))

    def fit_with_songs(vectors, genre_labels, groups, weights, seed) -> Pipeline:
        return SongLearner(Rows(vectors, genre_labels, groups, weights), songs, labels).model(everything, seed)

    gtzan_cv = cross_validate(files, rows, repeats=repeats, fit=fit_with_songs)
    check = check_on(everything)
    calibrated = Calibrated(labels, check, genres, held_out, judged, gtzan_cv)
    if gtzan_first_looks is None or songs.first_looks is None:
        return calibrated
    looks = songs.first_looks
    first_look = FirstLook(
        lambda train: learner.probabilities_of(train, looks.glance),
        lambda train: [learner.probabilities_of(train, place) for place in looks.places],
        lambda glance: evidence(glance, looks.glance, agreement),
    )
    first_rule = placement_rule(first_look)
    settled = np.zeros(len(songs.groups), bool)
    for train, test, fold_check in fold_checks:
        glance = first_look.probabilities_for(train)
        places = first_look.places_for(train)
        settled[test] = settled_at_first_look(fold_check, first_look.evidence_of(glance), glance, places)[test]

    def held_out_gtzan(vectors: np.ndarray) -> np.ndarray:
        return cross_validate(files, rows, repeats=repeats, fit=fit_with_songs, test_vectors=vectors).probabilities

    scored = np.flatnonzero([file.scored for file in files])
    glance = held_out_gtzan(gtzan_first_looks.glance)
    places = [held_out_gtzan(place) for place in gtzan_first_looks.places]
    gtzan_settled = settled_at_first_look(
        check, check.evidence(glance, gtzan_first_looks.glance[scored]), glance, places
    )
    adaptive = replace(gtzan_cv, probabilities=np.where(gtzan_settled[:, np.newaxis], glance, gtzan_cv.probabilities))
    figures = FirstLookFigures(
        cross_validate_rule(songs.published, songs.groups, first_rule, repeats=repeats),
        float(settled.mean()),
        adaptive,
        float(gtzan_settled.mean()),
    )
    return replace(calibrated, first_look=figures)
