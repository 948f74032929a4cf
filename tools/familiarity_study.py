"""Familiarity: how often the check flags songs like those a genre model learnt from, and songs unlike them.

    .venv/bin/python tools/familiarity_study.py [--data ../shared/data] [--repeats 3]

A familiarity is fitted (training.familiarity.fit_familiarity) on the GTZAN clips of a taxonomy: all ten genres, or
two of them, as a person's own `train --folders` might have. Its own genres' clips are scored on held-out artists
(5 artist folds, repeated with different shuffles; never a random split); everything it never learnt from (the
other GTZAN genres, the real-world songs, the non-music recordings) is scored by the familiarity fitted on all of
the taxonomy's clips. A real song counts as outside the taxonomy when none of its published genres is compatible
with one of the taxonomy's (the realworld README's table, training/realworld.py). Then the two-genre taxonomies
again as a person's own folders might hold them: a few artists per genre, a few clips each, drawn at random; there
the taxonomy's clips of the artists not drawn stand for new songs of its genres. Last, what the check costs at run
time. Features come from .cache/features (the first run extracts what is missing: a few minutes); the rest takes
about three minutes.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from genresort.analysis.familiarity import parse_familiarity
from genresort.analysis.features.clip import ClipFeatures, FeatureSet, feature_vector
from genresort.training.dataset import GTZAN_GENRE_NAMES, read_manifest, training_set
from genresort.training.familiarity import fit_familiarity
from genresort.training.fit import NETWORK_NAMES, prepare
from genresort.training.openworld import features_of, read_nonmusic, read_realworld
from genresort.training.realworld import artist_folds, placeable

NETWORKS = list(NETWORK_NAMES)
ALL_GENRES = tuple(sorted(GTZAN_GENRE_NAMES.values()))
TAXONOMIES = (
    ALL_GENRES,
    ("Classical", "Metal"),
    ("Blues", "Reggae"),
    ("Country", "Jazz"),
    ("Disco", "Pop"),
)
KEEPS = (0.95, 0.98, 0.99)
NEIGHBOURS = (1, 3, 5, 10)
DIMENSIONS = (8, 16, 32, 64)
DEFAULTS = {"dimensions": 32, "neighbours": 3, "keep": 0.98}  # fit_familiarity's, chosen from these tables
#: A person's own small taxonomy: this many artists per genre, drawn at random, with at most this many clips each.
SMALL_ARTISTS = 4
SMALL_CLIPS = 3
SMALL_DRAWS = 20


@dataclass(frozen=True)
class Study:
    """Whole-clip embedding vectors of everything measured."""

    gtzan: np.ndarray  # (scored clips, features)
    genres: np.ndarray  # (scored clips,)
    groups: np.ndarray  # (scored clips,) artists
    songs: np.ndarray  # (real songs, features)
    published: list[tuple[str, ...]]
    nonmusic: np.ndarray  # (recordings, features)


def vectors_of(clips: Sequence[ClipFeatures]) -> np.ndarray:
    return np.stack([feature_vector(clip, FeatureSet.EMBEDDING, NETWORKS) for clip in clips])


def load(data: Path, cache: Path) -> Study:
    files, clips = prepare(read_manifest(data / "MANIFEST.tsv"), cache)
    rows = training_set(clips, FeatureSet.EMBEDDING, NETWORKS, with_windows=False)
    scored = np.array([file.scored for file in files])
    songs, song_clips = features_of(read_realworld(data / "realworld" / "MANIFEST.tsv"), cache)
    _, nonmusic_clips = features_of(read_nonmusic(data / "nonmusic" / "MANIFEST.tsv"), cache)
    return Study(
        gtzan=rows.vectors[rows.own_row][scored],
        genres=np.array([file.genre for file in files])[scored],
        groups=np.array([file.group for file in files])[scored],
        songs=vectors_of(song_clips),
        published=[song.published_genres for song in songs],
        nonmusic=vectors_of(nonmusic_clips),
    )


@dataclass(frozen=True)
class Flagged:
    """Shares flagged unfamiliar by a familiarity of one taxonomy."""

    held_out: float  # the taxonomy's own clips, on artists held out
    held_out_per_genre: dict[str, float]
    other_genres: dict[str, float]  # GTZAN genres outside the taxonomy
    songs_outside: float  # real songs with no genre compatible with the taxonomy's
    songs_inside: float  # real songs with one
    inside_count: int  # real songs with one
    nonmusic: float


def measure(study: Study, taxonomy: Sequence[str], repeats: int, **settings: float) -> Flagged:
    own = np.isin(study.genres, taxonomy)
    vectors, groups, genres = study.gtzan[own], study.groups[own], study.genres[own]
    flagged = np.zeros((repeats, len(vectors)), dtype=bool)
    for seed in range(repeats):
        for train, test in artist_folds(groups, 5, seed):
            familiarity = fit_familiarity(vectors[train], groups[train].tolist(), **settings)
            flagged[seed, test] = ~familiarity.familiar(vectors[test])
    familiarity = fit_familiarity(vectors, groups.tolist(), **settings)
    inside = np.array([placeable(published, taxonomy) for published in study.published])
    songs_flagged = ~familiarity.familiar(study.songs)
    others = [genre for genre in ALL_GENRES if genre not in taxonomy]
    return Flagged(
        held_out=float(flagged.mean()),
        held_out_per_genre={genre: float(flagged[:, genres == genre].mean()) for genre in taxonomy},
        other_genres={
            genre: float((~familiarity.familiar(study.gtzan[study.genres == genre])).mean()) for genre in others
        },
        songs_outside=float(songs_flagged[~inside].mean()) if (~inside).any() else float("nan"),
        songs_inside=float(songs_flagged[inside].mean()),
        inside_count=int(inside.sum()),
        nonmusic=float((~familiarity.familiar(study.nonmusic)).mean()),
    )


@dataclass(frozen=True)
class SmallFlagged:
    """Shares flagged by familiarities of small draws of a taxonomy's artists, one share per draw."""

    unseen_artists: np.ndarray  # the taxonomy's clips of the artists not drawn
    other_genres: np.ndarray  # every clip of the other GTZAN genres
    songs_outside: np.ndarray  # real songs with no genre compatible with the taxonomy's


