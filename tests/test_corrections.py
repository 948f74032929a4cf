"""A person's corrections kept as labelled examples (issue 9, part 4): a file a person moves by hand from one genre
folder to another is noticed by the daemon (`file.corrected`), its journal record follows it (so `undo` still gives
it back as it arrived) and the file is left as it is; `genresort assign` and the review page's genre buttons keep
theirs once the move is done, and a refused move keeps none."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from conftest import Snapshot, tagged_like_a_download
from daemon_harness import Daemon, Folders, drop
from genresort.library.journal import ExampleOrigin, Journal, Step
from genresort.library.lock import MovesLock
from genresort.paths import CARD_JSON, DEFAULT_MODEL_DIR
from genresort.service.corrections import CorrectionCheck, genre_files
from test_moves import genresort
from test_web import client_of, csrf_of, settings_of

GENRES = json.loads((DEFAULT_MODEL_DIR / CARD_JSON).read_text())["genres"]


def other_genre(*taken: str) -> str:
    return next(genre for genre in GENRES if genre not in taken)


def journal_of(folders: Folders) -> Journal:
    return Journal(folders.state / "journal.sqlite3")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon that sorts every file into its likeliest genre and looks for people's corrections every second."""
    folders = Folders(tmp_path_factory.mktemp("corrections") / "music")
    daemon = Daemon(folders, folders.env(confidence_threshold=0.0, stability_seconds=0.5, rescan_seconds=1.0))
    try:
        daemon.wait_ready()
        yield daemon
        assert daemon.terminate() == 0
    finally:
        daemon.close()


def sort_one(daemon: Daemon, name: str) -> tuple[Path, Path]:
    """A tagged MP3 (kept aside as it arrived) sorted by the daemon: (the original, where it was placed)."""
    original = tagged_like_a_download(daemon.folders.root / "arrived" / name)
    dropped = drop(original, daemon.folders.inbox / name)
    line = daemon.wait_outcome(dropped)
    assert line["event"] == "file.sorted", line
    return original, Path(line["destination"])


def corrected(daemon: Daemon, source: Path) -> dict:
    return daemon.wait_for(lambda: daemon.about(source, "file.corrected"), f"file.corrected for {source}")[0]


def test_a_file_moved_to_another_genre_folder_is_a_correction_and_undo_still_gives_it_back(
    running: Daemon, tmp_path: Path
) -> None:
    folders = running.folders
    original, placed = sort_one(running, "Night Train.mp3")
    genre = placed.parent.name
    before = placed.read_bytes()

    rock = folders.library / other_genre(genre)
    rock.mkdir(exist_ok=True)
    moved = rock / placed.name
    os.rename(placed, moved)  # mv library/Metal/x.mp3 library/Rock/
    line = corrected(running, placed)
    assert line["destination"] == str(moved) and line["genre"] == rock.name and line["previous_genre"] == genre
    assert genre in line["tags"]
    assert moved.read_bytes() == before  # never moved back, retagged or removed
    with journal_of(folders) as journal:
        record = journal.placed_at(moved)
        assert record is not None and record.destination == moved
        (example,) = [example for example in journal.examples() if example.sha256 == record.sha256]
        assert (example.path, example.genre, example.origin) == (moved, rock.name, ExampleOrigin.MOVED)

    # deeper into a third genre, as a path_template would put it: the example follows (one per content)
    deeper = folders.library / other_genre(genre, rock.name) / "Some Artist" / "Some Album" / placed.name
    deeper.parent.mkdir(parents=True)
    os.rename(moved, deeper)
    line = corrected(running, moved)
    assert line["genre"] == deeper.parents[2].name and line["previous_genre"] == rock.name
    with journal_of(folders) as journal:
        examples = [example for example in journal.examples() if example.sha256 == record.sha256]
        assert [(example.path, example.genre) for example in examples] == [(deeper, deeper.parents[2].name)]

    aside = tmp_path / "given back"
    aside.mkdir()
    status, lines = genresort(folders, "undo", "--to", str(aside), str(deeper))
    assert status == 0 and lines[0]["event"] == "file.undone", lines
    assert (aside / original.name).read_bytes() == original.read_bytes()  # byte for byte as it arrived
    assert not deeper.exists()


def test_a_file_moved_into_unsure_or_out_of_the_library_is_no_correction(running: Daemon, tmp_path: Path) -> None:
    folders = running.folders
    _, into_unsure = sort_one(running, "Into Unsure.mp3")
    _, taken_out = sort_one(running, "Taken Out.mp3")
    _, witness = sort_one(running, "Witness.mp3")
    os.rename(into_unsure, folders.unsure / into_unsure.name)
    os.rename(taken_out, tmp_path / taken_out.name)
    elsewhere = folders.library / other_genre(witness.parent.name) / witness.name
    elsewhere.parent.mkdir(exist_ok=True)
    os.rename(witness, elsewhere)  # moved last: the check that notices it saw the other two moves as well
    corrected(running, witness)
    assert running.about(into_unsure, "file.corrected") == [] and running.about(taken_out, "file.corrected") == []
    with journal_of(folders) as journal:
        noted = {example.path for example in journal.examples()}
    assert folders.unsure / into_unsure.name not in noted and into_unsure not in noted
    assert (folders.unsure / into_unsure.name).is_file() and (tmp_path / taken_out.name).is_file()


