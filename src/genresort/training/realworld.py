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

import numpy as np

from genresort.analysis.decision import UNSURE

#: The decision for a file that is not music at all (issue 7's `not-music`): never placed in a genre.
NOT_MUSIC = "not-music"


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
        return float(np.nanmean([scores.precision for scores in self.repeats]))

    @property
    def precision_range(self) -> tuple[float, float]:
        values = [scores.precision for scores in self.repeats]
        return float(np.nanmin(values)), float(np.nanmax(values))


def cross_validate_rule(
    published: Sequence[Sequence[str]], groups: Sequence[str], fit_rule: FitRule, folds: int = 5, repeats: int = 10
) -> HeldOut:
    """Coverage and precision of a rule on held-out artists, `repeats` times `folds` folds."""
    runs = [held_out_decisions(groups, fit_rule, folds, seed) for seed in range(repeats)]
    return HeldOut(tuple(score(run, published) for run in runs), tuple(tuple(run) for run in runs))
