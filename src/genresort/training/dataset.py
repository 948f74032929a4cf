"""Training data: labelled files from a manifest or a folder-per-genre tree, and their features, cached on disk."""

from __future__ import annotations

import csv
import hashlib
import io
import sys
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from genresort.analysis.audio import AUDIO_EXTENSIONS, AudioError, WindowPlan, decode_analysis_windows
from genresort.analysis.features.clip import (
    ClipFeatures,
    FeatureSet,
    extract_clip_features,
    feature_vector,
    window_vectors,
)
from genresort.analysis.features.embedding import MusicnnNetwork
from genresort.analysis.features.spectrogram import SAMPLE_RATE
from genresort.analysis.model_file import ModelError, verified_bytes
from genresort.config import ConfigError
from genresort.digest import sha256_file
from genresort.progress import progress

#: Folder names of the GTZAN genres as shown in the library.
GTZAN_GENRE_NAMES = {
    "blues": "Blues",
    "classical": "Classical",
    "country": "Country",
    "disco": "Disco",
    "hiphop": "Hip-Hop",
    "jazz": "Jazz",
    "metal": "Metal",
    "pop": "Pop",
    "reggae": "Reggae",
    "rock": "Rock",
}


#: Bump when feature extraction changes, so cached features are recomputed.
FEATURE_VERSION = "2"


class DataSetError(ConfigError, ValueError):
    """The training data given (a manifest, genre folders) cannot be used; the message says why. A ConfigError, so
    the command line refuses it like any other bad setting without importing the training side to know it."""


@dataclass(frozen=True)
class LabelledFile:
    path: Path
    genre: str
    group: str  # the artist: no artist is ever on both sides of a split
    scored: bool  # False for fragments: they may train, never be scored


def read_manifest(manifest: Path) -> list[LabelledFile]:
    """The shared data's MANIFEST.tsv -> labelled files; fragments are marked as training-only."""
    root = manifest.parent
    with open(manifest, newline="") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    return [
        LabelledFile(
            path=root / row["file"],
            genre=GTZAN_GENRE_NAMES.get(row["genre"], row["genre"]),
            group=f"artist-{row['artist_group']}",
            scored=row["quality"] != "fragment-2s",
        )
        for row in rows
    ]


def read_genre_folders(root: Path) -> list[LabelledFile]:
    """A `DIR/<genre>/*.mp3` tree -> labelled files, grouped by the artist tag where a file has one."""
    from mutagen import File as read_tags

    files = []
    for genre_dir in sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")):
        for path in sorted(genre_dir.rglob("*")):
            if path.suffix.lower() not in AUDIO_EXTENSIONS or path.name.startswith("."):
                continue
            try:
                tags = read_tags(path, easy=True)
                artists = (tags or {}).get("artist") or []
            except Exception:  # a file whose tags mutagen cannot parse still has audio worth learning from
                artists = []
            group = f"artist-{artists[0].strip().lower()}" if artists else f"file-{path}"
            files.append(LabelledFile(path=path, genre=genre_dir.name, group=group, scored=True))
    if len({file.genre for file in files}) < 2:
        raise DataSetError(f"{root}: need at least two genre folders with audio files (DIR/<genre>/*.mp3)")
    return files