def test_assign_and_the_review_page_keep_examples_and_a_refused_assignment_keeps_none(running: Daemon) -> None:
    folders = running.folders
    _, by_command = sort_one(running, "By Command.mp3")
    _, by_page = sort_one(running, "By Page.mp3")

    genre = other_genre(by_command.parent.name)
    status, lines = genresort(folders, "assign", str(by_command), genre)
    assert status == 0 and lines[0]["event"] == "file.assigned", lines
    assigned = Path(lines[0]["destination"])
    with journal_of(folders) as journal:
        record = journal.placed_at(assigned)
        examples = journal.examples()
    (example,) = [example for example in examples if example.sha256 == record.sha256]
    assert (example.path, example.genre, example.origin) == (assigned, genre, ExampleOrigin.ASSIGN)

    status, lines = genresort(folders, "assign", str(assigned), genre)  # in that genre already: refused
    assert status == 1 and lines[0]["event"] == "file.assign_refused", lines
    with journal_of(folders) as journal:
        assert journal.examples() == examples

    with journal_of(folders) as journal:
        record = journal.placed_at(by_page)
    client = client_of(settings_of(folders))
    genre = other_genre(by_page.parent.name)
    response = client.post(
        f"/assign/{record.id}",
        data={"genre": genre, "csrf": csrf_of(client.get("/").text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    with journal_of(folders) as journal:
        placed = journal.get(record.id).destination
        (example,) = [example for example in journal.examples() if example.sha256 == record.sha256]
    assert placed.parent.name == genre
    assert (example.path, example.genre, example.origin) == (placed, genre, ExampleOrigin.REVIEW_PAGE)


# --- the check itself, without a daemon ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sorted_once(tmp_path_factory: pytest.TempPathFactory) -> tuple[Snapshot, Path]:
    """A tagged MP3 sorted by `genresort sort` into its likeliest genre, once: (the folders' snapshot, where it was
    placed)."""
    work = tmp_path_factory.mktemp("corrections") / "music"
    folders = Folders(work)
    tagged_like_a_download(folders.inbox / "Night Train.mp3")
    status, lines = genresort(folders, "sort")
    assert status == 0, lines
    (line,) = [line for line in lines if line["event"] == "file.sorted"]
    return Snapshot(work), Path(line["destination"])


@pytest.fixture
def sorted_by_sort(sorted_once: tuple[Snapshot, Path]) -> tuple[Folders, Path]:
    """The sorted file, as `genresort sort` left it, for one test: (folders, where it was placed)."""
    snapshot, placed = sorted_once
    return Folders(snapshot.restore()), placed


def check_of(folders: Folders, journal: Journal) -> CorrectionCheck:
    left_out = (folders.unsure, folders.not_music, folders.quarantine)
    return CorrectionCheck(journal, folders.library, left_out, MovesLock(folders.state), structlog.get_logger())


def test_a_file_moved_while_no_daemon_ran_is_found_by_what_genresort_wrote_into_it(sorted_by_sort) -> None:
    """A new daemon has never seen the file in its place (no inode to go by): the size, mtime and tags genresort
    wrote find it; a copy that kept its times (cp -p, then rm) too."""
    folders, placed = sorted_by_sort
    jazz = folders.library / other_genre(placed.parent.name) / placed.name
    jazz.parent.mkdir()
    shutil.copy2(placed, jazz)
    placed.unlink()
    with journal_of(folders) as journal, capture_logs() as logs:
        (correction,) = check_of(folders, journal).run()
        assert correction.destination == jazz and journal.placed_at(jazz) is not None
        assert [example.genre for example in journal.examples()] == [jazz.parent.name]
    assert [log["event"] for log in logs] == ["file.corrected"]


def test_a_move_within_its_genre_or_a_check_while_a_move_holds_the_lock_changes_nothing(sorted_by_sort) -> None:
    folders, placed = sorted_by_sort
    renamed = placed.parent / "Album" / "renamed.mp3"
    renamed.parent.mkdir()
    os.rename(placed, renamed)
    with journal_of(folders) as journal:
        check = check_of(folders, journal)
        assert check.run() == []  # renamed in its own genre folder: no correction
        elsewhere = folders.library / other_genre(placed.parent.name) / renamed.name
        elsewhere.parent.mkdir()
        os.rename(renamed, elsewhere)
        moves = MovesLock(folders.state)
        assert moves.try_acquire()
        try:
            assert check.run() == []  # an undo or assign is running: the next check will do
        finally:
            moves.release()
        assert [correction.destination for correction in check.run()] == [elsewhere]
        assert journal.placed_at(elsewhere) is not None


def test_only_a_placed_file_is_followed_and_in_one_step(sorted_by_sort) -> None:
    folders, placed = sorted_by_sort
    with journal_of(folders) as journal:
        record = journal.placed_at(placed)
        moved = journal.relocate(record.id, placed.with_name("elsewhere.mp3"))
        assert (moved.step, moved.outcome, moved.updated_at) == (Step.DONE, record.outcome, record.updated_at)
        journal.advance(record.id, Step.MOVING)
        with pytest.raises(ValueError, match="only a placed file is followed"):
            journal.relocate(record.id, placed)


def test_the_walk_leaves_out_hidden_folders_loose_files_and_the_folders_kept_inside_the_library(tmp_path: Path) -> None:
    library = tmp_path / "library"
    for relative in ("Jazz/a.mp3", "Jazz/Album/b.mp3", "loose.mp3", ".genresort-staging/x/c.mp3", "unsure/d.mp3"):
        (library / relative).parent.mkdir(parents=True, exist_ok=True)
        (library / relative).write_bytes(b"")
    (library / "Jazz" / "link.mp3").symlink_to(library / "Jazz" / "a.mp3")
    files = genre_files(library, [library / "unsure"])
    assert sorted(files) == [str(library / "Jazz" / "Album" / "b.mp3"), str(library / "Jazz" / "a.mp3")]
    assert files[str(library / "Jazz" / "a.mp3")] == os.stat(library / "Jazz" / "a.mp3").st_ino
