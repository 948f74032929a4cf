"""From a prediction to a decision: not music first, then a genre only when sure enough; and its JSON shape."""

from __future__ import annotations

import json

from genresort.analysis.decision import (
    Decision,
    DecisionKind,
    Prediction,
    Thresholds,
    decide,
    decide_album,
    decision_fields,
    settled_at_first_look,
    unsure_reason,
    with_album,
)

RANKING = (("Jazz", 0.7), ("Blues", 0.2), ("Rock", 0.06), ("Pop", 0.04))


def test_a_confident_prediction_of_music_is_its_genre() -> None:
    decision = decide(Prediction(RANKING, "m", music_probability=0.99), Thresholds(confidence=0.6, music=0.5))
    assert decision.kind is DecisionKind.GENRE and decision.label == "Jazz"


def test_below_the_confidence_threshold_it_is_unsure() -> None:
    decision = decide(Prediction(RANKING, "m", music_probability=0.99), Thresholds(confidence=0.8))
    assert decision.kind is DecisionKind.UNSURE and decision.label == "unsure"


def test_not_music_comes_first_however_confident_the_genre() -> None:
    decision = decide(Prediction(RANKING, "m", music_probability=0.1), Thresholds(confidence=0.1, music=0.5))
    assert decision.kind is DecisionKind.NOT_MUSIC and decision.label == "not-music"


def test_a_model_that_cannot_tell_music_decides_on_the_genre_alone() -> None:
    decision = decide(Prediction(RANKING, "m"), Thresholds(confidence=0.6, music=0.5))
    assert decision.kind is DecisionKind.GENRE


def test_the_json_shape_names_the_most_likely_genre_and_what_was_done() -> None:
    fields = decision_fields(decide(Prediction(RANKING, "m", 0.1234567), Thresholds(confidence=0.6, music=0.5)))
    assert fields == {
        "genre": "Jazz",
        "confidence": 0.7,
        "top": [["Jazz", 0.7], ["Blues", 0.2], ["Rock", 0.06]],
        "decision": "not-music",
        "threshold": 0.6,
        "model": "m",
        "music_probability": 0.1235,
        "music_threshold": 0.5,
    }
    json.dumps(fields)
    assert "music_probability" not in decision_fields(decide(Prediction(RANKING, "m"), Thresholds(0.6)))


def test_between_the_music_thresholds_a_sound_is_not_sure_music_and_never_gets_a_genre() -> None:
    thresholds = Thresholds(confidence=0.1, music=0.5, music_sure=0.7)
    doubtful = decide(Prediction(RANKING, "m", music_probability=0.6), thresholds)
    assert doubtful.kind is DecisionKind.UNSURE
    assert decide(Prediction(RANKING, "m", music_probability=0.7), thresholds).kind is DecisionKind.GENRE


def test_a_sound_too_short_to_judge_is_unsure_rather_than_not_music() -> None:
    thresholds = Thresholds(confidence=0.1, music=0.5, music_sure=0.7, shortest_not_music_seconds=5.0)
    fragment = Prediction(RANKING, "m", music_probability=0.3, heard_seconds=2.5)
    assert decide(fragment, thresholds).kind is DecisionKind.UNSURE
    memo = Prediction(RANKING, "m", music_probability=0.3, heard_seconds=30.0)
    assert decide(memo, thresholds).kind is DecisionKind.NOT_MUSIC


def test_a_placement_check_decides_instead_of_the_confidence_where_the_model_has_one() -> None:
    checked = Thresholds(confidence=0.9, placement=0.6)
    sure = Prediction(RANKING, "m", music_probability=0.99, placement_probability=0.65)
    doubtful = Prediction(RANKING, "m", music_probability=0.99, placement_probability=0.55)
    assert decide(sure, checked).kind is DecisionKind.GENRE  # though its confidence 0.7 is below 0.9
    assert decide(doubtful, checked).kind is DecisionKind.UNSURE
    assert unsure_reason(decide(doubtful, checked)) == "right 55% of the time, below 60%"
    # a person's own confidence threshold (placement None) puts the check aside
    assert decide(doubtful, Thresholds(confidence=0.6)).kind is DecisionKind.GENRE
    fields = decision_fields(decide(sure, checked))
    assert (fields["placement_probability"], fields["placement_threshold"]) == (0.65, 0.6)