class FeatureCache:
    """Clip features on disk, keyed by the file's content and the extraction version and plan."""

    def __init__(self, folder: Path, plan: WindowPlan, network_files: list[Path]) -> None:
        self.folder = folder
        networks = sorted(sha256_file(path) for path in network_files)
        fingerprint = f"{FEATURE_VERSION}|{plan}|{networks}".encode()
        self.variant = hashlib.sha256(fingerprint).hexdigest()[:12]

    def path_for(self, audio_path: Path) -> Path:
        """Where the features of this file's content are kept (hashing the file once per lookup and store)."""
        return self.folder / self.variant / f"{sha256_file(audio_path)}.npz"

    def load(self, path: Path) -> ClipFeatures | None:
        if not path.exists():
            return None
        with np.load(path) as stored:
            outputs: dict[str, dict[str, np.ndarray]] = {}
            for key in stored.files:
                if key != "handcrafted":
                    network, output = key.split("/")
                    outputs.setdefault(network, {})[output] = stored[key]
            return ClipFeatures(handcrafted=stored["handcrafted"], network_outputs=outputs)

    def store(self, path: Path, clip: ClipFeatures) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            f"{network}/{name}": value
            for network, values in clip.network_outputs.items()
            for name, value in values.items()
        }
        temporary = path.with_suffix(".tmp.npz")
        np.savez(temporary, handcrafted=clip.handcrafted, **arrays)
        temporary.replace(path)


def extract_features(
    files: list[LabelledFile], networks: list[MusicnnNetwork], plan: WindowPlan, cache: FeatureCache
) -> tuple[list[LabelledFile], list[ClipFeatures]]:
    """Features of every readable file (cached); unreadable files are reported and left out."""
    kept, clips = [], []
    for file in progress(files, len(files), "features"):
        cached = cache.path_for(file.path)
        clip = cache.load(cached)
        if clip is None:
            try:
                windows = decode_analysis_windows(file.path, SAMPLE_RATE, plan)
            except AudioError as error:
                print(f"skipped: {error}", file=sys.stderr)
                continue
            clip = extract_clip_features(windows, networks)
            cache.store(cached, clip)
        kept.append(file)
        clips.append(clip)
    return kept, clips


#: A window of a clip counts half as much as the clip itself.
WINDOW_WEIGHT = 0.5


@dataclass(frozen=True)
class TrainingSet:
    """The classifier's rows: each clip's own vector, then the vectors of windows of it (see `window_vectors`)."""

    vectors: np.ndarray  # (rows, features)
    clip_of_row: np.ndarray  # (rows,): index of the clip (file) each row comes from
    weights: np.ndarray  # (rows,)
    own_row: np.ndarray  # (clips,): the row of each clip's own vector

    @classmethod
    def of(cls, vectors: np.ndarray) -> TrainingSet:
        """One row per clip, nothing added."""
        count = len(vectors)
        return cls(vectors, np.arange(count), np.ones(count), np.arange(count))


def training_set(
    clips: list[ClipFeatures], feature_set: FeatureSet, network_names: list[str], with_windows: bool = True
) -> TrainingSet:
    rows, clip_of_row, weights, own_row = [], [], [], []
    for index, clip in enumerate(clips):
        own_row.append(len(rows))
        rows.append(feature_vector(clip, feature_set, network_names))
        clip_of_row.append(index)
        weights.append(1.0)
        extra = window_vectors(clip, feature_set, network_names) if with_windows else []
        rows += extra
        clip_of_row += [index] * len(extra)
        weights += [WINDOW_WEIGHT] * len(extra)
    return TrainingSet(np.stack(rows), np.array(clip_of_row), np.array(weights), np.array(own_row))


#: In a model folder: what its classifier was fitted on (LearntSet), for `genresort retrain`.
TRAINING_SET_FILE = "training_set.npz"


