"""Music or not, as a person meets it: speech and noise dropped into a running daemon end in not-music/, tagged and
logged as such, and no Hip-Hop clip of the shared data is ever taken for speech.

The shipped model's music detector was fitted on the shared recordings (tools/music_detector_study.py measures it
on held-out groups); here it is the plumbing and the promise about rap that are checked, on real audio."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from mutagen.id3 import ID3

from conftest import require_shared_data
from daemon_harness import Folders
from genresort.analysis.decision import DecisionKind, decide
from genresort.analysis.model import GenreModel


@pytest.fixture(scope="module")
def model() -> GenreModel:
    return GenreModel.load()


def test_every_hip_hop_clip_of_the_shared_data_is_music(model: GenreModel) -> None:
    data = require_shared_data()
    clips = sorted((data / "gtzan" / "hiphop").glob("*.mp3")) + sorted(
        (data / "gtzan-fragments" / "hiphop").glob("*.mp3")
    )
    assert len(clips) > 30
    taken_for_speech = [
        (clip.name, round(prediction.music_probability, 3))
        for clip in clips
        if decide(prediction := model.analyse(clip), model.thresholds).kind is DecisionKind.NOT_MUSIC
    ]
    assert taken_for_speech == []


def white_noise(path: Path, seconds: float = 12.0) -> Path:
    samples = np.random.default_rng(7).uniform(-0.5, 0.5, size=(int(seconds * 44100), 2)).astype(np.float32)
    soundfile.write(path, samples, 44100, format="MP3")
    return path


def test_speech_and_noise_dropped_into_the_daemon_end_in_not_music(tmp_path: Path, start_daemon) -> None:
    data = require_shared_data()
    speech = [data / "nonmusic" / "speech" / name for name in ("librispeech-198-209-0000.mp3",)]
    speech += sorted((data / "nonmusic" / "speech").glob("gtzan-speech-*.mp3"))[:1]
    folders = Folders(tmp_path / "music")
    daemon = start_daemon(folders, stability_seconds=0.5, music_threshold=None)  # the model card's thresholds
    daemon.wait_ready()
    staged = tmp_path / "incoming"
    staged.mkdir()
    sources = [white_noise(staged / "hiss.mp3")] + [Path(shutil.copy(path, staged / path.name)) for path in speech]
    dropped = [folders.inbox / source.name for source in sources]
    for source, target in zip(sources, dropped, strict=True):
        source.rename(target)
    for path in dropped:
        outcome = daemon.wait_outcome(path)
        assert outcome["event"] == "file.not_music", outcome
        assert outcome["decision"] == "not-music" and outcome["music_probability"] < outcome["music_threshold"]
        placed = Path(outcome["destination"])
        assert placed.parent == folders.not_music and not path.exists()
        tags = ID3(placed)
        assert "TCON" not in tags, "no genre a player would show"
        assert tags["TXXX:GENRESORT_DECISION"].text == ["not-music"]
        assert float(tags["TXXX:GENRESORT_MUSIC_PROBABILITY"].text[0]) == pytest.approx(
            outcome["music_probability"], abs=1e-3
        )
    assert list(folders.library.rglob("*.mp3")) == []
    assert daemon.terminate() == 0
