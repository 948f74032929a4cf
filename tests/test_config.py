"""Configuration: arguments over GENRESORT_* variables over the TOML file over defaults, and clear refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from genresort.config import DEFAULT_CONFIG_FILE, ConfigError, Settings, environment_values, load_settings


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


def test_environment_variables_override_the_file_which_overrides_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "genresort.toml"
    config.write_text(f'inbox = "{tmp_path}/a"\nworkers = 2\nrescan_seconds = 10\n')
    monkeypatch.setenv("GENRESORT_INBOX", str(tmp_path / "b"))
    monkeypatch.setenv("GENRESORT_WORKERS", "3")
    settings = load_settings(config)
    assert settings.inbox == tmp_path / "b" and settings.workers == 3
    assert (
        settings.rescan_seconds == 10
        and settings.stability_seconds == Settings.model_fields["stability_seconds"].default
    )


def test_arguments_override_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that builds its own Settings must never be redirected into a real library by the environment."""
    monkeypatch.setenv("GENRESORT_LIBRARY", str(tmp_path / "real-library"))
    monkeypatch.setenv("GENRESORT_WORKERS", "3")
    settings = Settings(inbox=tmp_path / "inbox", library=tmp_path / "test-library")
    assert settings.library == tmp_path / "test-library" and settings.workers == 3


def test_a_misspelt_environment_variable_is_refused_with_the_closest_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENRESORT_INBX", "/srv/music/inbox")
    with pytest.raises(ConfigError, match=r"GENRESORT_INBX is not a setting \(did you mean GENRESORT_INBOX\?\)"):
        load_settings()


def test_an_environment_variable_far_from_every_setting_is_refused_with_the_list() -> None:
    with pytest.raises(ConfigError, match="GENRESORT_SOMETHING is not a setting .known: GENRESORT_INBOX, "):
        environment_values({"GENRESORT_SOMETHING": "1"})


def test_environment_variables_are_read_in_any_case_and_others_are_left_alone() -> None:
    values = environment_values({"genresort_workers": "2", "GENRESORT_INBOX": "/in", "HOME": "/root"})
    assert values == {"workers": "2", "inbox": "/in"}


@pytest.mark.parametrize("key", ["stability_seconds", "file_timeout_seconds", "rescan_seconds", "max_file_mb"])
@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_a_number_that_is_not_finite_is_refused_with_the_key_named(tmp_path: Path, key: str, value: str) -> None:
    """`inf` seconds overflow the timers (OverflowError on every file) or mean that nothing is ever sorted."""
    config = tmp_path / "genresort.toml"
    config.write_text(f"{key} = {value}\n")
    with pytest.raises(ConfigError, match=f"{key} \\(from {config}\\): Input should be a finite number"):
        load_settings(config)


def test_a_number_that_is_not_finite_is_refused_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENRESORT_CONFIDENCE_THRESHOLD", "nan")
    with pytest.raises(ConfigError, match="confidence_threshold .from GENRESORT_CONFIDENCE_THRESHOLD.: Input should"):
        load_settings()


@pytest.mark.parametrize(
    "key, value",
    [
        ("stability_seconds", 3601),
        ("file_timeout_seconds", 3601),
        ("rescan_seconds", 86401),
        ("retry_max_seconds", 86401),
    ],
)
def test_a_time_beyond_its_bound_is_refused(tmp_path: Path, key: str, value: float) -> None:
    config = tmp_path / "genresort.toml"
    config.write_text(f"{key} = {value}\n")
    with pytest.raises(ConfigError, match=f"{key} .from {config}.: Input should be less than or equal to"):
        load_settings(config)


#: What `workers = "auto"` gives here: the cores this process may use (at most 64).
CORES = min(len(os.sched_getaffinity(0)), 64)


