"""A person's own taxonomy: a model trained with `train --folders` on two genres still knows what is not music and
what is none of its genres (before issue 7, a two-genre model answered 1.0 for everything)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile
from mutagen.easyid3 import EasyID3

from conftest import require_shared_data, write_mp3
from genresort.training.dataset import LabelledFile, read_manifest

OWN_GENRES = ("Classical", "Metal")
CLIPS_PER_ARTIST = 3


def genresort(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "genresort.cli", *arguments], capture_output=True, text=True, timeout=900, cwd=cwd
    )


def by_artist(files: list[LabelledFile], genre: str) -> dict[str, list[LabelledFile]]:
    artists: dict[str, list[LabelledFile]] = defaultdict(list)
    for file in files:
        if file.genre == genre and file.scored:
            artists[file.group].append(file)
    return dict(sorted(artists.items()))


@pytest.fixture(scope="module")
def own_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """A model trained by the command line on a person's Classical and Metal folders (GTZAN clips, each tagged with
    its artist as a person's files are), and files it never heard: a clip of each genre by an artist left out, a
    rap clip, a recording of speech, and white noise."""
    data = require_shared_data()
    files = read_manifest(data / "MANIFEST.tsv")
    root = tmp_path_factory.mktemp("own")
    unheard: dict[str, Path] = {}
    for genre in OWN_GENRES:
        artists = list(by_artist(files, genre).items())
        (_, left_out), trained = artists[0], artists[1:]
        unheard[genre] = left_out[0].path
        folder = root / "folders" / genre
        folder.mkdir(parents=True)
        for artist, clips in trained:
            for clip in clips[:CLIPS_PER_ARTIST]:
                tags = EasyID3(shutil.copyfile(clip.path, folder / clip.path.name))
                tags["artist"] = f"artist {artist}"
                tags.save()
    unheard["Hip-Hop"] = next(iter(by_artist(files, "Hip-Hop").values()))[0].path
    speech = next(
        line.split("\t")[0]
        for line in (data / "nonmusic" / "MANIFEST.tsv").read_text().splitlines()[1:]
        if line.split("\t")[1] == "speech"
    )
    unheard["speech"] = data / "nonmusic" / speech
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, size=(44100 * 20, 2)).astype(np.float32)
    unheard["noise"] = root / "noise.mp3"
    soundfile.write(unheard["noise"], noise, 44100, format="MP3")

    model = root / "model"
    result = genresort(
        "train", "--folders", str(root / "folders"), "--output", str(model), "--cache", str(root / "cache"), cwd=root
    )
    assert result.returncode == 0, result.stderr
    return model, unheard


def decisions(model: Path, files: dict[str, Path]) -> dict[str, dict]:
    result = genresort("classify", "--json", "--model", str(model), *map(str, files.values()), cwd=model)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return dict(zip(files, lines, strict=True))


def test_a_two_genre_model_knows_noise_and_speech_are_not_music(own_model) -> None:
    model, unheard = own_model
    decided = decisions(model, {name: unheard[name] for name in ("noise", "speech")})
    assert {name: fields["decision"] for name, fields in decided.items()} == {
        "noise": "not-music",
        "speech": "not-music",
    }


def test_a_two_genre_model_holds_back_a_song_of_none_of_its_genres(own_model) -> None:
    model, unheard = own_model
    card = json.loads((model / "model_card.json").read_text())
    assert card["genres"] == list(OWN_GENRES) and "familiarity" in card and "placement_check" not in card
    decided = decisions(model, {name: unheard[name] for name in ("Hip-Hop", *OWN_GENRES)})
    rap = decided["Hip-Hop"]
    assert rap["decision"] == "unsure" and rap["novelty"] > 1.0, rap
    # its own genres, by artists it never heard, are still placed
    assert {genre: decided[genre]["decision"] for genre in OWN_GENRES} == {genre: genre for genre in OWN_GENRES}


def test_a_taxonomy_of_other_genres_is_not_calibrated_on_the_real_songs(tmp_path: Path) -> None:
    """The real songs' compatibility table knows GTZAN's genres only: asked to calibrate a person's own genres on
    them, train refuses before any work, saying why."""
    data = require_shared_data()
    for genre in ("Polka", "Drone"):
        write_mp3(tmp_path / "folders" / genre / "one.mp3", seconds=2.0)
    result = genresort(
        "train",
        "--folders",
        str(tmp_path / "folders"),
        "--realworld",
        str(data / "realworld"),
        "--output",
        str(tmp_path / "model"),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "knows GTZAN's genres only, not Drone, Polka" in result.stderr
    assert not (tmp_path / "model").exists()
