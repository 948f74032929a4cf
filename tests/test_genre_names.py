"""genre_names: the model's genres renamed or merged after the decision, in the log, the tags and the folders of a
real daemon and in `genresort classify`; a name that is not a genre of the model refuses the start."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from mutagen.id3 import ID3

from conftest import TEST_CONFIG, make_mp3
from daemon_harness import Folders, drop
from genresort.analysis.decision import NOT_MUSIC, UNSURE, DecisionKind, Prediction, Thresholds, decide
from genresort.analysis.model import CARD_JSON
from genresort.analysis.naming import named
from genresort.config import RESERVED_NAMES, ConfigError, check_genre_names
from genresort.paths import DEFAULT_MODEL_DIR
from genresort.service.supervisor import EXIT_REFUSED

#: The shipped model's genres, from its card (loading the model itself takes seconds).
GENRES = tuple(json.loads((DEFAULT_MODEL_DIR / CARD_JSON).read_text())["genres"])
#: Every genre of the shipped model under one name: whatever it hears in a synthetic tone, the name is "Music".
ALL_MUSIC = {genre: "Music" for genre in GENRES}


def decision(ranking: list[tuple[str, float]], threshold: float = 0.5):
    prediction = Prediction(tuple(ranking), "model-x", music_probability=0.9, heard_seconds=24.0)
    return decide(prediction, Thresholds(confidence=threshold))


# --- the renaming, pure -----------------------------------------------------------------------------------------


def test_a_renamed_genre_is_the_decision_and_the_folder() -> None:
    renamed = named(decision([("Hip-Hop", 0.7), ("Pop", 0.2), ("Disco", 0.1)]), {"Hip-Hop": "Rap"})
    assert renamed.prediction.ranking == (("Rap", 0.7), ("Pop", 0.2), ("Disco", 0.1))
    assert renamed.kind is DecisionKind.GENRE and renamed.label == "Rap" and renamed.prediction.confidence == 0.7


def test_merged_genres_keep_the_likeliest_probability_and_the_order() -> None:
    renamed = named(decision([("Rock", 0.4), ("Disco", 0.3), ("Jazz", 0.2), ("Pop", 0.1)]), {"Disco": "Pop"})
    assert renamed.prediction.ranking == (("Rock", 0.4), ("Pop", 0.3), ("Jazz", 0.2))
    assert renamed.prediction.top == (("Rock", 0.4), ("Pop", 0.3), ("Jazz", 0.2))  # three names, none twice


def test_a_merge_never_makes_an_unsure_file_sorted() -> None:
    """Disco 0.4 and Pop 0.35 would sum to 0.75, above the threshold: the merged Pop keeps 0.4, still unsure."""
    unsure = decision([("Disco", 0.4), ("Pop", 0.35), ("Rock", 0.25)])
    renamed = named(unsure, {"Disco": "Pop"})
    assert renamed.kind is DecisionKind.UNSURE and renamed.label == UNSURE
    assert renamed.prediction.ranking == (("Pop", 0.4), ("Rock", 0.25))


def test_names_of_no_genre_in_the_ranking_change_nothing() -> None:
    original = decision([("Jazz", 0.6), ("Blues", 0.4)])
    assert named(original, {"Polka": "Folk"}) == original
    assert named(original, {}) == original


def test_everything_but_the_ranking_passes_through() -> None:
    original = decision([("Jazz", 0.6), ("Blues", 0.4)])
    renamed = named(original, {"Jazz": "Swing"})
    assert renamed.kind == original.kind and renamed.thresholds == original.thresholds
    for field in fields(Prediction):
        if field.name != "ranking":
            assert getattr(renamed.prediction, field.name) == getattr(original.prediction, field.name), field.name


def test_the_reserved_names_are_the_decisions_that_are_not_genres() -> None:
    assert RESERVED_NAMES == (UNSURE, NOT_MUSIC)


def test_a_name_that_is_not_a_genre_is_refused_with_the_closest_and_the_genres() -> None:
    genres = ", ".join(GENRES)
    with pytest.raises(ConfigError) as refusal:
        check_genre_names({"HipHop": "Rap", "Jazz": "Swing", "Polka": "Folk"}, GENRES)
    assert str(refusal.value) == (
        f"genre_names: 'HipHop' is not a genre of the model (did you mean 'Hip-Hop'? its genres: {genres}); "
        f"'Polka' is not a genre of the model (its genres: {genres})"
    )
    check_genre_names(ALL_MUSIC, GENRES)


# --- a real daemon ----------------------------------------------------------------------------------------------


def test_a_start_is_refused_when_a_name_is_not_a_genre_of_the_model(tmp_path: Path, start_daemon) -> None:
    daemon = start_daemon(Folders(tmp_path / "music"), genre_names=json.dumps({"HipHop": "Rap"}))
    assert daemon.wait_exit() == EXIT_REFUSED, daemon.describe()
    [refused] = daemon.logs("daemon.refused")
    assert refused["reason"] == (
        f"genre_names: 'HipHop' is not a genre of the model (did you mean 'Hip-Hop'? its genres: {', '.join(GENRES)})"
    )
    assert "READY=1" not in daemon.notifications()


def test_the_daemon_sorts_into_the_configured_name_and_tags_it(tmp_path: Path, start_daemon) -> None:
    folders = Folders(tmp_path / "music")
    daemon = start_daemon(folders, stability_seconds=0.5, confidence_threshold=0.0, genre_names=json.dumps(ALL_MUSIC))
    daemon.wait_ready()
    song = drop(make_mp3(tmp_path / "inputs" / "tones.mp3", seed=9301), folders.inbox / "tones.mp3")
    outcome = daemon.wait_outcome(song)
    assert outcome["event"] == "file.sorted", outcome
    assert outcome["genre"] == outcome["decision"] == "Music" and outcome["top"] == [["Music", outcome["confidence"]]]
    placed = Path(outcome["destination"])
    assert placed == folders.library / "Music" / "tones.mp3" and not song.exists()
    tags = ID3(placed)
    assert tags["TCON"].text == ["Music"]
    assert tags["TXXX:GENRESORT_GENRE"].text == ["Music"] and tags["TXXX:GENRESORT_DECISION"].text == ["Music"]
    assert tags["TXXX:GENRESORT_TOP3"].text[0].startswith("Music ")
    assert [path.name for path in folders.library.iterdir() if not path.name.startswith(".")] == ["Music"]
    assert daemon.terminate() == 0


# --- genresort classify -----------------------------------------------------------------------------------------


def classify(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "genresort.cli", "classify", *arguments], capture_output=True, text=True, timeout=120
    )


def config_with_names(folder: Path, names: dict[str, str]) -> Path:
    config = folder / "genresort.toml"
    table = "".join(f'"{genre}" = "{name}"\n' for genre, name in names.items())
    config.write_text(f"{TEST_CONFIG}\n[genre_names]\n{table}")
    return config


def test_classify_names_the_genres_as_the_configuration_says(tmp_path: Path) -> None:
    song = make_mp3(tmp_path / "tones.mp3", seed=9302)
    result = classify("--json", "--config", str(config_with_names(tmp_path, ALL_MUSIC)), str(song))
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert line["genre"] == "Music" and line["top"] == [["Music", line["confidence"]]]


def test_classify_refuses_a_name_that_is_not_a_genre_of_the_model(tmp_path: Path) -> None:
    song = make_mp3(tmp_path / "tones.mp3", seed=9303)
    result = classify("--config", str(config_with_names(tmp_path, {"HipHop": "Rap"})), str(song))
    assert result.returncode == 2 and result.stdout == ""
    assert "genre_names: 'HipHop' is not a genre of the model (did you mean 'Hip-Hop'?" in result.stderr


def test_folder_names_that_differ_only_in_case_are_refused() -> None:
    """On FAT, exFAT, SMB or macOS, `Pop/` and `pop/` are one folder: a merge must spell the name alike."""
    with pytest.raises(ConfigError, match="'Pop' and 'pop' differ only in case"):
        check_genre_names({"Disco": "pop"}, GENRES)
    with pytest.raises(ConfigError, match="'RAP' and 'Rap' differ only in case"):
        check_genre_names({"Hip-Hop": "Rap", "Reggae": "RAP"}, GENRES)
    check_genre_names({"Disco": "pop", "Pop": "pop"}, GENRES)  # both renamed alike: one folder, "pop"
