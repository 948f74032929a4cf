"""Before READY: the state folder is ours alone, and its journal intact and writable, or the start is refused
with words people can act on. Real files, real mounts, real locks."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from genresort.config import Settings
from genresort.library.journal import Journal, JournalError
from genresort.library.lock import InstanceLock
from genresort.service.startup import JOURNAL_NAME, open_journal, open_journal_unlocked, open_state
from test_journal import DAMAGES, SHA_A, damaged_journal

LOG = structlog.get_logger()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        inbox=tmp_path / "inbox",
        library=tmp_path / "library",
        quarantine=tmp_path / "quarantine",
        unsure=tmp_path / "unsure",
        state_dir=tmp_path / "state",
    )


@contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """`path` (a file or a folder) under a read-only bind mount, which stops root too (the tests run as root,
    where permission bits stop nothing). Where mounts are not allowed it skips, but fails in CI."""
    bound = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True, text=True)
    if bound.returncode != 0:
        message = f"cannot bind-mount {path} read-only: {bound.stderr.strip() or bound.returncode}"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI is set, so it must work")
        pytest.skip(message)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True, capture_output=True)
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def events(logs: list[dict]) -> list[str]:
    return [line["event"] for line in logs]


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_journal_is_moved_aside_with_one_clear_line_and_a_fresh_one_started(
    settings: Settings, damage: str
) -> None:
    settings.state_dir.mkdir()
    path = damaged_journal(settings.state_dir, damage)
    damaged = path.read_bytes()

    with capture_logs() as logs:
        state = open_state(settings, LOG)
    assert state is not None
    try:
        assert state.journal.claim(Path("/inbox/song.mp3"), SHA_A, 1, 1).id == 1
    finally:
        state.close()

    [line] = logs
    assert line["event"] == "journal.damaged" and line["log_level"] == "error"
    assert line["reason"].startswith(f"the journal {path} is damaged: ")
    assert "sorted again" in line["meaning"] and "forgotten" in line["meaning"]
    aside = Path(line["moved_to"])
    assert aside.parent == settings.state_dir and aside.name.startswith(f"{JOURNAL_NAME}.damaged-")
    assert aside.read_bytes() == damaged


def test_a_damaged_journal_that_cannot_be_moved_aside_is_refused_saying_so(tmp_path: Path) -> None:
    path = damaged_journal(tmp_path, "junk bytes")

    with read_only(tmp_path), pytest.raises(JournalError) as refused:
        open_journal(path, LOG)

    assert str(refused.value).startswith(f"the journal {path} is damaged: file is not a database; it cannot be moved")
    assert str(refused.value).endswith("move it away, then start again")


def test_a_dry_run_leaves_a_damaged_journal_where_it_is(settings: Settings) -> None:
    settings.state_dir.mkdir()
    path = damaged_journal(settings.state_dir, "a page of zeros in the middle")
    damaged = path.read_bytes()

    with capture_logs() as logs:
        assert open_journal_unlocked(settings, LOG) is None

    [line] = logs
    assert line["event"] == "daemon.refused"
    assert line["reason"].startswith(f"the journal {path} is damaged: ")
    assert "`genresort sort` or the daemon will move it aside" in line["reason"]
    assert path.read_bytes() == damaged
    assert not list(settings.state_dir.glob("*.damaged-*"))


def test_an_intact_journal_is_kept_and_nothing_is_logged(settings: Settings) -> None:
    with Journal(settings.state_dir / JOURNAL_NAME) as journal:
        journal.claim(Path("/inbox/song.mp3"), SHA_A, 1, 1)

    with capture_logs() as logs:
        state = open_state(settings, LOG)
    assert state is not None
    try:
        assert [record.source for record in state.journal.unfinished()] == [Path("/inbox/song.mp3")]
    finally:
        state.close()
    assert logs == []
    assert sorted(entry.name for entry in settings.state_dir.iterdir()) == ["genresort.pid", JOURNAL_NAME]


def test_a_read_only_journal_file_refuses_the_start_saying_what_to_do(settings: Settings) -> None:
    path = settings.state_dir / JOURNAL_NAME
    with Journal(path) as journal:
        journal.claim(Path("/inbox/song.mp3"), SHA_A, 1, 1)
    before = path.read_bytes()

    with read_only(path), capture_logs() as logs:
        assert open_state(settings, LOG) is None

    [line] = logs
    assert line["event"] == "daemon.refused"
    assert line["reason"].startswith(f"the journal {path} cannot be written (attempt to write a readonly database)")
    assert f"chown -R genresort: {settings.state_dir}" in line["reason"]
    assert path.read_bytes() == before
    assert not list(settings.state_dir.glob("*.damaged-*"))
    assert InstanceLock(settings.state_dir).acquire() is None  # the refusal let the lock go


def test_a_read_only_state_folder_refuses_the_start_naming_it(settings: Settings) -> None:
    Journal(settings.state_dir / JOURNAL_NAME).close()

    with read_only(settings.state_dir), capture_logs() as logs:
        assert open_state(settings, LOG) is None

    [line] = logs
    assert line["event"] == "daemon.refused"
    assert str(settings.state_dir) in line["reason"] and "cannot be created or written" in line["reason"]


def test_a_second_instance_is_refused_even_with_the_other_files_of_the_state_folder_deleted(
    settings: Settings,
) -> None:
    first = open_state(settings, LOG)
    assert first is not None
    try:
        for leftover in settings.state_dir.iterdir():
            if not leftover.name.startswith(JOURNAL_NAME):
                leftover.unlink()
        with capture_logs() as logs:
            assert open_state(settings, LOG) is None
    finally:
        first.close()

    [line] = logs
    assert line["event"] == "daemon.refused"
    assert line["reason"].startswith(f"another genresort (pid unknown) is using the state folder {settings.state_dir}")
    again = open_state(settings, LOG)
    assert again is not None
    again.close()
