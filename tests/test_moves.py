"""A person's commands on placed files: `genresort undo` gives them back into the inbox byte for byte as they
arrived, `genresort assign` gives them the person's genre; each refused where it cannot be done safely, and settled
after a crash with each file in exactly one place."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from mutagen.id3 import ID3, TIT2

from conftest import Snapshot, small_tmpfs, tagged_like_a_download, write_mp3
from daemon_harness import Daemon, Folders, drop
from genresort.library.arrival import rebuild
from genresort.library.journal import Journal, Step
from genresort.library.lock import MovesLock
from genresort.service.moves import settle_move


def genresort(folders: Folders, *arguments: str) -> tuple[int, list[dict]]:
    """Run a command on these folders; its exit status and its JSON log lines."""
    environment = folders.env(confidence_threshold=0.0)
    result = subprocess.run(
        [sys.executable, "-m", "genresort.cli", *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.returncode, lines


@pytest.fixture(scope="module")
def sorted_once(tmp_path_factory: pytest.TempPathFactory) -> tuple[Snapshot, Path]:
    """A tagged MP3 dropped into the inbox and sorted by `genresort sort`, once: (the folders' snapshot, where it
    went)."""
    work = tmp_path_factory.mktemp("moves") / "work"
    folders = Folders(work / "music")
    original = tagged_like_a_download(work / "Night Train.mp3")
    shutil.copyfile(original, folders.inbox / original.name)
    status, lines = genresort(folders, "sort")
    assert status == 0, lines
    (line,) = [line for line in lines if line["event"] == "file.sorted"]
    return Snapshot(work), Path(line["destination"])


@pytest.fixture
def sorted_file(sorted_once: tuple[Snapshot, Path]) -> tuple[Folders, Path, Path]:
    """The sorted file, as `genresort sort` left it, for one test: (folders, original, where it went)."""
    snapshot, placed = sorted_once
    work = snapshot.restore()
    return Folders(work / "music"), work / "Night Train.mp3", placed


def test_an_undo_gives_the_file_back_into_the_inbox_byte_for_byte(sorted_file) -> None:
    folders, original, placed = sorted_file
    assert placed.read_bytes() != original.read_bytes()  # our tags are in it

    status, lines = genresort(folders, "undo", "--last", "1")
    assert status == 0, lines
    (line,) = lines
    assert line["event"] == "file.undone" and line["source"] == str(placed)
    given_back = folders.inbox / original.name
    assert line["destination"] == str(given_back)
    assert given_back.read_bytes() == original.read_bytes()
    assert not placed.exists()
    assert [path for path in folders.root.rglob("*.mp3") if path != given_back] == []  # one place only
    with Journal(folders.state / "journal.sqlite3") as journal:
        assert [record.step for record in journal.unfinished()] == []
        assert journal.placed_records() == []  # given back: nothing left to undo


def test_a_dry_run_says_what_would_be_given_back_and_changes_nothing(sorted_file) -> None:
    folders, original, placed = sorted_file
    before = placed.read_bytes()
    status, lines = genresort(folders, "undo", "--dry-run", str(placed))
    assert status == 0 and lines[0]["dry_run"] is True and lines[0]["destination"] == str(folders.inbox / original.name)
    assert placed.read_bytes() == before and list(folders.inbox.iterdir()) == []


def test_a_file_changed_since_genresort_wrote_it_is_refused_and_kept(sorted_file) -> None:
    folders, _, placed = sorted_file
    tags = ID3(placed)
    tags.add(TIT2(encoding=3, text=["Night Train (live)"]))  # a person's own edit: undo must not lose it
    tags.save(placed, v2_version=3)
    edited = placed.read_bytes()

    status, lines = genresort(folders, "undo", str(placed))
    assert status == 1
    assert lines[0]["event"] == "file.undo_refused" and "changed since genresort wrote it" in lines[0]["reason"]
    assert placed.read_bytes() == edited and list(folders.inbox.iterdir()) == []


def test_a_file_no_longer_there_is_refused(sorted_file, tmp_path: Path) -> None:
    folders, _, placed = sorted_file
    placed.rename(tmp_path / "moved away.mp3")
    status, lines = genresort(folders, "undo", "--last", "1")
    assert status == 1 and "no longer at" in lines[0]["reason"]


def test_a_file_genresort_did_not_place_is_an_error(sorted_file, tmp_path: Path) -> None:
    folders, _, _ = sorted_file
    stranger = write_mp3(tmp_path / "stranger.mp3", seconds=1)
    status, lines = genresort(folders, "undo", str(stranger))
    assert status == 2 and "no record of placing" in lines[0]["reason"]


def kill_after_first(folders: Folders, event: str, *arguments: str) -> None:
    """Run a command and SIGKILL it as soon as it logs its first `event`, while the next file is on its way."""
    command = [sys.executable, "-m", "genresort.cli", *arguments]
    running = subprocess.Popen(command, env=folders.env(), stdout=subprocess.PIPE, text=True)
    for line in running.stdout:
        if f'"{event}"' in line:
            running.send_signal(signal.SIGKILL)
            break
    running.wait(timeout=60)
    assert running.returncode == -signal.SIGKILL


def stop_undo_after_staging(folders: Folders, placed: Path) -> tuple[Journal, int]:
    """The journal as an undo killed right after it journaled its staged original leaves it: MOVING, with the
    rebuilt original staged in the inbox's hidden staging folder (service/moves.py's steps up to begin_move)."""
    journal = Journal(folders.state / "journal.sqlite3")
    record = journal.placed_at(placed)
    arrival, _ = journal.arrival(record.id)
    staging = folders.inbox / ".genresort-staging" / "test"
    staging.mkdir(parents=True)
    staged = staging / ".rebuilt.mp3"
    with open(staged, "xb") as copy:
        rebuild(placed, arrival, copy)
    journal.begin_move(record.id, staged, folders.inbox, "undone")
    return journal, record.id


def test_an_undo_stopped_before_its_original_was_placed_is_rolled_back_at_the_next_start(sorted_file) -> None:
    folders, original, placed = sorted_file
    journal, record_id = stop_undo_after_staging(folders, placed)
    journal.close()
    status, lines = genresort(folders, "sort")  # recovery at start settles it
    assert status == 0, lines
    assert placed.read_bytes() != original.read_bytes() and placed.exists()
    assert list(folders.inbox.rglob("*.mp3")) == []  # the staged copy is gone; the sorted file is the one place
    with Journal(folders.state / "journal.sqlite3") as journal:
        assert journal.get(record_id).step is Step.DONE


def test_an_undo_stopped_after_its_original_was_placed_is_finished(sorted_file) -> None:
    folders, original, placed = sorted_file
    journal, record_id = stop_undo_after_staging(folders, placed)
    record = journal.get(record_id)
    os.link(record.staged_path, folders.inbox / original.name)  # placed, then killed before the sorted file went
    with journal:
        assert settle_move(journal, record).step is Step.UNDONE  # what recovery does at the next start
    assert not placed.exists()
    assert (folders.inbox / original.name).read_bytes() == original.read_bytes()
    assert [path.name for path in folders.root.rglob("*.mp3")] == [original.name]


def test_an_undo_killed_midway_leaves_each_file_in_exactly_one_place_and_finishes_when_run_again(
    tmp_path: Path,
) -> None:
    """SIGKILL right after the first file is given back, while the others are on their way: every file is then in
    the library or in the inbox, once; run again, the undo gives back the rest, each byte for byte."""
    folders = Folders(tmp_path / "music")
    originals = {}
    for number in range(8):
        original = tagged_like_a_download(tmp_path / "originals" / f"track {number:02d}.mp3")
        originals[original.name] = original.read_bytes()
        shutil.copyfile(original, folders.inbox / original.name)
    status, lines = genresort(folders, "sort")
    assert status == 0 and sum(line["event"] == "file.sorted" for line in lines) == 8, lines

    kill_after_first(folders, "file.undone", "undo", "--last", "8")

    def places() -> dict[str, list[Path]]:
        found: dict[str, list[Path]] = {name: [] for name in originals}
        for path in folders.root.rglob("*.mp3"):
            if ".genresort-staging" not in path.parts:
                found[path.name].append(path)
        return found

    assert all(len(paths) == 1 for paths in places().values()), places()
    status, lines = genresort(folders, "undo", "--last", "8")
    assert status == 0, lines
    for name, paths in places().items():
        assert paths == [folders.inbox / name] and paths[0].read_bytes() == originals[name]
    assert [path for path in folders.inbox.rglob("*") if path.is_file() and path.parent != folders.inbox] == []


def test_an_undo_stopped_with_its_staged_original_the_only_copy_left_places_it(sorted_file) -> None:
    """If the sorted file went missing while the undo was stopped, the staged original is the only copy: it is
    placed, never discarded."""
    folders, original, placed = sorted_file
    journal, record_id = stop_undo_after_staging(folders, placed)
    placed.unlink()
    with journal:
        assert settle_move(journal, journal.get(record_id)).step is Step.UNDONE
    assert (folders.inbox / original.name).read_bytes() == original.read_bytes()


def test_an_unsure_file_assigned_a_genre_then_undone_is_back_in_the_inbox_as_it_arrived(tmp_path: Path) -> None:
    """The issue's test: a person decides an unsure file, then takes the sort back."""
    folders = Folders(tmp_path / "music")
    original = tagged_like_a_download(tmp_path / "Night Train.mp3")
    shutil.copyfile(original, folders.inbox / original.name)
    environment = folders.env(confidence_threshold=1.0)  # nothing is sure enough: the file goes to unsure
    result = subprocess.run(
        [sys.executable, "-m", "genresort.cli", "sort"], env=environment, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    unsure = folders.unsure / original.name
    assert unsure.is_file()

    status, lines = genresort(folders, "assign", str(unsure), "Swing")
    assert status == 0, lines
    assert lines[0]["event"] == "file.assigned"
    assigned = folders.library / "Swing" / original.name
    assert lines[0]["destination"] == str(assigned) and not unsure.exists()
    tags = ID3(assigned)
    assert str(tags["TCON"]) == "Swing"
    assert tags["TXXX:GENRESORT_DECISION"].text == ["person"]
    assert tags["TXXX:GENRESORT_PREVIOUS_GENRE"].text == ["unsure"]

    status, lines = genresort(folders, "undo", str(assigned))
    assert status == 0, lines
    assert (folders.inbox / original.name).read_bytes() == original.read_bytes()
    assert [path for path in folders.root.rglob("*.mp3")] == [folders.inbox / original.name]


def test_a_correction_keeps_the_genre_it_had_and_refuses_a_name_that_is_not_a_folder(sorted_file) -> None:
    folders, _, placed = sorted_file
    status, lines = genresort(folders, "assign", str(placed), "unsure")
    assert status == 2 and "cannot be a genre folder" in lines[0]["reason"]
    status, lines = genresort(folders, "assign", str(placed), "Rock & Roll")
    assert status == 0, lines
    corrected = Path(lines[0]["destination"])
    assert corrected.parent.name == "Rock & Roll" and not placed.exists()
    assert ID3(corrected)["TXXX:GENRESORT_PREVIOUS_GENRE"].text == [placed.parent.name]


def test_an_assignment_stopped_before_its_copy_was_placed_is_rolled_back(sorted_file, tmp_path: Path) -> None:
    folders, _, placed = sorted_file
    journal = Journal(folders.state / "journal.sqlite3")
    record = journal.placed_at(placed)
    staging = folders.library / ".genresort-staging" / "test"
    staging.mkdir(parents=True)
    staged = Path(shutil.copyfile(placed, staging / ".retagged.mp3"))
    journal.begin_move(record.id, staged, folders.library / "Swing", "assigned")
    with journal:
        settled = settle_move(journal, journal.get(record.id))
        assert settled.step is Step.DONE and settled.destination == placed
    assert [path for path in folders.root.rglob("*.mp3")] == [placed]


def test_an_assign_killed_midway_leaves_each_file_in_exactly_one_place(tmp_path: Path) -> None:
    """SIGKILL right after the first file is assigned: every file is in unsure/ or in the new genre, once, and an
    assignment of the rest finishes the job."""
    folders = Folders(tmp_path / "music")
    for number in range(8):
        tagged_like_a_download(folders.inbox / f"track {number:02d}.mp3")
    environment = folders.env(confidence_threshold=1.0)  # nothing is sure enough: all go to unsure
    sort = subprocess.run([sys.executable, "-m", "genresort.cli", "sort"], env=environment, capture_output=True)
    assert sort.returncode == 0, sort.stderr
    unsure = sorted(folders.unsure.glob("*.mp3"))
    assert len(unsure) == 8

    kill_after_first(folders, "file.assigned", "assign", *map(str, unsure), "Swing")

    def places() -> dict[str, list[Path]]:
        found: dict[str, list[Path]] = {path.name: [] for path in unsure}
        for path in folders.root.rglob("*.mp3"):
            if ".genresort-staging" not in path.parts:
                found[path.name].append(path)
        return found

    assert all(len(paths) == 1 for paths in places().values()), places()
    status, lines = genresort(folders, "assign", *map(str, sorted(folders.unsure.glob("*.mp3"))), "Swing")
    assert status == 0, lines
    for name, paths in places().items():
        assert paths == [folders.library / "Swing" / name]
        assert ID3(paths[0])["TXXX:GENRESORT_DECISION"].text == ["person"]


def test_not_music_is_undone_by_last_and_assigned_with_its_label(tmp_path: Path) -> None:
    folders = Folders(tmp_path / "music")
    noise = tmp_path / "hiss.mp3"
    soundfile.write(noise, np.random.default_rng(3).uniform(-0.5, 0.5, (44100 * 12, 2)), 44100, format="MP3")
    shutil.copyfile(noise, folders.inbox / noise.name)
    environment = folders.env(music_threshold=None)  # the model card's own thresholds: noise is not music
    sort = subprocess.run([sys.executable, "-m", "genresort.cli", "sort"], env=environment, capture_output=True)
    assert sort.returncode == 0, sort.stderr
    placed = folders.not_music / noise.name
    assert placed.is_file()
    status, lines = genresort(folders, "undo", "--dry-run", "--last", "1")
    assert status == 0 and lines[0]["source"] == str(placed)
    status, lines = genresort(folders, "assign", str(placed), "Noise")
    assert status == 0, lines
    assert ID3(folders.library / "Noise" / noise.name)["TXXX:GENRESORT_PREVIOUS_GENRE"].text == ["not-music"]


# --- beside a running daemon ------------------------------------------------------------------------------------


def test_with_the_daemon_running_assign_and_undo_go_ahead_and_an_undo_into_the_inbox_is_sorted_again(
    tmp_path: Path,
) -> None:
    folders = Folders(tmp_path / "music")
    daemon = Daemon(folders, folders.env(confidence_threshold=0.0, stability_seconds=0.5), "beside")
    try:
        daemon.wait_ready()
        song = drop(tagged_like_a_download(tmp_path / "Night Train.mp3"), folders.inbox / "Night Train.mp3")
        placed = Path(daemon.wait_outcome(song)["destination"])
        status, lines = genresort(folders, "assign", str(placed), "Swing")
        assert status == 0 and lines[0]["event"] == "file.assigned", lines
        assigned = folders.library / "Swing" / song.name
        aside = folders.root / "given back"
        aside.mkdir()
        status, lines = genresort(folders, "undo", "--to", str(aside), str(assigned))
        assert status == 0, lines
        assert (aside / song.name).read_bytes() == (tmp_path / song.name).read_bytes()  # out of the daemon's way
        shutil.move(aside / song.name, folders.root / "again.mp3")
        again = drop(folders.root / "again.mp3", folders.inbox / "Night Train.mp3")
        placed = Path(
            daemon.wait_for(lambda: daemon.outcomes(again)[1:], "the file sorted a second time")[0]["destination"]
        )
        status, lines = genresort(folders, "undo", str(placed))  # into the watched inbox: the daemon sorts it again
        assert status == 0, lines
        daemon.wait_for(lambda: len(daemon.outcomes(again)) == 3, "the file given back sorted again")
        assert daemon.terminate() == 0
    finally:
        daemon.close()
    assert [path.parent.name for path in folders.library.rglob("*.mp3")] == [placed.parent.name]


def test_a_move_cut_short_is_left_to_the_move_holding_the_lock_and_settled_once_it_is_free(sorted_file) -> None:
    folders, _, placed = sorted_file
    journal, record_id = stop_undo_after_staging(folders, placed)
    journal.close()
    running_move = MovesLock(folders.state)  # an undo running at the same time, which settles what it finds
    assert running_move.try_acquire()
    try:
        status, lines = genresort(folders, "sort")  # a start: recovery must not touch a move another may own
        assert status == 0, lines
        with Journal(folders.state / "journal.sqlite3") as journal:
            assert journal.get(record_id).step is Step.MOVING
    finally:
        running_move.release()
    status, lines = genresort(folders, "sort")
    assert status == 0, lines
    with Journal(folders.state / "journal.sqlite3") as journal:
        assert journal.get(record_id).step is Step.DONE and placed.exists()


def test_an_undo_into_a_full_disk_is_refused_and_the_file_stays_where_it_was(sorted_file, tmp_path: Path) -> None:
    folders, _, placed = sorted_file
    before = placed.read_bytes()
    with small_tmpfs(tmp_path / "full", "64k") as full:
        status, lines = genresort(folders, "undo", "--to", str(full), str(placed))
        assert status == 1 and lines[0]["event"] == "file.undo_refused", lines
        assert "could not be moved" in lines[0]["reason"] and "No space left" in lines[0]["reason"]
        assert [path for path in full.rglob("*") if path.is_file()] == []  # nothing half-written left behind
    assert placed.read_bytes() == before
    with Journal(folders.state / "journal.sqlite3") as journal:
        assert journal.placed_at(placed).step is Step.DONE


def test_undo_gives_back_into_undo_folder_when_one_is_set(sorted_file) -> None:
    folders, original, placed = sorted_file
    aside = folders.root / "given back"
    aside.mkdir()
    environment = folders.env(confidence_threshold=0.0, undo_folder=aside)
    result = subprocess.run(
        [sys.executable, "-m", "genresort.cli", "undo", "--last", "1"], env=environment, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (aside / original.name).read_bytes() == original.read_bytes() and not placed.exists()
