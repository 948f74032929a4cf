"""What "right" means on real recordings (the realworld README's table) and the coverage and precision we report."""

from __future__ import annotations

import numpy as np
import pytest

from genresort.analysis.decision import UNSURE
from genresort.training.realworld import (
    COMPATIBILITY,
    NOT_MUSIC,
    artist_folds,
    by_published_genre,
    compatible_genres,
    cross_validate_rule,
    is_right,
    placeable,
    score,
)

GTZAN = ("Blues", "Classical", "Country", "Disco", "Hip-Hop", "Jazz", "Metal", "Pop", "Reggae", "Rock")


def test_the_table_is_the_readmes() -> None:
    assert compatible_genres(["Pop/Rock"]) == {"Pop", "Rock", "Metal", "Disco", "Punk", "Alternative", "Indie"}
    assert compatible_genres(["Folk"]) == {"Country", "Folk"}
    assert COMPATIBILITY["Folk"].gtzan == {"Country"}
    assert compatible_genres(["Electronic"]) == {"Electronic", "Dance", "House", "Techno", "Ambient"}
    assert COMPATIBILITY["Electronic"].gtzan == frozenset()
    assert compatible_genres(["Vocal", "Rap"]) == {"Jazz", "Pop", "Hip-Hop"}
    assert compatible_genres(["Holiday", "Comedy/Spoken"]) == frozenset()
    assert len(COMPATIBILITY) == 21  # every genre the README lists AllMusic as using


def test_an_unknown_published_genre_is_an_error_not_a_silent_wrong() -> None:
    with pytest.raises(ValueError, match="Polka"):
        compatible_genres(["Polka"])


def test_right_means_placed_in_a_compatible_genre() -> None:
    assert is_right("Rock", ["Folk", "Pop/Rock"])
    assert not is_right("Rock", ["Folk"])
    assert is_right("Folk", ["Folk"])  # in a wider taxonomy
    assert not is_right(UNSURE, ["Jazz"])
    assert not is_right(NOT_MUSIC, ["Comedy/Spoken"])


def test_a_song_of_none_of_our_genres_is_placeable_only_in_a_wider_taxonomy() -> None:
    assert not placeable(["Electronic"], GTZAN)
    assert placeable(["Electronic"], (*GTZAN, "Electronic"))
    assert not placeable(["International"], (*GTZAN, "Electronic", "Folk", "Latin", "R&B"))
    assert placeable(["R&B"], GTZAN)


def test_coverage_counts_placed_files_and_precision_the_right_among_them() -> None:
    published = [("Folk",), ("Pop/Rock",), ("Rap",), ("Jazz",), ("Holiday",)]
    result = score(["Rock", "Rock", "Hip-Hop", UNSURE, NOT_MUSIC], published)
    assert (result.files, result.placed, result.right) == (5, 3, 2)
    assert result.coverage == pytest.approx(0.6)
    assert result.precision == pytest.approx(2 / 3)
    assert np.isnan(score([UNSURE], [("Jazz",)]).precision)


def test_the_breakdown_counts_a_song_under_each_published_genre_and_names_where_the_wrong_ones_went() -> None:
    published = [("Folk",), ("Folk", "Pop/Rock"), ("Electronic",), ("Electronic",)]
    breakdown = by_published_genre(["Rock", "Rock", "Metal", UNSURE], published)
    assert breakdown["Folk"].scores.placed == 2 and breakdown["Folk"].scores.right == 1
    assert breakdown["Folk"].wrong == {"Rock": 1}
    assert breakdown["Pop/Rock"].scores.right == 1 and not breakdown["Pop/Rock"].wrong
    assert breakdown["Electronic"].scores.coverage == 0.5 and breakdown["Electronic"].wrong == {"Metal": 1}


def test_artist_folds_keep_each_artist_on_one_side_and_test_every_file_once() -> None:
    groups = [f"artist-{index % 7}" for index in range(30)]
    folds = artist_folds(groups, folds=5, seed=3)
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested) == list(range(30))
    for train, test in folds:
        assert not {groups[index] for index in train} & {groups[index] for index in test}
    assert [list(test) for _, test in artist_folds(groups, 5, 3)] == [list(test) for _, test in folds]


def test_a_rule_is_scored_on_artists_it_was_not_fitted_on() -> None:
    """A rule that memorises its training files' labels places nothing it has not seen: coverage 0."""
    groups = [f"artist-{index // 2}" for index in range(20)]
    published = [("Jazz",)] * 20

    def fit_memoriser(train: np.ndarray):
        known = set(train)
        return lambda test: ["Jazz" if index in known else UNSURE for index in test]

    held_out = cross_validate_rule(published, groups, fit_memoriser, folds=4, repeats=3)
    assert held_out.coverage == 0.0
    assert len(held_out.repeats) == 3 and all(len(run) == 20 for run in held_out.decisions)
