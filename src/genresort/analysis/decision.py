"""From what the model heard to what happens to the file: not music, a genre to sort by, or "unsure" for a person
to decide.

Pure and small, and the one place that says what a decision looks like as JSON: the sorting log, `classify --json`
and `sort --dry-run` all print `decision_fields`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

UNSURE = "unsure"
NOT_MUSIC = "not-music"


@dataclass(frozen=True)
class Prediction:
    """The model's view of one file: every genre with its calibrated probability, most likely first, and how
    likely the sound is music at all (None from a model that cannot tell)."""

    ranking: tuple[tuple[str, float], ...]
    model_id: str
    music_probability: float | None = None
    heard_seconds: float | None = None  # how much sound the prediction rests on
    # P(the top genre is right), from a placement check calibrated on real recordings; None: the model has none
    placement_probability: float | None = None
    # Distance to the music the model learnt from, in units of its familiarity threshold: above 1, the sound is
    # unlike anything it learnt (a genre outside its taxonomy); None: the model cannot tell
    novelty: float | None = None

    @property
    def genre(self) -> str:
        return self.ranking[0][0]

    @property
    def confidence(self) -> float:
        return self.ranking[0][1]

    @property
    def top(self) -> tuple[tuple[str, float], ...]:
        return self.ranking[:3]


class DecisionKind(StrEnum):
    GENRE = "genre"  # sure enough to sort into the genre's folder
    UNSURE = "unsure"  # below the threshold: a person decides, helped by the top 3
    NOT_MUSIC = "not-music"  # speech, noise, field recordings: never in a genre folder


@dataclass(frozen=True)
class Thresholds:
    confidence: float  # below it, a genre is not sure enough: unsure
    music: float = 0.5  # below it, the music probability says the sound is not music
    music_sure: float = 0.5  # below it (and above `music`), not sure it is music: unsure, never a genre
    # A sound heard for less than this is too short to call not music (a 2 s rap fragment scores like speech):
    # below `music_sure` it is unsure instead.
    shortest_not_music_seconds: float = 0.0
    # The placement check's threshold; when set (and the prediction has a placement probability), it decides
    # instead of `confidence`
    placement: float | None = None


@dataclass(frozen=True)
class AlbumVerdict:
    """What the tracks of one inbox subfolder (an album, a release) say together."""

    genre: str | None  # the genre every track of the folder goes to; None: each track decides alone
    votes: tuple[tuple[str, int], ...]  # tracks sure of each genre, most first
    tracks: int  # tracks heard
    compilation: bool = False  # the sure tracks clearly disagree: each track decides alone


@dataclass(frozen=True)
class Decision:
    kind: DecisionKind
    prediction: Prediction
    thresholds: Thresholds
    album: AlbumVerdict | None = None  # for a track of an album: what its album decided

    @property
    def label(self) -> str:
        """The genre to sort by (the album's, for a track of an album that has one), "unsure" or "not-music"."""
        if self.kind is DecisionKind.GENRE:
            if self.album is not None and self.album.genre is not None:
                return self.album.genre
            return self.prediction.genre
        return UNSURE if self.kind is DecisionKind.UNSURE else NOT_MUSIC


def decide_album(decisions: Sequence[Decision], placed: Sequence[str] = ()) -> AlbumVerdict:
    """One genre for an album from its tracks' own decisions (and the genres of its tracks `placed` before, which
    the rest follows): the genre most sure tracks agree on, if more than half of them do. No sure track: each track
    decides alone (most go to unsure). Sure tracks that clearly disagree (no genre has a majority of them): a
    compilation, each track decides alone. Tracks unsure, or not music (an interlude, a spoken intro), follow the
    album: one sure track in a folder of unsure ones decides for them, as a person sorting by album would."""
    sure = [decision.label for decision in decisions if decision.kind is DecisionKind.GENRE] + list(placed)
    votes = tuple(Counter(sure).most_common())
    if not votes:
        return AlbumVerdict(None, votes, len(decisions))
    genre, count = votes[0]
    if 2 * count > len(sure):
        return AlbumVerdict(genre, votes, len(decisions))
    return AlbumVerdict(None, votes, len(decisions), compilation=True)


def with_album(decision: Decision, album: AlbumVerdict) -> Decision:
    """A track's decision as part of its album: sorted into the album's genre when it has one, else its own."""
    if album.genre is None:
        return replace(decision, album=album)
    return replace(decision, kind=DecisionKind.GENRE, album=album)


def sure_of_genre(prediction: Prediction, thresholds: Thresholds) -> bool:
    """The placement check where the model has one (its probability means the same on a real song as on a GTZAN
    clip), else the confidence; and never for a sound unlike the music the model learnt from."""
    if prediction.novelty is not None and prediction.novelty > 1.0:
        return False
    if thresholds.placement is not None and prediction.placement_probability is not None:
        return prediction.placement_probability >= thresholds.placement
    return prediction.confidence >= thresholds.confidence


def decide(prediction: Prediction, thresholds: Thresholds) -> Decision:
    """First whether the sound is music at all, then a genre only when the model is sure enough to act alone: a
    wrong genre in a person's tags is worse than none."""
    music = prediction.music_probability
    long_enough = (prediction.heard_seconds or 0.0) >= thresholds.shortest_not_music_seconds
    if music is not None and music < thresholds.music and long_enough:
        kind = DecisionKind.NOT_MUSIC
    elif (music is None or music >= thresholds.music_sure) and sure_of_genre(prediction, thresholds):
        kind = DecisionKind.GENRE
    else:
        kind = DecisionKind.UNSURE
    return Decision(kind, prediction, thresholds)


#: How far past its thresholds a decision from a first look must be to stand without hearing the rest (in
#: probability). Chosen with genresort evaluate's held-out figures, which it leaves within a point of hearing all.
FIRST_LOOK_MARGIN = 0.1


def settled_at_first_look(decision: Decision, margin: float = FIRST_LOOK_MARGIN) -> bool:
    """Whether a decision made from part of a file is clear enough that hearing the rest would not change it: a genre
    placed with `margin` to spare on every test it passed, or not music with `margin` to spare. Unsure never is (the
    rest may settle it)."""
    prediction, thresholds = decision.prediction, decision.thresholds
    music = prediction.music_probability
    if decision.kind is DecisionKind.NOT_MUSIC:
        return music is not None and music < thresholds.music - margin
    if decision.kind is not DecisionKind.GENRE or (music is not None and music < thresholds.music_sure + margin):
        return False
    if thresholds.placement is not None and prediction.placement_probability is not None:
        return prediction.placement_probability >= thresholds.placement + margin
    return prediction.confidence >= thresholds.confidence + margin


def unsure_reason(decision: Decision) -> str:
    """Which of the decision's tests held the genre back, in words (for an unsure decision)."""
    prediction, thresholds = decision.prediction, decision.thresholds
    if prediction.music_probability is not None and prediction.music_probability < thresholds.music_sure:
        return f"not sure it is music: {prediction.music_probability:.0%}"
    if prediction.novelty is not None and prediction.novelty > 1.0:
        return "unlike the music the model learnt from"
    if thresholds.placement is not None and prediction.placement_probability is not None:
        return f"right {prediction.placement_probability:.0%} of the time, below {thresholds.placement:.0%}"
    return f"below {thresholds.confidence:.0%}"


def decision_fields(decision: Decision) -> dict[str, object]:
    """The decision as JSON fields: `genre` is always the most likely one, `decision` what was done about it."""
    prediction = decision.prediction
    fields: dict[str, object] = {
        "genre": prediction.genre,
        "confidence": round(prediction.confidence, 4),
        "top": [[genre, round(probability, 4)] for genre, probability in prediction.top],
        "decision": decision.label,
        "threshold": round(decision.thresholds.confidence, 4),
        "model": prediction.model_id,
    }
    if prediction.placement_probability is not None and decision.thresholds.placement is not None:
        fields["placement_probability"] = round(prediction.placement_probability, 4)
        fields["placement_threshold"] = round(decision.thresholds.placement, 4)
    if prediction.novelty is not None:
        fields["novelty"] = round(prediction.novelty, 4)
    if prediction.music_probability is not None:
        fields["music_probability"] = round(prediction.music_probability, 4)
        fields["music_threshold"] = round(decision.thresholds.music, 4)
    if decision.album is not None:
        fields["album_genre"] = decision.album.genre
        fields["album_votes"] = [list(vote) for vote in decision.album.votes]
        fields["compilation"] = decision.album.compilation
    return fields
