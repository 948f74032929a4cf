"""The open-world figures: shares over the held-out detector's repeats, and the genre rule only where it is honest."""

from __future__ import annotations

import numpy as np
import pytest

from genresort.training.music_detector import HeldOut, Sample
from genresort.training.open_world_figures import at_first_look, nonmusic_figures, nonmusic_markdown


def test_nonmusic_placed_needs_the_detector_sure_of_music_and_the_genre_rule_to_place_it() -> None:
    samples = [
        Sample("speech-1", False, "speech", "speaker-1", True),
        Sample("speech-2", False, "speech", "speaker-2", True),
        Sample("rain", False, "environment", "source-1", True),
        Sample("song", True, "GTZAN Jazz", "artist-1", True),
    ]
    # two repeats; the fold threshold is 0.5, the sure value 0.7
    probabilities = np.array([[0.9, 0.6, 0.1, 0.4], [0.8, 0.2, 0.1, 0.9]])
    held = HeldOut(samples, probabilities, np.full((2, 4), 0.5))
    figures = nonmusic_figures(held, np.array([True, True, False, True]), sure=0.7)
    # speech-1 is sure music in both repeats and placed; speech-2 reaches 0.6 (unsure) then 0.2 (not music)
    assert figures["nonmusic_placed_in_a_genre"] == pytest.approx(2 / 6)
    assert figures["nonmusic_past_the_detector"] == pytest.approx(2 / 6)
    assert figures["music_to_not_music"] == pytest.approx(1 / 2)
    assert figures["per_kind"]["speech"] == {"music": False, "files": 2, "not_music": 0.25, "placed_in_a_genre": 0.5}
    assert figures["per_kind"]["GTZAN Jazz"]["placed_in_a_genre"] is None  # the genre rule learnt these songs
    table = "\n".join(nonmusic_markdown(figures))
    assert "| GTZAN Jazz | yes | 1 | 50.0% | - |" in table and "| speech | no | 2 | 25.0% | 50.0% |" in table


def test_a_first_look_decides_where_it_is_clear_by_the_margin_and_the_whole_file_decides_elsewhere() -> None:
    samples = [
        Sample("speech", False, "speech", "speaker-1", True),
        Sample("rain", False, "environment", "source-1", True),
        Sample("song", True, "GTZAN Jazz", "artist-1", True),
        Sample("other song", True, "GTZAN Rock", "artist-2", True),
    ]
    thresholds = np.full((1, 4), 0.4)
    held = HeldOut(samples, np.array([[0.1, 0.9, 0.95, 0.9]]), thresholds)
    # first looks: speech clearly not music; rain clearly music (and the rule settles it: placed); the song only just
    # music (heard whole instead); the other song clearly music but its placement not settled (heard whole)
    glance = HeldOut(samples, np.array([[0.2, 0.95, 0.65, 0.95]]), thresholds)
    places = np.array([True, False, True, False])
    verdicts, placed, share = at_first_look(held, places, glance, np.array([True, True, True, False]), sure=0.6)
    assert verdicts.probabilities.tolist() == [[0.2, 0.95, 0.95, 0.9]]
    assert placed.tolist() == [[False, True, True, False]]
    assert share == 0.5
    figures = nonmusic_figures(verdicts, placed, sure=0.6)
    assert figures["nonmusic_placed_in_a_genre"] == 0.5 and figures["music_to_not_music"] == 0.0
