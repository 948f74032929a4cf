"""The open-world development sets beside GTZAN: recordings that are not music (`nonmusic/`) and real songs with
their published genres (`realworld/`), read from their manifests, and their features from the shared cache."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from genresort.analysis.audio import WindowPlan
from genresort.analysis.features.clip import ClipFeatures
from genresort.analysis.features.embedding import MusicnnNetwork
from genresort.paths import DEFAULT_MODEL_DIR
from genresort.training.dataset import FeatureCache, LabelledFile, extract_features


@dataclass(frozen=True)
class NonMusicFile:
    """A recording that is not music; `group` is its speaker or recording group (no group on both sides)."""

    path: Path
    kind: str  # speech | environment | other (and, for what a study synthesises, the generator's kind)
    category: str  # e.g. dog, rain, read-speech-de, gtzan-speech
    group: str


@dataclass(frozen=True)
class RealWorldFile:
    """A real song's clip with AllMusic's genres for it; `group` is the artist."""

    path: Path
    published_genres: tuple[str, ...]  # most specific first, as AllMusic lists them
    group: str
    title: str


class HasPathAndGroup(Protocol):
    @property
    def path(self) -> Path: ...

    @property
    def group(self) -> str: ...


Record = TypeVar("Record", bound=HasPathAndGroup)


def read_rows(manifest: Path) -> list[dict[str, str]]:
    with open(manifest, newline="") as stream:
        return list(csv.DictReader(stream, delimiter="\t"))


def read_nonmusic(manifest: Path) -> list[NonMusicFile]:
    """nonmusic/MANIFEST.tsv -> its files, grouped by speaker or recording group."""
    return [
        NonMusicFile(
            path=manifest.parent / row["file"],
            kind=row["kind"],
            category=row["category"],
            group=row["speaker_or_group"],
        )
        for row in read_rows(manifest)
    ]


def read_realworld(manifest: Path) -> list[RealWorldFile]:
    """realworld/MANIFEST.tsv -> its songs, grouped by artist."""
    return [
        RealWorldFile(
            path=manifest.parent / row["file"],
            published_genres=tuple(genre.strip() for genre in row["published_genres"].split(";") if genre.strip()),
            group=f"artist-{row['artist'].strip().lower()}",
            title=row["title"],
        )
        for row in read_rows(manifest)
    ]


def features_of(records: Sequence[Record], cache_dir: Path) -> tuple[list[Record], list[ClipFeatures]]:
    """Clip features of every readable record (from the same cache and extraction as `train`); unreadable
    files are reported on stderr and left out, so the two lists returned stay aligned."""
    from genresort.training.fit import network_files  # here, not above: fit may import this module

    paths = network_files(DEFAULT_MODEL_DIR)
    plan = WindowPlan()
    as_labelled = [LabelledFile(path=record.path, genre="", group=record.group, scored=True) for record in records]
    kept, clips = extract_features(
        as_labelled, [MusicnnNetwork(path) for path in paths], plan, FeatureCache(cache_dir, plan, paths)
    )
    record_of = {record.path: record for record in records}
    return [record_of[file.path] for file in kept], clips