def draw_small(study: Study, taxonomy: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    """Indices of SMALL_ARTISTS artists per genre, at most SMALL_CLIPS clips each."""
    chosen = []
    for genre in taxonomy:
        clips = np.flatnonzero(study.genres == genre)
        artists = np.unique(study.groups[clips])
        for artist in rng.choice(artists, min(SMALL_ARTISTS, len(artists)), replace=False):
            chosen += list(clips[study.groups[clips] == artist][:SMALL_CLIPS])
    return np.array(chosen)


def measure_small(study: Study, taxonomy: Sequence[str], **settings: float) -> SmallFlagged:
    rng = np.random.default_rng(0)
    inside = np.array([placeable(published, taxonomy) for published in study.published])
    own = np.isin(study.genres, taxonomy)
    shares = []
    for _ in range(SMALL_DRAWS):
        chosen = draw_small(study, taxonomy, rng)
        familiarity = fit_familiarity(study.gtzan[chosen], study.groups[chosen].tolist(), **settings)
        flagged, songs_flagged = ~familiarity.familiar(study.gtzan), ~familiarity.familiar(study.songs)
        unseen = own & ~np.isin(study.groups, study.groups[chosen])
        shares.append((flagged[unseen].mean(), flagged[~own].mean(), songs_flagged[~inside].mean()))
    return SmallFlagged(*np.array(shares).T)


def name_of(taxonomy: Sequence[str]) -> str:
    return "all ten" if tuple(taxonomy) == ALL_GENRES else "+".join(taxonomy)


def percent(share: float) -> str:
    return "—" if np.isnan(share) else f"{share:.1%}"


def detail_table(study: Study, results: dict[str, Flagged]) -> str:
    """At the defaults: every genre's share, per taxonomy."""
    lines = [
        "| taxonomy | own clips, held-out artists (per genre) | other GTZAN genres | real songs outside "
        "| real songs inside | non-music |",
        "|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        own = ", ".join(f"{genre} {percent(share)}" for genre, share in result.held_out_per_genre.items())
        others = ", ".join(f"{genre} {percent(share)}" for genre, share in result.other_genres.items()) or "—"
        outside = len(study.published) - result.inside_count
        lines.append(
            f"| {name} | **{percent(result.held_out)}** ({own}) | {others} | {percent(result.songs_outside)} "
            f"(of {outside}) | {percent(result.songs_inside)} (of {result.inside_count}) | {percent(result.nonmusic)} "
            f"(of {len(study.nonmusic)}) |"
        )
    return "\n".join(lines)


def grid_table(rows: list[tuple[str, dict, Flagged]]) -> str:
    """One row per taxonomy and setting: the shares that choose a default."""
    lines = [
        "| taxonomy | dimensions | neighbours | keep | own held-out | other GTZAN genres (mean, lowest) "
        "| real songs outside | real songs inside | non-music |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, settings, result in rows:
        others = list(result.other_genres.values())
        other = f"{percent(float(np.mean(others)))}, {percent(min(others))}" if others else "—"
        lines.append(
            f"| {name} | {settings['dimensions']} | {settings['neighbours']} | {settings['keep']} "
            f"| {percent(result.held_out)} | {other} | {percent(result.songs_outside)} "
            f"| {percent(result.songs_inside)} | {percent(result.nonmusic)} |"
        )
    return "\n".join(lines)


def small_table(rows: list[tuple[str, dict, SmallFlagged]]) -> str:
    """One row per taxonomy and setting, over the draws."""
    lines = [
        "| taxonomy | neighbours | keep | own genres, unseen artists (mean) | other GTZAN genres (median, 10th "
        "percentile) | real songs outside (median) |",
        "|---|---|---|---|---|---|",
    ]
    for name, settings, result in rows:
        lines.append(
            f"| {name} | {settings['neighbours']} | {settings['keep']} | {percent(result.unseen_artists.mean())} "
            f"| {percent(np.median(result.other_genres))}, {percent(np.quantile(result.other_genres, 0.1))} "
            f"| {percent(np.median(result.songs_outside))} |"
        )
    return "\n".join(lines)


def taxonomy_names() -> list[tuple[str, tuple[str, ...]]]:
    return [(name_of(taxonomy), taxonomy) for taxonomy in TAXONOMIES]


def keep_and_neighbours() -> list[dict]:
    return [
        {"dimensions": DEFAULTS["dimensions"], "neighbours": neighbours, "keep": keep}
        for keep in KEEPS
        for neighbours in NEIGHBOURS
    ]


def costs(study: Study, repeats: int = 7) -> str:
    """What the ten-genre familiarity costs at run time: one distance() call for one vector, reading its JSON, and
    the JSON's size (medians of the repeats)."""
    familiarity = fit_familiarity(study.gtzan, study.groups.tolist(), **DEFAULTS)
    vector, text = study.songs[:1], familiarity.to_json()
    distance = np.median(timeit.repeat(lambda: familiarity.distance(vector), number=2000, repeat=repeats)) / 2000
    parse = np.median(timeit.repeat(lambda: parse_familiarity(text), number=5, repeat=repeats)) / 5
    return (
        f"Against the {len(familiarity.references)} GTZAN references: one vector's distance() "
        f"{distance * 1e6:.0f} µs; "
        f"its JSON {len(text) / 1e6:.1f} MB ({familiarity.components.shape[0]} x "
        f"{familiarity.components.shape[1]} components), read in {parse * 1e3:.0f} ms (medians of {repeats} repeats)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache", type=Path, default=Path(".cache/features"))
    parser.add_argument("--repeats", type=int, default=3, help="shuffles of the held-out artist folds")
    arguments = parser.parse_args()
    study = load(arguments.data, arguments.cache)
    print(
        f"{len(study.gtzan)} scored GTZAN clips ({len(set(study.groups))} artist groups), {len(study.songs)} real "
        f"songs, {len(study.nonmusic)} non-music recordings; {arguments.repeats} shuffles of 5 artist folds\n"
    )
    with threadpool_limits(limits=1):  # small matrices: BLAS threads only slow a busy machine down
        defaults = {
            name: measure(study, taxonomy, arguments.repeats, **DEFAULTS) for name, taxonomy in taxonomy_names()
        }
        print(f"## Shares flagged unfamiliar at the defaults {DEFAULTS}\n\n{detail_table(study, defaults)}\n")
        grid = [
            (name, settings, measure(study, taxonomy, arguments.repeats, **settings))
            for name, taxonomy in taxonomy_names()
            for settings in keep_and_neighbours()
        ]
        print(f"## Keep and neighbours\n\n{grid_table(grid)}\n")
        dimensions = [
            (name, settings, measure(study, taxonomy, arguments.repeats, **settings))
            for name, taxonomy in taxonomy_names()
            for settings in ({**DEFAULTS, "dimensions": count} for count in DIMENSIONS)
        ]
        print(f"## Dimensions\n\n{grid_table(dimensions)}\n")
        small = [
            (name, settings, measure_small(study, taxonomy, **settings))
            for name, taxonomy in taxonomy_names()[1:]
            for settings in keep_and_neighbours()
        ]
        print(
            f"## Small taxonomies: {SMALL_ARTISTS} artists per genre, at most {SMALL_CLIPS} clips each "
            f"({SMALL_DRAWS} random draws)\n\n{small_table(small)}\n"
        )
        print(costs(study))


if __name__ == "__main__":
    main()
