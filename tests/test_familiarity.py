"""Familiarity: its JSON (read back exactly, malformed files refused), its distance, and its fitting on clustered
data and on real GTZAN clips."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import require_shared_data
from genresort.analysis.familiarity import Familiarity, parse_familiarity
from genresort.analysis.features.clip import FeatureSet, feature_vector
from genresort.analysis.model_file import ModelError
from genresort.training.dataset import LabelledFile, read_manifest
from genresort.training.familiarity import fit_familiarity
from genresort.training.fit import NETWORK_NAMES, prepare

FEATURES = 20
CLIPS_PER_ARTIST = 10


def artists_of(rng: np.random.Generator, centre: np.ndarray, artists: int) -> list[np.ndarray]:
    """Clips of `artists` artists around one cluster centre: each artist a little off the centre, each clip a
    little off its artist."""
    return [
        centre + rng.normal(0, 1, FEATURES) + rng.normal(0, 1, (CLIPS_PER_ARTIST, FEATURES)) for _ in range(artists)
    ]


@pytest.fixture(scope="module")
def clusters() -> tuple[np.ndarray, list[str]]:
    """Three clusters of three artists each: the training clips and their artists."""
    rng = np.random.default_rng(0)
    vectors, groups = [], []
    for cluster in range(3):
        for artist, clips in enumerate(artists_of(rng, np.full(FEATURES, 10.0 * cluster), 3)):
            vectors.append(clips)
            groups += [f"cluster-{cluster}-artist-{artist}"] * len(clips)
    return np.concatenate(vectors), groups


@pytest.fixture(scope="module")
def familiarity(clusters: tuple[np.ndarray, list[str]]) -> Familiarity:
    vectors, groups = clusters
    return fit_familiarity(vectors, groups, dimensions=8, keep=0.95)


# --- JSON ----------------------------------------------------------------------------------------------------------


def test_json_reads_back_to_the_same_numbers(familiarity: Familiarity) -> None:
    text = familiarity.to_json()
    again = parse_familiarity(text.encode())
    for field in ("mean", "scale", "components", "references"):
        assert np.array_equal(getattr(again, field), getattr(familiarity, field)), field
    assert (again.neighbours, again.threshold) == (familiarity.neighbours, familiarity.threshold)
    assert again.to_json() == text
    assert json.loads(text)["format"] == "genresort-familiarity/1"


def changed(familiarity: Familiarity, **fields: object) -> str:
    document = json.loads(familiarity.to_json())
    document.update(fields)
    return json.dumps(document)


def without(familiarity: Familiarity, key: str) -> str:
    document = json.loads(familiarity.to_json())
    del document[key]
    return json.dumps(document)


MALFORMED = {
    "not JSON": lambda f: "{",
    "not UTF-8": lambda f: b"\xff\xfe",
    "not an object": lambda f: "[1, 2]",
    "another format": lambda f: changed(f, format="genresort-linear-classifier/1"),
    "NaN in it": lambda f: f.to_json().replace(f'"threshold": {f.threshold}', '"threshold": NaN'),
    "an infinite number": lambda f: f.to_json().replace(f'"threshold": {f.threshold}', '"threshold": 1e999'),
    "components missing": lambda f: without(f, "components"),
    "components ragged": lambda f: changed(f, components=[[1.0, 2.0], [3.0]]),
    "components empty": lambda f: changed(f, components=[[]]),
    "components not numbers": lambda f: changed(f, components=[["a"]]),
    "a component too large": lambda f: changed(
        f, components=np.vstack([[12345.5] * f.components.shape[1], f.components[1:]]).tolist()
    ).replace("12345.5", "1e999"),
    "mean too short": lambda f: changed(f, mean=f.mean[:-1].tolist()),
    "scale too long": lambda f: changed(f, scale=[*f.scale.tolist(), 1.0]),
    "a zero scale": lambda f: changed(f, scale=[0.0, *f.scale[1:].tolist()]),
    "a negative scale": lambda f: changed(f, scale=[-1.0, *f.scale[1:].tolist()]),
    "references of other dimensions": lambda f: changed(f, references=f.references[:, :-1].tolist()),
    "references flat": lambda f: changed(f, references=f.references[0].tolist()),
    "no references": lambda f: changed(f, references=[]),
    "neighbours zero": lambda f: changed(f, neighbours=0),
    "neighbours beyond the references": lambda f: changed(f, neighbours=len(f.references) + 1),
    "neighbours a fraction": lambda f: changed(f, neighbours=2.5),
    "neighbours a boolean": lambda f: changed(f, neighbours=True),
    "neighbours text": lambda f: changed(f, neighbours="3"),
    "threshold missing": lambda f: without(f, "threshold"),
    "threshold zero": lambda f: changed(f, threshold=0),
    "threshold negative": lambda f: changed(f, threshold=-1.5),
    "threshold text": lambda f: changed(f, threshold="2"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_familiarity_is_refused(familiarity: Familiarity, case: str) -> None:
    with pytest.raises(ModelError) as refusal:
        parse_familiarity(MALFORMED[case](familiarity))
    assert str(refusal.value)


# --- distance ------------------------------------------------------------------------------------------------------


def test_a_clip_it_learnt_from_is_near_and_a_far_point_is_far(
    familiarity: Familiarity, clusters: tuple[np.ndarray, list[str]]
) -> None:
    vectors, _ = clusters
    assert (familiarity.distance(vectors) < familiarity.threshold).all()
    far = familiarity.mean + 100 * familiarity.scale
    assert familiarity.distance(far[np.newaxis, :])[0] > 10 * familiarity.threshold
    assert familiarity.familiar(np.vstack([vectors[:1], far])).tolist() == [True, False]


def test_a_clip_it_learnt_from_lies_on_its_own_reference(
    familiarity: Familiarity, clusters: tuple[np.ndarray, list[str]]
) -> None:
    vectors, _ = clusters
    assert replace(familiarity, neighbours=1).distance(vectors) == pytest.approx(0, abs=1e-9)


# --- fitting -------------------------------------------------------------------------------------------------------


def test_a_new_cluster_is_unfamiliar_and_new_artists_of_known_clusters_are_kept(familiarity: Familiarity) -> None:
    rng = np.random.default_rng(1)
    new_cluster = np.concatenate(artists_of(rng, np.full(FEATURES, -10.0), 3))
    assert not familiarity.familiar(new_cluster).any()
    new_artists = np.concatenate(
        [clips for cluster in range(3) for clips in artists_of(rng, np.full(FEATURES, 10.0 * cluster), 4)]
    )
    assert familiarity.familiar(new_artists).mean() >= 0.95 - 0.05  # keep=0.95, chosen on held-out artists


def test_dimensions_and_neighbours_are_capped_at_what_few_clips_allow() -> None:
    vectors = np.random.default_rng(3).normal(size=(5, FEATURES))
    familiarity = fit_familiarity(vectors, ["a", "a", "b", "c", "d"], dimensions=32, neighbours=10)
    assert familiarity.components.shape == (FEATURES, 4)
    assert familiarity.references.shape == (5, 4)
    assert familiarity.neighbours == 5
    parse_familiarity(familiarity.to_json())


def test_a_feature_that_barely_varies_does_not_decide_alone(
    clusters: tuple[np.ndarray, list[str]],
) -> None:
    """A network unit all but constant among the training clips: a file that moves it a little is still familiar."""
    vectors, groups = clusters
    still = 1e-3 + 1e-9 * np.random.default_rng(2).standard_normal((len(vectors), 1))
    familiarity = fit_familiarity(np.hstack([vectors, still]), groups)
    moved = np.hstack([vectors[:1], [[2e-3]]])
    assert familiarity.familiar(moved).all()


def test_one_artist_is_not_enough() -> None:
    with pytest.raises(ValueError, match="two artists"):
        fit_familiarity(np.random.default_rng(4).normal(size=(6, FEATURES)), ["a"] * 6)


# --- real music ----------------------------------------------------------------------------------------------------


def first_artists(files: list[LabelledFile], genre: str, artists: int, clips: int) -> list[LabelledFile]:
    """Up to `clips` clips of each of the genre's first `artists` known artists, in the manifest's order."""
    chosen: dict[str, list[LabelledFile]] = {}
    for file in files:
        if file.genre == genre and file.scored and file.group != "artist-unknown":
            if file.group in chosen or len(chosen) < artists:
                chosen.setdefault(file.group, [])
                if len(chosen[file.group]) < clips:
                    chosen[file.group].append(file)
    return [file for group in chosen.values() for file in group]


def test_a_classical_and_metal_familiarity_flags_hip_hop(tmp_path: Path) -> None:
    """A person's own taxonomy of a few Classical and Metal artists: rap is none of it."""
    files = read_manifest(require_shared_data() / "MANIFEST.tsv")
    learnt = first_artists(files, "Classical", artists=3, clips=2) + first_artists(files, "Metal", artists=4, clips=1)
    hip_hop = first_artists(files, "Hip-Hop", artists=4, clips=1)
    kept, clips = prepare(learnt + hip_hop, tmp_path / "cache")
    assert kept == learnt + hip_hop
    vectors = np.stack([feature_vector(clip, FeatureSet.EMBEDDING, list(NETWORK_NAMES)) for clip in clips])
    familiarity = fit_familiarity(vectors[: len(learnt)], [file.group for file in learnt])
    assert familiarity.familiar(vectors[: len(learnt)]).all()
    assert (~familiarity.familiar(vectors[len(learnt) :])).sum() >= 3