def test_workers_default_to_auto_one_per_core_this_process_may_use() -> None:
    """A process narrowed to one core (as systemd's CPUAffinity= or a cpuset does) gets one worker, whatever the
    machine has."""
    assert Settings().workers == CORES
    one_core = min(os.sched_getaffinity(0))
    narrowed = subprocess.run(
        [sys.executable, "-c", "from genresort.config import Settings; print(Settings(workers='auto').workers)"],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {one_core}),
    )
    assert narrowed.stdout == "1\n"


@pytest.mark.parametrize("value, expected", [('"auto"', CORES), ("1", 1), ("64", 64)])
def test_workers_are_auto_or_a_number_from_a_file(tmp_path: Path, value: str, expected: int) -> None:
    config = tmp_path / "genresort.toml"
    config.write_text(f"workers = {value}\n")
    assert load_settings(config).workers == expected


@pytest.mark.parametrize("value, expected", [("auto", CORES), ("1", 1), ("2", 2)])
def test_workers_are_auto_or_a_number_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: int
) -> None:
    monkeypatch.setenv("GENRESORT_WORKERS", value)
    assert load_settings().workers == expected


@pytest.mark.parametrize(
    "value, problem",
    [
        ('"many"', """'many' is neither "auto" nor a number from 1 to 64"""),
        ('"Auto"', """'Auto' is neither "auto" nor a number from 1 to 64"""),
        ("0", "Input should be greater than or equal to 1"),
        ("65", "Input should be less than or equal to 64"),
        ("2.5", "Input should be a valid integer"),
    ],
)
def test_workers_that_are_neither_auto_nor_a_number_from_1_to_64_are_refused(
    tmp_path: Path, value: str, problem: str
) -> None:
    config = tmp_path / "genresort.toml"
    config.write_text(f"workers = {value}\n")
    with pytest.raises(ConfigError) as refusal:
        load_settings(config)
    assert f"workers (from {config}): " in str(refusal.value) and problem in str(refusal.value)


def test_workers_from_the_environment_that_are_no_number_are_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENRESORT_WORKERS", "many")
    with pytest.raises(
        ConfigError, match="""workers .from GENRESORT_WORKERS.: .*'many' is neither "auto" nor a number"""
    ):
        load_settings()


def test_an_unknown_key_is_refused_by_name(tmp_path: Path) -> None:
    config = tmp_path / "genresort.toml"
    config.write_text("treshold = 0.5\n")
    with pytest.raises(ConfigError, match="treshold is not a setting"):
        load_settings(config)


def test_a_misspelt_key_in_the_file_is_refused_with_the_closest_setting(tmp_path: Path) -> None:
    config = tmp_path / "genresort.toml"
    config.write_text('libary = "/srv/library"\n')
    with pytest.raises(ConfigError, match=r"libary is not a setting \(did you mean library\?\)"):
        load_settings(config)


def test_a_library_inside_the_inbox_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENRESORT_INBOX", str(tmp_path / "inbox"))
    monkeypatch.setenv("GENRESORT_LIBRARY", str(tmp_path / "inbox" / "library"))
    with pytest.raises(ConfigError, match="must not contain each other"):
        load_settings()


def test_an_undo_folder_inside_a_genre_folder_is_refused_and_one_beside_is_taken(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"undo_folder \(.*\) and library \(.*\) must not contain each other"):
        Settings(library=tmp_path / "library", undo_folder=tmp_path / "library" / "Jazz")
    config = tmp_path / "genresort.toml"
    config.write_text('undo_folder = "given-back"\n')
    assert load_settings(config).undo_folder == tmp_path / "given-back"
    assert Settings().undo_folder is None  # the inbox


def test_the_daemon_serves_no_page_unless_web_listen_is_set() -> None:
    assert Settings().web_listen is None and Settings().review_page_address == "127.0.0.1:8765"
    assert Settings(web_listen="127.0.0.1:9000").review_page_address == "127.0.0.1:9000"


