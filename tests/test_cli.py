"""The command line as a user runs it: real processes, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from conftest import make_mp3, shared_clip
from genresort.analysis.model import GenreModel
from genresort.cli import version_text


def genresort(*arguments: str, environment: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "genresort.cli", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )


def test_classify_json_prints_every_good_file_and_fails_for_the_bad_one(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(1000))
    metal = shared_clip("metal", 2)
    result = genresort("classify", "--json", str(metal), str(broken), str(shared_clip("classical", 1)))
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(metal), str(shared_clip("classical", 1))]
    for line in lines:
        assert {"path", "genre", "confidence", "top", "decision"} <= set(line)
        assert line["decision"] in (line["genre"], "unsure")
        assert len(line["top"]) == 3 and line["top"][0][0] == line["genre"]
    assert lines[0]["genre"] == "Metal" and lines[1]["genre"] == "Classical"
    assert str(broken) in result.stderr and "not an audio file" in result.stderr


def test_classify_text_says_genre_confidence_and_top_three() -> None:
    result = genresort("classify", str(shared_clip("jazz", 4)))
    assert result.returncode == 0
    assert "Jazz (" in result.stdout and "top: " in result.stdout


def test_a_threshold_of_one_makes_every_decision_unsure() -> None:
    result = genresort("classify", "--json", "--threshold", "1.0", str(shared_clip("jazz", 4)))
    line = json.loads(result.stdout)
    assert line["decision"] == "unsure" and line["genre"] == "Jazz"


def test_a_missing_file_is_named_with_its_reason(tmp_path: Path) -> None:
    result = genresort("classify", str(tmp_path / "gone.mp3"))
    assert result.returncode == 1
    assert f"{tmp_path / 'gone.mp3'}: No such file or directory" in result.stderr


def test_a_bad_configuration_key_is_refused_by_name(tmp_path: Path) -> None:
    config = tmp_path / "genresort.toml"
    config.write_text('inbox = "in"\nworkerz = 3\n')
    result = genresort("sort", "--dry-run", "--config", str(config))
    assert result.returncode == 2
    assert "workerz" in result.stderr and "Traceback" not in result.stderr


def test_a_bad_configuration_value_is_refused_with_the_problem(tmp_path: Path) -> None:
    config = tmp_path / "genresort.toml"
    config.write_text('workers = 0\npolling = "sometimes"\n')
    result = genresort("sort", "--dry-run", "--config", str(config))
    assert result.returncode == 2
    assert "workers" in result.stderr and "polling" in result.stderr


def test_an_environment_variable_with_a_bad_value_is_refused(tmp_path: Path) -> None:
    import os

    config = tmp_path / "genresort.toml"
    config.write_text(
        'inbox = "inbox"\nlibrary = "library"\nquarantine = "quarantine"\nunsure = "unsure"\n'
        'not_music = "not-music"\nstate_dir = "state"\n'
    )
    environment = {**os.environ, "GENRESORT_STABILITY_SECONDS": "soon"}
    result = genresort("sort", "--dry-run", "--config", str(config), environment=environment)
    assert result.returncode == 2 and "stability_seconds" in result.stderr


def test_version_names_the_package_and_the_default_model_without_loading_the_analysis() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "genresort.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"genresort {metadata.version('genresort')}",
        f"model {GenreModel.load().model_id}",
    ]
    imported = [line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert "genresort.config" in imported  # the list is the command's (run as __main__)
    assert not [name for name in imported if name.split(".")[0] in ("numpy", "onnxruntime")]


def test_version_says_when_there_is_no_model(tmp_path: Path) -> None:
    assert version_text(tmp_path).splitlines()[1] == (
        f"no model: {tmp_path / 'model_card.json'} is missing (train one with: genresort train)"
    )


def test_classify_takes_a_folder_as_every_audio_file_below_it_but_hidden_ones(tmp_path: Path) -> None:
    music = tmp_path / "music"
    visible = [
        make_mp3(music / "b" / "deep" / "one.mp3", seed=9201),
        make_mp3(music / "a" / "two.MP3", seed=9202),
        make_mp3(music / "three.mp3", seed=9203),
    ]
    make_mp3(music / ".hidden.mp3", seed=9204)
    make_mp3(music / ".sync" / "four.mp3", seed=9205)
    (music / "a" / "cover.jpg").write_bytes(b"\xff\xd8\xff" + bytes(100))
    single = make_mp3(tmp_path / "single.mp3", seed=9206)
    result = genresort("classify", "--json", str(single), str(music))
    assert result.returncode == 0, result.stderr
    paths = [json.loads(line)["path"] for line in result.stdout.splitlines()]
    assert paths == [str(single), *sorted(str(path) for path in visible)]


def test_a_folder_without_audio_files_is_an_error_naming_it(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / ".sync").mkdir(parents=True)
    make_mp3(empty / ".sync" / "hidden.mp3", seed=9207)
    (empty / "notes.txt").write_text("no music here")
    song = make_mp3(tmp_path / "song.mp3", seed=9208)
    result = genresort("classify", "--json", str(empty), str(song))
    assert result.returncode == 1
    assert f"genresort: {empty}: no audio files in this folder" in result.stderr
    assert [json.loads(line)["path"] for line in result.stdout.splitlines()] == [str(song)]
