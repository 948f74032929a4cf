"""Why a file got its genre: each analysis window's verdict and the networks' strongest tags."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import shared_clip, write_mp3
from genresort.analysis.model import GenreModel


@pytest.fixture(scope="module")
def model() -> GenreModel:
    return GenreModel.load()


def test_a_clip_heard_whole_has_one_window_whose_verdict_is_the_whole_clips_and_its_tags(model: GenreModel) -> None:
    prediction, explanation = model.explain(shared_clip("metal", 0))
    assert prediction == model.analyse(shared_clip("metal", 0))  # the explanation names the decision's prediction
    (window,) = explanation.windows
    whole = model.predict_clip(model.listen(shared_clip("metal", 0))[0])  # while the window verdict hears it all
    assert (window.genre, window.probability) == pytest.approx((whole.genre, whole.confidence))
    tags = dict(explanation.tags)
    assert len(tags) == 6 and {"rock", "guitar", "metal"} <= set(tags)
    assert list(tags.values()) == sorted(tags.values(), reverse=True)


def test_a_long_track_is_explained_window_by_window(model: GenreModel, tmp_path: Path) -> None:
    track = write_mp3(tmp_path / "long.mp3", seconds=70)
    prediction, explanation = model.explain(track)
    assert [verdict.window for verdict in explanation.windows] == [1, 2, 3, 4]
    assert all(verdict.genre in model.genres and 0 < verdict.probability <= 1 for verdict in explanation.windows)
    fields = explanation.as_fields()
    assert len(fields["windows"]) == 4 and len(fields["tags"]) == 6


def test_classify_explain_prints_the_windows_and_the_tags(tmp_path: Path) -> None:
    clip = shared_clip("jazz", 1)
    command = [sys.executable, "-m", "genresort.cli", "classify", "--explain"]
    text = subprocess.run([*command, str(clip)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "heard, window by window: Jazz" in text.stdout and "strongest tags: jazz" in text.stdout
    lines = subprocess.run([*command, "--json", str(clip)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    explanation = json.loads(lines.stdout)["explanation"]
    assert explanation["windows"][0][0] == "Jazz" and explanation["tags"][0][0] == "jazz"