def test_invalid_toml_is_refused_with_the_file_named(tmp_path: Path) -> None:
    config = tmp_path / "genresort.toml"
    config.write_text("inbox = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config)


def test_a_missing_config_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.toml")


# --- genre_names ------------------------------------------------------------------------------------------------


def test_genre_names_come_from_a_toml_table(tmp_path: Path) -> None:
    config = tmp_path / "genresort.toml"
    config.write_text('workers = 2\n\n[genre_names]\n"Hip-Hop" = "Rap"\nDisco = "Pop"\n')
    settings = load_settings(config)
    assert settings.genre_names == {"Hip-Hop": "Rap", "Disco": "Pop"} and settings.workers == 2


def test_the_documented_genre_names_example_loads(tmp_path: Path) -> None:
    """The commented example in config/genresort.toml, uncommented, is what it says."""
    [example] = [line for line in DEFAULT_CONFIG_FILE.read_text().splitlines() if line.startswith("# genre_names = ")]
    config = tmp_path / "genresort.toml"
    config.write_text(example.removeprefix("# ") + "\n")
    assert load_settings(config).genre_names == {"Hip-Hop": "Rap", "Disco": "Pop"}


def test_genre_names_come_from_a_json_variable_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "genresort.toml"
    config.write_text('[genre_names]\nDisco = "Pop"\n')
    monkeypatch.setenv("GENRESORT_GENRE_NAMES", '{"Hip-Hop": "Rap"}')
    assert load_settings(config).genre_names == {"Hip-Hop": "Rap"}
    assert Settings().genre_names == {"Hip-Hop": "Rap"}  # read by pydantic-settings itself, too


def test_no_genre_names_by_default() -> None:
    assert load_settings().genre_names == {}


@pytest.mark.parametrize(
    "text, problem",
    [
        ('{"Hip-Hop": "Rap"', "not a JSON object"),
        ('["Rap"]', "not a JSON object"),
        ('{"Hip-Hop": 3}', "Input should be a valid string"),
    ],
)
def test_a_variable_that_is_not_a_json_object_of_names_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, text: str, problem: str
) -> None:
    monkeypatch.setenv("GENRESORT_GENRE_NAMES", text)
    with pytest.raises(ConfigError, match=r"genre_names\S* \(from GENRESORT_GENRE_NAMES\): .*" + problem):
        load_settings()
    with pytest.raises(ValidationError, match=problem):  # never pydantic-settings' SettingsError
        Settings()


@pytest.mark.parametrize(
    "name, problem",
    [
        ("", "cannot be empty"),
        ("   ", "cannot be empty"),
        (" Rap", "cannot begin or end with spaces"),
        ("Rap ", "cannot begin or end with spaces"),
        ("Rap/Hip-Hop", "cannot hold '/'"),
        ("Rap\\\\Hip-Hop", "cannot hold '/'"),
        ("Rap\\u0000", "cannot hold '/'"),
        (".", "is not a folder name"),
        ("..", "is not a folder name"),
        ("unsure", "not sorted into a genre"),
        ("Not-Music", "not sorted into a genre"),
    ],
)
def test_a_genre_name_that_is_not_one_plain_folder_name_is_refused_naming_the_genre(
    tmp_path: Path, name: str, problem: str
) -> None:
    config = tmp_path / "genresort.toml"
    config.write_text(f'[genre_names]\nJazz = "Jazz"\n"Hip-Hop" = "{name}"\n')
    with pytest.raises(ConfigError) as refusal:
        load_settings(config)
    message = str(refusal.value)
    assert f"genre_names (from {config}): " in message and "'Hip-Hop' = " in message and problem in message
    assert "'Jazz'" not in message


def test_a_genre_name_that_is_not_text_is_refused_with_the_file_named(tmp_path: Path) -> None:
    config = tmp_path / "genresort.toml"
    config.write_text('[genre_names]\n"Hip-Hop" = 3\n')
    with pytest.raises(ConfigError, match=f"genre_names.Hip-Hop \\(from {config}\\): Input should be a valid string"):
        load_settings(config)