def test_a_sound_unlike_the_music_the_model_learnt_is_never_given_a_genre() -> None:
    thresholds = Thresholds(confidence=0.1)
    stranger = decide(Prediction(RANKING, "m", novelty=1.3), thresholds)
    assert stranger.kind is DecisionKind.UNSURE
    assert unsure_reason(stranger) == "unlike the music the model learnt from"
    assert decision_fields(stranger)["novelty"] == 1.3
    assert decide(Prediction(RANKING, "m", novelty=0.8), thresholds).kind is DecisionKind.GENRE


# --- albums -------------------------------------------------------------------------------------------------------


def track(genre: str, confidence: float) -> Decision:
    return decide(Prediction(((genre, confidence), ("Other", 1 - confidence)), "m", 0.99), Thresholds(confidence=0.5))


def test_an_album_goes_where_most_of_its_sure_tracks_say_and_takes_its_unsure_tracks_along() -> None:
    tracks = [track("Metal", 0.9), track("Metal", 0.8), track("Rock", 0.7), track("Blues", 0.3)]
    album = decide_album(tracks)
    assert (album.genre, album.votes, album.tracks, album.compilation) == (
        "Metal",
        (("Metal", 2), ("Rock", 1)),
        4,
        False,
    )
    placed = [with_album(decision, album) for decision in tracks]
    assert [decision.label for decision in placed] == ["Metal"] * 4  # the unsure Blues track and the Rock one too
    assert decision_fields(placed[3])["album_genre"] == "Metal" and decision_fields(placed[3])["genre"] == "Blues"


def test_sure_tracks_that_clearly_disagree_are_a_compilation_each_deciding_alone() -> None:
    tracks = [track("Metal", 0.9), track("Classical", 0.9), track("Jazz", 0.2)]
    album = decide_album(tracks)
    assert album.genre is None and album.compilation
    assert [with_album(decision, album).label for decision in tracks] == ["Metal", "Classical", "unsure"]
    assert decision_fields(with_album(tracks[0], album))["compilation"] is True


def test_an_album_with_no_sure_track_stays_unsure_and_one_partly_sorted_follows_its_sorted_tracks() -> None:
    unsure = [track("Jazz", 0.3), track("Blues", 0.2)]
    assert decide_album(unsure).genre is None and not decide_album(unsure).compilation
    assert [with_album(decision, decide_album(unsure)).label for decision in unsure] == ["unsure", "unsure"]
    assert decide_album(unsure, placed=["Jazz", "Jazz"]).genre == "Jazz"  # its first tracks went there


def test_a_first_look_settles_only_decisions_clear_of_every_threshold_by_the_margin() -> None:
    thresholds = Thresholds(confidence=0.6, music=0.4, music_sure=0.7, placement=0.7)

    def settled(music: float, placement: float) -> bool:
        prediction = Prediction(RANKING, "m", music_probability=music, placement_probability=placement)
        return settled_at_first_look(decide(prediction, thresholds), margin=0.1)

    assert settled(music=0.95, placement=0.85)
    assert not settled(music=0.95, placement=0.75)  # placed, but too close to the check's threshold
    assert not settled(music=0.75, placement=0.95)  # placed, but too close to being unsure it is music
    assert not settled(music=0.95, placement=0.5)  # unsure: the rest of the file may settle it
    assert settled(music=0.25, placement=0.95)  # clearly not music
    assert not settled(music=0.35, placement=0.95)  # not music, but too close to the threshold
    no_check = Thresholds(confidence=0.6, music=0.4, music_sure=0.7)  # a person's own threshold decides
    assert settled_at_first_look(decide(Prediction(RANKING, "m", music_probability=0.9), no_check), margin=0.1)
    assert not settled_at_first_look(decide(Prediction(RANKING, "m", music_probability=0.9), no_check), margin=0.15)