@dataclass(frozen=True)
class LearntSet:
    """Every row a model's classifier was fitted on, in the order it was fitted on them, with each clip's label,
    artist and content hash: what `genresort retrain` needs to refit the classifier exactly as `train` did (with a
    person's examples added) on a machine without the shared data. Kept beside the model as plain arrays
    (TRAINING_SET_FILE), loaded without pickle."""

    vectors: np.ndarray  # (rows, features) float32
    clip_of_row: np.ndarray  # (rows,) the clip each row comes from
    weights: np.ndarray  # (rows,) WINDOW_WEIGHT for a window of a clip, 1 for the clip whole
    own_row: np.ndarray  # (clips,) the row of each clip whole
    genres: np.ndarray  # (clips,) the genre each clip was learnt as (a real song's pseudo-label)
    groups: np.ndarray  # (clips,) artist groups
    scored: np.ndarray  # (clips,) bool: scored in cross-validation (a training file whole, not a fragment)
    real_song: np.ndarray  # (clips,) bool: a real song of the real-world set rather than a training file
    sha256: np.ndarray  # (clips,) the content hash of each clip's file

    @classmethod
    def of(
        cls, files: list[LabelledFile], rows: TrainingSet, real_songs: bool = False, hashes: list[str] | None = None
    ) -> LearntSet:
        """The rows of `files` (their features in `rows`), each clip learnt as its file's genre; `hashes` are their
        contents' sha256 (default: the files' as they are now)."""
        count = len(files)
        if hashes is None:
            hashes = [sha256_file(file.path) for file in files]
        return cls(
            vectors=rows.vectors.astype(np.float32),
            clip_of_row=rows.clip_of_row,
            weights=rows.weights,
            own_row=rows.own_row,
            genres=np.array([file.genre for file in files], dtype=str),
            groups=np.array([file.group for file in files], dtype=str),
            scored=np.array([file.scored and not real_songs for file in files], dtype=bool),
            real_song=np.full(count, real_songs),
            sha256=np.array(hashes, dtype=str),
        )

    @property
    def row_genres(self) -> np.ndarray:
        return self.genres[self.clip_of_row]

    @property
    def row_groups(self) -> np.ndarray:
        return self.groups[self.clip_of_row]

    def select(self, clips: np.ndarray) -> LearntSet:
        """The clips where `clips` (a (clips,) mask) is true, with all their rows, in their order."""
        clips = np.asarray(clips, dtype=bool)
        kept_rows = clips[self.clip_of_row]
        new_index = np.cumsum(clips) - 1
        row_index = np.cumsum(kept_rows) - 1
        return LearntSet(
            vectors=self.vectors[kept_rows],
            clip_of_row=new_index[self.clip_of_row[kept_rows]],
            weights=self.weights[kept_rows],
            own_row=row_index[self.own_row[clips]],
            **{name: getattr(self, name)[clips] for name in CLIP_LABELS},
        )

    def joined(self, other: LearntSet) -> LearntSet:
        """This set's rows, then `other`'s."""
        return LearntSet(
            vectors=np.concatenate([self.vectors, other.vectors]),
            clip_of_row=np.concatenate([self.clip_of_row, other.clip_of_row + len(self.genres)]),
            weights=np.concatenate([self.weights, other.weights]),
            own_row=np.concatenate([self.own_row, other.own_row + len(self.vectors)]),
            **{name: np.concatenate([getattr(self, name), getattr(other, name)]) for name in CLIP_LABELS},
        )

    def save(self, path: Path) -> None:
        """Plain arrays, deflated (float32 embeddings shrink by a third)."""
        np.savez_compressed(path, **{field.name: getattr(self, field.name) for field in fields(self)})

    @classmethod
    def load(cls, path: Path, expected_sha256: str) -> LearntSet:
        """The set a model card names, verified like the model's files; never unpickled."""
        content = verified_bytes(path, expected_sha256)
        try:
            with np.load(io.BytesIO(content), allow_pickle=False) as stored:
                learnt = cls(**{field.name: stored[field.name] for field in fields(cls)})
        except (OSError, KeyError, ValueError, TypeError) as error:
            raise ModelError(f"cannot read the training set {path}: {error}") from error
        clips, rows = len(learnt.genres), len(learnt.vectors)
        if any(len(getattr(learnt, name)) != rows for name in PER_ROW) or any(
            len(getattr(learnt, name)) != clips for name in ("own_row", *CLIP_LABELS)
        ):
            raise ModelError(f"cannot read the training set {path}: its arrays disagree in length")
        return learnt


PER_ROW = ("vectors", "clip_of_row", "weights")
#: What is said of each clip, besides where its own row is.
CLIP_LABELS = ("genres", "groups", "scored", "real_song", "sha256")
