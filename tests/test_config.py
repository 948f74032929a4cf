"""Configuration: defaults, the TOML file, GENRESORT_* variables over both, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from genresort.config import DEFAULT_CONFIG_FILE, ConfigError, Settings, load_settings


def test_the_documented_file_names_every_setting() -> None:
    text = DEFAULT_CONFIG_FILE.read_text()
    for key in Settings.model_fields:
        assert f"# {key} = " in text, key


def test_relative_paths_in_a_file_are_relative_to_the_file(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "genresort.toml"
    config.parent.mkdir()
    config.write_text('inbox = "../music/inbox"\nlibrary = "/srv/library"\nworkers = 2\n')
    settings = load_settings(config)
    assert settings.inbox == tmp_path / "music" / "inbox"
    assert settings.library == Path("/srv/library") and settings.workers == 2


def test_environment_variables_override_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "genresort.toml"
    config.write_text(f'inbox = "{tmp_path}/a"\nworkers = 2\n')
    monkeypatch.setenv("GENRESORT_INBOX", str(tmp_path / "b"))
    monkeypatch.setenv("GENRESORT_WORKERS", "3")
    settings = load_settings(config)
    assert settings.inbox == tmp_path / "b" and settings.workers == 3


def test_an_unknown_key_is_refused_by_name(tmp_path: Path) -> None:
    config = tmp_path / "genresort.toml"
    config.write_text("treshold = 0.5\n")
    with pytest.raises(ConfigError, match="treshold"):
        load_settings(config)


def test_a_library_inside_the_inbox_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENRESORT_INBOX", str(tmp_path / "inbox"))
    monkeypatch.setenv("GENRESORT_LIBRARY", str(tmp_path / "inbox" / "library"))
    with pytest.raises(ConfigError, match="must not contain each other"):
        load_settings()


def test_invalid_toml_is_refused_with_the_file_named(tmp_path: Path) -> None:
    config = tmp_path / "genresort.toml"
    config.write_text("inbox = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config)


def test_a_missing_config_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.toml")
