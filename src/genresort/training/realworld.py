"""What "right" means on real recordings, and how right a sorter is there.

The realworld set's README defines it: a decision is right when the genre the file is placed in is compatible
with one of the song's published (AllMusic) genres; a song with no compatible genre in the sorter's taxonomy is
handled right only when it is not placed. We report the share of files placed ("coverage") and, among them, the
share placed right ("precision"), always on artists that chose nothing about the rule being measured.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from genresort.analysis.decision import FIRST_LOOK_MARGIN, NOT_MUSIC, UNSURE
from genresort.analysis.features.clip import ClipFeatures, taggram_mean_columns
from genresort.analysis.model import places_agree
from genresort.analysis.model_file import LinearClassifier
from genresort.analysis.placement_check import CHECK_CLASSES, PlacementCheck, TagAgreement
from genresort.progress import progress
from genresort.training.classifier import export_logistic
from genresort.training.dataset import TrainingSet
from genresort.training.evaluation import choose_threshold


@dataclass(frozen=True)
class Compatible:
    """Our genres that count as right for one published genre."""

    gtzan: frozenset[str]  # among GTZAN's ten
    wider: frozenset[str] = frozenset()  # bracketed in the README: only in a taxonomy wider than GTZAN's


def compatible(*gtzan: str, wider: Iterable[str] = ()) -> Compatible:
    return Compatible(frozenset(gtzan), frozenset(wider))


NONE_OF_OURS = compatible()

#: The README's table: AllMusic genre -> the genres of ours a song of that genre may be placed in.
COMPATIBILITY: dict[str, Compatible] = {
    "Pop/Rock": compatible("Pop", "Rock", "Metal", "Disco", wider=("Punk", "Alternative", "Indie")),
    "Rap": compatible("Hip-Hop"),
    "R&B": compatible("Disco", "Pop", wider=("Soul", "R&B", "Funk")),
    "Jazz": compatible("Jazz"),
    "Vocal": compatible("Jazz", "Pop"),
    "Easy Listening": compatible("Jazz", "Pop"),
    "Country": compatible("Country"),
    "Folk": compatible("Country", wider=("Folk",)),
    "Blues": compatible("Blues"),
    "Reggae": compatible("Reggae"),
    "Classical": compatible("Classical"),
    "Stage & Screen": compatible("Classical", wider=("Soundtrack",)),
    "Electronic": compatible(wider=("Electronic", "Dance", "House", "Techno", "Ambient")),
    "New Age": compatible(wider=("New Age", "Ambient")),
    "Latin": compatible(wider=("Latin",)),
    "International": NONE_OF_OURS,
    "Religious": NONE_OF_OURS,
    "Holiday": NONE_OF_OURS,
    "Children's": NONE_OF_OURS,
    "Comedy/Spoken": NONE_OF_OURS,
    "Avant-Garde": NONE_OF_OURS,
}


def compatible_genres(published: Iterable[str]) -> frozenset[str]:
    """Every genre (GTZAN's and wider ones) that is right for a song with these published genres."""
    right: set[str] = set()
    for genre in published:
        if genre not in COMPATIBILITY:
            raise ValueError(f"published genre {genre!r} is not in the realworld README's compatibility table")
        right |= COMPATIBILITY[genre].gtzan | COMPATIBILITY[genre].wider
    return frozenset(right)


def is_placed(decision: str) -> bool:
    """Placed in a genre folder, as opposed to held back (unsure) or not music."""
    return decision not in (UNSURE, NOT_MUSIC)


def is_right(decision: str, published: Iterable[str]) -> bool:
    """Placed in a genre compatible with one of the published genres (a held-back file is never "right" here:
    it simply does not count toward precision)."""
    return is_placed(decision) and decision in compatible_genres(published)


def placeable(published: Iterable[str], taxonomy: Iterable[str]) -> bool:
    """Whether the taxonomy has any genre this song may rightly be placed in."""
    return bool(compatible_genres(published) & set(taxonomy))


@dataclass(frozen=True)
class Scores:
    files: int
    placed: int
    right: int

    @property
    def coverage(self) -> float:
        return self.placed / self.files if self.files else float("nan")

    @property
    def precision(self) -> float:
        return self.right / self.placed if self.placed else float("nan")


def score(decisions: Sequence[str], published: Sequence[Sequence[str]]) -> Scores:
    """Coverage and precision of one decision per file."""
    if len(decisions) != len(published):
        raise ValueError(f"{len(decisions)} decisions for {len(published)} files")
    return Scores(
        files=len(decisions),
        placed=sum(is_placed(decision) for decision in decisions),
        right=sum(is_right(decision, genres) for decision, genres in zip(decisions, published, strict=True)),
    )


@dataclass(frozen=True)
class Breakdown:
    """What happened to the songs that list one published genre."""

    scores: Scores
    wrong: Counter  # genre placed in, when not compatible -> files


def by_published_genre(decisions: Sequence[str], published: Sequence[Sequence[str]]) -> dict[str, Breakdown]:
    """Per published genre (a song counts under each genre it lists), its scores and where its wrong files went."""
    breakdown = {}
    for genre in sorted({genre for genres in published for genre in genres}):
        rows = [index for index, genres in enumerate(published) if genre in genres]
        chosen = [decisions[index] for index in rows]
        breakdown[genre] = Breakdown(
            scores=score(chosen, [published[index] for index in rows]),
            wrong=Counter(
                decisions[index]
                for index in rows
                if is_placed(decisions[index]) and not is_right(decisions[index], published[index])
            ),
        )
    return breakdown


# --- artist-grouped cross-validation of a decision rule ------------------------------------------------------------


def artist_folds(groups: Sequence[str], folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) indices of `folds` folds with every artist wholly on one side, artists shuffled by `seed`."""
    groups = np.asarray(groups)
    artists = np.random.default_rng(seed).permutation(np.unique(groups))
    fold_of_artist = {artist: position % folds for position, artist in enumerate(artists)}
    fold = np.array([fold_of_artist[group] for group in groups])
    return [(np.flatnonzero(fold != index), np.flatnonzero(fold == index)) for index in range(folds)]


#: A decision rule's fitting: the training files' indices -> a rule deciding the given (test) files' indices.
FitRule = Callable[[np.ndarray], Callable[[np.ndarray], Sequence[str]]]


def held_out_decisions(groups: Sequence[str], fit_rule: FitRule, folds: int = 5, seed: int = 0) -> list[str]:
    """One decision per file, each made by the rule fitted on the other artists' files only."""
    decisions: list[str] = [""] * len(groups)
    for train, test in artist_folds(groups, folds, seed):
        for index, decision in zip(test, fit_rule(train)(test), strict=True):
            decisions[index] = decision
    return decisions


@dataclass(frozen=True)
class HeldOut:
    """A rule's scores on held-out artists, one per repeat of the cross-validation (different artist shuffles)."""

    repeats: tuple[Scores, ...]
    decisions: tuple[tuple[str, ...], ...]  # per repeat, one per file

    @property
    def coverage(self) -> float:
        return float(np.mean([scores.coverage for scores in self.repeats]))

    @property
    def precision(self) -> float:
        """Mean over the repeats that placed anything (nan if none did)."""
        values = self.placed_precisions
        return float(np.mean(values)) if values else float("nan")

    @property
    def precision_range(self) -> tuple[float, float]:
        values = self.placed_precisions
        return (float(min(values)), float(max(values))) if values else (float("nan"), float("nan"))

    @property
    def placed_precisions(self) -> list[float]:
        return [scores.precision for scores in self.repeats if scores.placed]


def cross_validate_rule(
    published: Sequence[Sequence[str]], groups: Sequence[str], fit_rule: FitRule, folds: int = 5, repeats: int = 10
) -> HeldOut:
    """Coverage and precision of a rule on held-out artists, `repeats` times `folds` folds."""
    runs = [
        held_out_decisions(groups, fit_rule, folds, seed) for seed in progress(range(repeats), repeats, "real songs")
    ]
    return HeldOut(tuple(score(run, published) for run in runs), tuple(tuple(run) for run in runs))


# --- the evidence a placement is checked on ------------------------------------------------------------------------

#: The MSD tagger's genre tags, each named by the AllMusic genre it stands for (its other tags name decades, moods,
#: voices or instruments). Through COMPATIBILITY they say which of our genres the tagger supports for a clip.
MSD_GENRE_TAGS = {
    "rock": "Pop/Rock",
    "pop": "Pop/Rock",
    "alternative": "Pop/Rock",
    "indie": "Pop/Rock",
    "alternative rock": "Pop/Rock",
    "classic rock": "Pop/Rock",
    "indie rock": "Pop/Rock",
    "hard rock": "Pop/Rock",
    "Progressive rock": "Pop/Rock",
    "indie pop": "Pop/Rock",
    "punk": "Pop/Rock",
    "metal": "Pop/Rock",
    "heavy metal": "Pop/Rock",
    "jazz": "Jazz",
    "blues": "Blues",
    "country": "Country",
    "folk": "Folk",
    "Hip-Hop": "Rap",
    "soul": "R&B",
    "rnb": "R&B",
    "funk": "R&B",
    "easy listening": "Easy Listening",
    "electronic": "Electronic",
    "electronica": "Electronic",
    "electro": "Electronic",
    "dance": "Electronic",
    "House": "Electronic",
    "ambient": "Electronic",
    "chillout": "Electronic",
}
TAGGER = "msd_musicnn"


def read_tag_names(tags_file: Path) -> list[str]:
    """A tagger's tag names, one per line, in its taggram's column order (models/musicnn/tags_msd.txt)."""
    return [line for line in tags_file.read_text().splitlines() if line]


def tag_agreement(
    genres: Sequence[str], clip: ClipFeatures, network_names: Sequence[str], tag_names: Sequence[str]
) -> TagAgreement:
    """The MSD tagger's agreement for these genres (in the genre model's column order), read from embedding vectors
    laid out like `clip`'s."""
    first = taggram_mean_columns(clip, network_names, TAGGER)[0]
    columns = np.array([first + list(tag_names).index(tag) for tag in MSD_GENRE_TAGS])
    support = np.array(
        [[genre in compatible_genres([published]) for published in MSD_GENRE_TAGS.values()] for genre in genres],
        dtype=np.float64,
    )
    return TagAgreement(columns, support)


# --- the placement check: calibrated on real recordings ------------------------------------------------------------

#: Artist folds of the check's own cross-validation, on which its threshold is chosen.
CHECK_FOLDS = 5


def fit_check_classifier(evidence_rows: np.ndarray, right: np.ndarray) -> LinearClassifier:
    """A logistic regression of "right" on the evidence, as plain arrays."""
    scaler = StandardScaler().fit(evidence_rows)
    regression = LogisticRegression(max_iter=1000).fit(scaler.transform(evidence_rows), right)
    assert list(regression.classes_) == [False, True]
    return export_logistic(scaler, regression, CHECK_CLASSES)


def fit_placement_check(
    evidence_rows: np.ndarray,
    right: np.ndarray,
    groups: Sequence[str],
    target_precision: float,
    agreement: TagAgreement,
) -> PlacementCheck:
    """The check fitted on all these files, with the lowest threshold at which the files it places are right
    `target_precision` of the time, judged on probabilities from checks fitted without the file's artist (chosen
    on the fitted check's own probabilities, the threshold came out 1-3 points short of its target on new artists).
    Only real songs teach it: with GTZAN's held-out clips added (at weights 0.1 to 1), real songs placed at 90% right
    fell from 50% to 46-25% (tools/realworld_study.py, issue 7's closing note)."""
    held_out = np.zeros(len(right))
    for train, test in artist_folds(groups, CHECK_FOLDS, seed=2):
        held_out[test] = fit_check_classifier(evidence_rows[train], right[train]).predict_proba(evidence_rows[test])[
            :, 1
        ]
    threshold = choose_threshold(right, held_out, target_precision)["value"]
    return PlacementCheck(fit_check_classifier(evidence_rows, right), threshold, agreement)


# --- fitting the whole rule on real recordings ---------------------------------------------------------------------

#: Indices of the real-world files a genre model may learn from -> its (files, genres) probabilities for every file.
ProbabilitiesFor = Callable[[np.ndarray], np.ndarray]
#: (files, genres) probabilities of every file -> (files, evidence) rows of every file.
EvidenceOf = Callable[[np.ndarray], np.ndarray]


def pseudo_labels(published: Sequence[Sequence[str]], probabilities: np.ndarray, genres: Sequence[str]) -> list[str]:
    """The genre each real song teaches a genre model: of its compatible genres among `genres`, the one a model that
    never heard it (trained on GTZAN alone) finds likeliest; "" where none is compatible (the song teaches nothing).
    A Pop/Rock song is compatible with Pop, Rock, Metal and Disco: the model, not the table, picks which."""
    labels = []
    for row, song in zip(probabilities, published, strict=True):
        candidates = [index for index, genre in enumerate(genres) if genre in compatible_genres(song)]
        labels.append(genres[max(candidates, key=lambda index: row[index])] if candidates else "")
    return labels


def out_of_fold_probabilities(
    probabilities_for: ProbabilitiesFor, groups: Sequence[str], files: np.ndarray, folds: int = 5, seed: int = 1
) -> np.ndarray:
    """Probabilities for `files`, each from a genre model that learnt from none of its artist's songs (rows of other
    files are zero)."""
    sub_groups = np.asarray(groups)[files]
    result = None
    for train, test in artist_folds(sub_groups, folds, seed):
        probabilities = probabilities_for(files[train])
        if result is None:
            result = np.zeros_like(probabilities)
        result[files[test]] = probabilities[files[test]]
    return result


def fit_check_on(
    files: np.ndarray,
    probabilities_for: ProbabilitiesFor,
    evidence_of: EvidenceOf,
    groups: Sequence[str],
    published: Sequence[Sequence[str]],
    genres: Sequence[str],
    target_precision: float,
    agreement: TagAgreement,
) -> PlacementCheck:
    """The placement check fitted on `files`, on probabilities they would get as songs the genre model never heard."""
    probabilities = out_of_fold_probabilities(probabilities_for, groups, files)
    top = np.asarray(genres)[probabilities.argmax(axis=1)]
    right = np.array([is_right(top[index], published[index]) for index in files])
    return fit_placement_check(
        evidence_of(probabilities)[files], right, np.asarray(groups)[files].tolist(), target_precision, agreement
    )


def settled_at_first_look(
    check: PlacementCheck, evidence_rows: np.ndarray, glance: np.ndarray, places: list[np.ndarray]
) -> np.ndarray:
    """Whether the check passes each first look with FIRST_LOOK_MARGIN to spare and each place alone finds its top
    genre likeliest too (decision.settled_at_first_look, model.places_agree): `glance` the first looks' (files,
    genres) probabilities, `places` each place's."""
    passes = check.probability(evidence_rows) >= check.threshold + FIRST_LOOK_MARGIN
    return passes & places_agree(np.stack(places), glance.argmax(axis=1))


@dataclass(frozen=True)
class FirstLook:
    """What a genre model makes of a first look at each real song (features.clip.FirstLookVectors): the rule decides
    from it where it is settled, as GenreModel.analyse does."""

    probabilities_for: ProbabilitiesFor  # of the first looks
    places_for: Callable[[np.ndarray], list[np.ndarray]]  # of each place alone
    evidence_of: EvidenceOf  # of the first looks' probabilities


def fit_placement_rule(
    probabilities_for: ProbabilitiesFor,
    evidence_of: EvidenceOf,
    groups: Sequence[str],
    published: Sequence[Sequence[str]],
    genres: Sequence[str],
    target_precision: float,
    agreement: TagAgreement,
    first_look: FirstLook | None = None,
) -> FitRule:
    """The rule as cross_validate_rule measures it: from the training files alone, a genre model (which may learn from
    them) and a placement check; a test file is placed in its top genre when the check passes, else unsure. With a
    `first_look`, a file whose first look passes the check with the margin to spare is placed from that alone."""

    def fit(train: np.ndarray) -> Callable[[np.ndarray], list[str]]:
        check = fit_check_on(
            train, probabilities_for, evidence_of, groups, published, genres, target_precision, agreement
        )
        probabilities = probabilities_for(train)
        top = np.asarray(genres)[probabilities.argmax(axis=1)]
        decisions = np.where(check.places(evidence_of(probabilities)), top, UNSURE)
        if first_look is not None:
            glance = first_look.probabilities_for(train)
            settled = settled_at_first_look(check, first_look.evidence_of(glance), glance, first_look.places_for(train))
            decisions = np.where(settled, np.asarray(genres)[glance.argmax(axis=1)], decisions)
        return lambda test: [str(decisions[index]) for index in test]

    return fit


@dataclass(frozen=True)
class Rows:
    """A classifier's training rows, as fit_classifier takes them."""

    vectors: np.ndarray
    genres: np.ndarray
    groups: np.ndarray
    weights: np.ndarray


def with_songs(
    rows: Rows, songs: TrainingSet, labels: Sequence[str], groups: Sequence[str], chosen: np.ndarray
) -> Rows:
    """`rows` (GTZAN's) followed by the rows of the `chosen` real songs (each clip whole and its windows, weighted as
    GTZAN's are), each labelled with its pseudo-label; a song labelled "" is left out."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    learnt = np.flatnonzero(np.isin(songs.clip_of_row, chosen[labels[chosen] != ""]))
    song_of_row = songs.clip_of_row[learnt]
    return Rows(
        np.concatenate([rows.vectors, songs.vectors[learnt]]),
        np.concatenate([rows.genres, labels[song_of_row]]),
        np.concatenate([rows.groups, groups[song_of_row]]),
        np.concatenate([rows.weights, songs.weights[learnt]]),
    )
