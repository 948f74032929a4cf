"""The fault battery of issue 6: a real `genresort watch` (tests/daemon_harness.py) or `genresort sort`, on real
folders, against what a hostile user and a hostile machine do to it. One test per scenario, as the issue words it.

Good music is a short MP3 written by the test (or a shared GTZAN clip where a size matters); with
confidence_threshold 0 every good file goes to some genre folder, whichever the model picks. Placed files are
compared with their inputs by the audio payload (tags aside). Where a file must be caught in the middle of its
analysis, the daemon's analysis worker is stopped with SIGSTOP until the test has done its deed: once the journal
has a record of the file (it is hashed and claimed before it is analysed), it is in analysis, for certain.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from conftest import make_mp3, shared_clip
from daemon_harness import (
    REASON_SUFFIX,
    STARTUP_SECONDS,
    Daemon,
    Folders,
    User,
    analysis_workers,
    drop,
    files_under,
    fingerprint,
    music_in,
)
from genresort.digest import sha256_file
from genresort.training.dataset import GTZAN_GENRE_NAMES

#: Quick to take a file, one analysis worker, every good file sorted into a genre, retries within a second.
QUICK = {"stability_seconds": 0.5, "workers": 1, "confidence_threshold": 0.0, "retry_max_seconds": 1.0}
#: QUICK, and a rescan of the inbox every second: whatever a rescan would do twice, it does within seconds.
RESCANNING = QUICK | {"rescan_seconds": 1.0}
#: Long enough after a drop for the file to be stable and queued (stability 0.5 s, a few ticks).
QUEUED_AFTER_SECONDS = 2.0
CANNOT_REMOVE = re.compile(r"(cannot|could not|can't|unable to)\b.{0,20}\b(remov|delet)", re.IGNORECASE)
GiB = 2**30


# --- helpers -----------------------------------------------------------------------------------------------


def copies(song: Path, *roots: Path) -> list[Path]:
    """The files below `roots` (staging folders aside) that hold the audio of `song`."""
    wanted = fingerprint(song)
    return [path for path in placed_files(*roots) if fingerprint(path) == wanted]


def placed_files(*roots: Path) -> list[Path]:
    """The files below `roots` outside the staging folders, reason files aside."""
    return [path for path in files_under(*roots) if not path.name.endswith(REASON_SUFFIX)]


def assert_no_traceback(daemon: Daemon) -> None:
    said = "\n".join(item.text for item in daemon.stream())
    assert "Traceback" not in said + daemon.stderr(), daemon.describe()
    assert daemon.junk() == [], daemon.describe()


def wait_for_rescans(daemon: Daemon, count: int = 3) -> None:
    """Until `count` more rescans of the inbox have finished: by then each has offered every file again."""
    seen = len(daemon.logs("scan.finished"))
    daemon.wait_for(lambda: len(daemon.logs("scan.finished")) >= seen + count, f"{count} rescans")


@contextmanager
def analysis_paused(daemon: Daemon) -> Iterator[None]:
    """The daemon's analysis workers stopped (SIGSTOP) for the block: a file handed to them stays in analysis."""
    workers = analysis_workers(daemon)
    assert workers, "no analysis worker to pause" + daemon.describe()
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGCONT)


def wait_until_taken(daemon: Daemon, source: Path) -> None:
    """Until the journal has a record of `source`: the daemon has taken the file, and (its workers paused) cannot
    have finished analysing it."""
    daemon.wait_for(lambda: journal_knows(daemon.folders, source), f"the daemon to take {source.name}")


def journal_knows(folders: Folders, source: Path) -> bool:
    journal = folders.state / "journal.sqlite3"
    try:
        connection = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
        try:
            row = connection.execute("SELECT 1 FROM files WHERE source = ?", (os.fsencode(source),)).fetchone()
        finally:
            connection.close()
    except sqlite3.Error:  # not created yet, or busy
        return False
    return row is not None


def occupy_the_only_worker(daemon: Daemon, seed: int) -> Path:
    """Drop a file and wait until it is in analysis (call with the workers paused); the inbox path."""
    blocker = drop(make_mp3(daemon.folders.root / "inputs" / "blocker.mp3", seed=seed), daemon.folders.inbox / "a.mp3")
    wait_until_taken(daemon, blocker)
    return blocker


def wait_ready_or_exit(daemon: Daemon) -> None:
    daemon.wait_for(
        lambda: daemon.logs("daemon.ready") or daemon.process.poll() is not None, "ready or exit", STARTUP_SECONDS
    )


def genresort(folders: Folders, command: str, *arguments: str, env: dict[str, str] | None = None):
    """`genresort COMMAND --config <the folders' empty file> ARGUMENTS...`, configured by `env` (default: the
    folders' GENRESORT_* variables)."""
    return subprocess.run(
        [sys.executable, "-m", "genresort.cli", command, "--config", str(folders.config_file), *arguments],
        env=folders.env() if env is None else env,
        cwd=folders.root,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- a. a file name that is not UTF-8 ----------------------------------------------------------------------


def test_a_name_that_is_not_utf8_is_sorted_once_and_the_daemon_starts_again(tmp_path: Path, start_daemon) -> None:
    """`\\xff\\xfe.mp3` (old drives, SMB shares): good audio, so placed in the library exactly once - not
    quarantined, no new copy per retry - with no traceback; then the daemon stops and starts again cleanly."""
    folders = Folders(tmp_path)
    song = make_mp3(tmp_path / "inputs" / "song.mp3", seed=6001)
    daemon = start_daemon(folders, **RESCANNING)
    daemon.wait_ready()
    inbox = os.fsencode(folders.inbox)
    with open(song, "rb") as content, open(inbox + b"/.incoming", "wb") as hidden:
        hidden.write(content.read())
    os.rename(inbox + b"/.incoming", inbox + b"/\xff\xfe.mp3")
    source = Path(os.fsdecode(inbox + b"/\xff\xfe.mp3"))

    outcome = daemon.wait_outcome(source)
    assert outcome["event"] == "file.sorted", outcome
    wait_for_rescans(daemon)  # time for retries and rescans to make more copies, were they going to
    [placed] = copies(song, folders.inbox, *folders.destinations)
    assert placed.parent.parent == folders.library, placed
    assert daemon.outcomes(source) == [outcome]
    assert files_under(folders.quarantine) == []
    assert daemon.logs("file.error") == [], daemon.describe()
    assert_no_traceback(daemon)
    assert daemon.terminate() == 0

    again = start_daemon(folders, "restart", **RESCANNING)
    again.wait_ready()
    wait_for_rescans(again, 1)
    assert files_under(folders.quarantine) == [], "nothing new in quarantine"
    assert copies(song, folders.inbox, *folders.destinations) == [placed]
    assert_no_traceback(again)
    assert again.terminate() == 0


# --- b. an original the daemon cannot delete; a genre folder it cannot write ------------------------------------


def test_an_original_the_daemon_cannot_remove_is_placed_once_kept_and_not_sorted_again(
    unprivileged_user: User, user_folder: Path, start_daemon
) -> None:
    """The daemon runs as its own user; a subfolder of the inbox belongs to someone else (root, mode 0755): the file
    ends in the library exactly once, the original stays with one clear log line saying it cannot be removed, later
    rescans do not sort it again, and the next start neither crashes nor sorts it again."""
    folders = Folders(user_folder, owner=unprivileged_user)
    theirs = folders.inbox / "someone-elses"
    theirs.mkdir()
    theirs.chmod(0o755)
    song = make_mp3(user_folder / "inputs" / "kept.mp3", seed=6101)
    daemon = start_daemon(folders, **RESCANNING)
    daemon.wait_ready()
    source = drop(song, theirs / "kept.mp3")

    outcome = daemon.wait_outcome(source)
    assert outcome["event"] == "file.sorted", outcome
    wait_for_rescans(daemon)
    assert daemon.outcomes(source) == [outcome], "sorted again by a rescan"
    [placed] = copies(song, *folders.destinations)
    assert placed.parent.name == theirs.name and placed.parent.parent.parent == folders.library, placed  # its album
    assert source.read_bytes() == song.read_bytes(), "the original stays, untouched"
    saying_so = [record for record in daemon.about(source) if CANNOT_REMOVE.search(json.dumps(record))]
    assert len(saying_so) == 1, "one log line says the original cannot be removed" + daemon.describe()
    assert_no_traceback(daemon)
    assert daemon.terminate() == 0

    again = start_daemon(folders, "restart", **RESCANNING)
    again.wait_ready()
    wait_for_rescans(again)
    assert again.outcomes(source) == [], "sorted again after a restart"
    assert copies(song, *folders.destinations) == [placed]
    assert source.exists()
    assert_no_traceback(again)
    assert again.terminate() == 0


def test_an_unwritable_genre_folder_leaves_no_staged_copies_behind_its_retries(
    unprivileged_user: User, user_folder: Path, start_daemon
) -> None:
    """Every genre folder belongs to someone else (root, 0755), so the file cannot be placed: it is retried, and
    the staged copies of the attempts do not pile up in the staging folders."""
    folders = Folders(user_folder, owner=unprivileged_user)
    folders.library.mkdir()
    unprivileged_user.own(folders.library)
    for genre in GTZAN_GENRE_NAMES.values():
        (folders.library / genre).mkdir(mode=0o755)
    song = make_mp3(user_folder / "inputs" / "no-entry.mp3", seed=6201)
    daemon = start_daemon(folders, **QUICK)
    daemon.wait_ready()
    source = drop(song, folders.inbox / "no-entry.mp3")

    daemon.wait_for(lambda: len(daemon.about(source, "file.retry")) >= 3, "three retries")
    assert daemon.outcomes(source) == [], daemon.outcomes(source)
    staged = files_under(*folders.destinations, staging=True)
    assert len(staged) <= 1, f"staged copies pile up across retries (one may be the attempt in hand): {staged}"
    assert daemon.terminate() == 0
    assert files_under(*folders.destinations, staging=True) == [], "staged copies left after the stop"
    assert source.read_bytes() == song.read_bytes()
    assert_no_traceback(daemon)


# --- c. a writer that pauses; a file changed during its analysis -----------------------------------------------


@pytest.mark.timeout(150)
def test_a_writer_that_pauses_longer_than_the_stability_window_has_its_whole_file_placed(
    tmp_path: Path, start_daemon
) -> None:
    """`{ head -c 300000 a.mp3; sleep 6; tail -c +300001 a.mp3; } > inbox/a.mp3` with stability_seconds = 5, as a
    slow network copy does: what is placed is the whole file, never the part written before the pause."""
    clip = shared_clip("blues", 1)
    assert clip.stat().st_size > 300_000
    folders = Folders(tmp_path)
    daemon = start_daemon(folders, stability_seconds=5, workers=1, confidence_threshold=0.0)
    daemon.wait_ready()
    source = folders.inbox / "a.mp3"
    writer = f"{{ head -c 300000 {shlex.quote(str(clip))}; sleep 6; tail -c +300001 {shlex.quote(str(clip))}; }}"
    subprocess.run(["bash", "-c", f"{writer} > {shlex.quote(str(source))}"], check=True, timeout=60)
    assert source.read_bytes() == clip.read_bytes()

    daemon.wait_for(lambda: daemon.outcomes(source) and not music_in(folders.inbox), "the file sorted", 90)
    outcomes = daemon.outcomes(source)
    assert len(outcomes) == 1, f"{len(outcomes)} outcomes: {outcomes}"
    [outcome] = outcomes
    assert outcome["event"] == "file.sorted", outcome
    assert outcome["sha256"] == sha256_file(clip), "the part written before the pause was taken"
    assert [fingerprint(path) for path in placed_files(*folders.destinations)] == [fingerprint(clip)]
    assert daemon.terminate() == 0


@pytest.mark.parametrize("change", ["appended to", "replaced"])
def test_a_file_changed_during_its_analysis_is_placed_once_with_its_final_content(
    tmp_path: Path, start_daemon, change: str
) -> None:
    """Once the daemon has taken the file (its staged copy exists) and while it is being analysed, more is appended
    to it, or another file is renamed over it: one file is placed, with the final content; the first content is
    placed nowhere."""
    first = make_mp3(tmp_path / "inputs" / "first.mp3", seed=6301)
    other = make_mp3(tmp_path / "inputs" / "other.mp3", seed=6302)
    final = tmp_path / "inputs" / "final.mp3"
    final.write_bytes(first.read_bytes() + other.read_bytes() if change == "appended to" else other.read_bytes())
    folders = Folders(tmp_path / "daemon")
    daemon = start_daemon(folders, **QUICK)
    daemon.wait_ready()
    source = folders.inbox / "changing.mp3"

    with analysis_paused(daemon):
        drop(first, source)
        wait_until_taken(daemon, source)
        if change == "appended to":
            with open(source, "ab") as stream:
                stream.write(other.read_bytes())
        else:
            drop(other, source)
        assert source.read_bytes() == final.read_bytes()

    daemon.wait_for(lambda: daemon.outcomes(source) and not music_in(folders.inbox), "the final content sorted")
    placed = placed_files(*folders.destinations)
    assert [fingerprint(path) for path in placed] == [fingerprint(final)], f"placed: {placed}"
    assert [outcome["sha256"] for outcome in daemon.outcomes(source)] == [sha256_file(final)], daemon.outcomes(source)
    assert daemon.terminate() == 0


# --- d. a queued file swapped for a FIFO or a symlink ------------------------------------------------------------


def test_a_queued_file_swapped_for_a_fifo_blocks_nothing_and_sigterm_still_stops_the_daemon(
    tmp_path: Path, start_daemon
) -> None:
    """With one worker busy (paused in an analysis), a second file is queued behind it and then swapped for a FIFO
    that nobody writes to: the daemon goes on sorting the files after it, and SIGTERM stops it within 30 s."""
    folders = Folders(tmp_path)
    daemon = start_daemon(folders, **QUICK)
    daemon.wait_ready()
    queued = folders.inbox / "b.mp3"
    with analysis_paused(daemon):
        blocker = occupy_the_only_worker(daemon, seed=6401)
        drop(make_mp3(tmp_path / "inputs" / "queued.mp3", seed=6402), queued)
        time.sleep(QUEUED_AFTER_SECONDS)  # stable by now, so queued behind the blocker
        queued.unlink()
        os.mkfifo(queued)

    later = drop(make_mp3(tmp_path / "inputs" / "later.mp3", seed=6403), folders.inbox / "c.mp3")
    assert daemon.wait_outcome(blocker)["event"] == "file.sorted"
    assert daemon.wait_outcome(later, timeout=30)["event"] == "file.sorted", "the FIFO blocked the only worker"
    assert [r for r in daemon.outcomes(queued) if r["event"] in ("file.sorted", "file.unsure")] == []
    started = time.monotonic()
    assert daemon.terminate(timeout=30) == 0
    assert time.monotonic() - started < 30
    assert_no_traceback(daemon)


def test_a_queued_file_swapped_for_a_symlink_is_not_followed(tmp_path: Path, start_daemon) -> None:
    """A queued file swapped for a symbolic link to a file outside the inbox (standing in for /etc/passwd): nothing
    of the target is copied anywhere, and the link stays where it is."""
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n" * 64)
    secret_bytes = secret.read_bytes()
    folders = Folders(tmp_path / "daemon")
    daemon = start_daemon(folders, **RESCANNING)
    daemon.wait_ready()
    queued = folders.inbox / "b.mp3"
    with analysis_paused(daemon):
        occupy_the_only_worker(daemon, seed=6501)
        drop(make_mp3(tmp_path / "inputs" / "queued.mp3", seed=6502), queued)
        time.sleep(QUEUED_AFTER_SECONDS)
        queued.unlink()
        queued.symlink_to(secret)

    later = drop(make_mp3(tmp_path / "inputs" / "later.mp3", seed=6503), folders.inbox / "c.mp3")
    assert daemon.wait_outcome(later)["event"] == "file.sorted"
    wait_for_rescans(daemon, 2)  # the link offered again by the rescans, were the daemon to look at links
    everything = files_under(folders.root) + files_under(folders.root, staging=True)
    assert [path for path in everything if path.read_bytes() == secret_bytes] == [], "the link was followed"
    assert queued.is_symlink() and queued.readlink() == secret, "the link was removed or changed"
    assert secret.read_bytes() == secret_bytes
    assert daemon.terminate() == 0
    assert_no_traceback(daemon)


# --- e. a huge sparse file -------------------------------------------------------------------------------------


def size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def test_a_huge_sparse_file_over_max_file_mb_is_refused_unread_and_never_copied(tmp_path: Path, start_daemon) -> None:
    """A 5 GB sparse `big.mp3` (`truncate -s 5G`) with max_file_mb = 1: refused within seconds, moved into
    quarantine with a rename (or left in place), with a reason; never copied, so the disk does not fill by GBs."""
    folders = Folders(tmp_path)
    daemon = start_daemon(folders, **QUICK, max_file_mb=1)
    daemon.wait_ready()
    big = tmp_path / "big.mp3"
    with open(big, "wb") as stream:
        stream.truncate(5 * GiB)
    inode = big.stat().st_ino
    used_before = os.statvfs(tmp_path)
    source = folders.inbox / "big.mp3"
    try:
        started = time.monotonic()
        os.rename(big, source)
        daemon.wait_for(
            lambda: [r for r in daemon.about(source) if "MB" in str(r.get("reason", ""))], "big.mp3 refused", 120
        )
        seconds = time.monotonic() - started
        huge = [path for path in files_under(tmp_path) + files_under(tmp_path, staging=True) if size(path) >= GiB]
        assert [(path, os.stat(path).st_ino) for path in huge] == [(huge[0], inode)], f"copied: {huge}"
        assert os.stat(huge[0]).st_blocks * 512 < 2**20, "the file was written densely"
        assert huge[0].parent in (folders.inbox, folders.quarantine), huge[0]
        if huge[0].parent == folders.quarantine:
            assert huge[0].with_name(huge[0].name + REASON_SUFFIX).exists()
        grown = (used_before.f_bfree - os.statvfs(tmp_path).f_bfree) * used_before.f_frsize
        assert grown < GiB, f"the disk filled by {grown / GiB:.1f} GiB"
        assert seconds < 15, f"refused only after {seconds:.0f} s: it was read"
        assert_no_traceback(daemon)
        assert daemon.terminate() == 0
    finally:
        daemon.close()
        for path in files_under(tmp_path) + files_under(tmp_path, staging=True):
            if size(path) >= GiB:
                path.unlink()


# --- f. a damaged state folder ---------------------------------------------------------------------------------


def damage_every_table(journal: Path) -> None:
    """Overwrite the root page of every table with junk; the header and the schema (page 1) stay readable."""
    connection = sqlite3.connect(journal)
    try:
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        roots = [row[0] for row in connection.execute("SELECT rootpage FROM sqlite_master WHERE type = 'table'")]
    finally:
        connection.close()
    assert roots and 1 not in roots, roots
    junk = np.random.default_rng(6602).bytes(page_size)
    with open(journal, "r+b") as stream:
        for root in roots:
            stream.seek((root - 1) * page_size)
            stream.write(junk)


@pytest.mark.parametrize("damage", ["junk bytes", "a damaged page"])
def test_a_damaged_journal_is_moved_aside_or_refused_never_a_traceback(
    tmp_path: Path, start_daemon, damage: str
) -> None:
    """journal.sqlite3 is junk, or a real journal with its tables' pages damaged: the daemon starts (the journal
    moved aside, not deleted, with a clear log line) or refuses to with a clear message; never a traceback."""
    folders = Folders(tmp_path)
    journal = folders.state / "journal.sqlite3"
    if damage == "junk bytes":
        folders.state.mkdir()
        journal.write_bytes(np.random.default_rng(6601).bytes(64 * 1024))
    else:
        first = start_daemon(folders, "first", **QUICK)
        first.wait_ready()
        first.wait_outcome(drop(make_mp3(tmp_path / "inputs" / "before.mp3", seed=6603), folders.inbox / "a.mp3"))
        assert first.terminate() == 0
        damage_every_table(journal)
    damaged = journal.read_bytes()

    daemon = start_daemon(folders, "damaged", **QUICK)
    wait_ready_or_exit(daemon)
    if daemon.logs("daemon.ready"):
        told = [r for r in daemon.logs() if r["level"] in ("warning", "error") and "journal" in json.dumps(r)]
        assert told, "no log line says the journal was damaged" + daemon.describe()
        kept = [path for path in files_under(folders.state) if path.read_bytes() == damaged]
        assert kept, "the damaged journal was deleted, not moved aside"
        song = make_mp3(tmp_path / "inputs" / "after.mp3", seed=6604)
        assert daemon.wait_outcome(drop(song, folders.inbox / "b.mp3"))["event"] == "file.sorted"
        assert daemon.terminate() == 0
    else:
        assert daemon.wait_exit() == 2, daemon.describe()
        [refused] = daemon.logs("daemon.refused")
        assert "journal" in refused["reason"], refused
        assert "READY=1" not in daemon.notifications()
    assert_no_traceback(daemon)


def test_a_read_only_journal_gives_no_ready(unprivileged_user: User, user_folder: Path, start_daemon) -> None:
    """The daemon's user may not write its journal (mode 0444): the start is refused, never READY."""
    folders = Folders(user_folder, owner=unprivileged_user)
    first = start_daemon(folders, "first", **QUICK)
    first.wait_ready()
    assert first.terminate() == 0
    journals = list(folders.state.glob("journal.sqlite3*"))
    assert folders.state / "journal.sqlite3" in journals, journals
    for path in journals:
        path.chmod(0o444)

    daemon = start_daemon(folders, "read-only", **QUICK)
    wait_ready_or_exit(daemon)
    assert daemon.logs("daemon.ready") == [] and "READY=1" not in daemon.notifications(), daemon.describe()
    assert daemon.wait_exit() != 0
    [refused] = daemon.logs("daemon.refused")
    assert "journal" in refused["reason"], refused
    assert_no_traceback(daemon)


def test_deleting_the_lock_file_does_not_let_a_second_daemon_start(tmp_path: Path, start_daemon) -> None:
    """Whatever lock file the running daemon has in its state folder is deleted: a second daemon on the same state
    folder still refuses to start, and the first goes on sorting."""
    folders = Folders(tmp_path)
    first = start_daemon(folders, "first", **QUICK)
    first.wait_ready()
    for path in folders.state.iterdir():
        if "lock" in path.name:
            path.unlink()

    second = start_daemon(folders, "second", **QUICK)
    wait_ready_or_exit(second)
    assert second.logs("daemon.ready") == [] and "READY=1" not in second.notifications(), second.describe()
    assert second.wait_exit() == 2, second.describe()
    assert second.logs("daemon.refused"), second.describe()
    assert first.process.poll() is None, "the first instance keeps running"
    song = drop(make_mp3(tmp_path / "inputs" / "after.mp3", seed=6701), folders.inbox / "a.mp3")
    assert first.wait_outcome(song)["event"] == "file.sorted"
    assert first.terminate() == 0


# --- g. the command line -----------------------------------------------------------------------------------


def says_sorted(line: dict) -> bool:
    return any(value in ("sorted", "file.sorted") for value in line.values())


def test_a_dry_run_does_not_say_sorted_for_a_duplicate_or_a_file_over_max_file_mb(tmp_path: Path) -> None:
    folders = Folders(tmp_path)
    env = folders.env(confidence_threshold=0.0, stability_seconds=0.5, max_file_mb=0.1)
    song = make_mp3(tmp_path / "inputs" / "once.mp3", seed=6801)  # about 17 KB
    long = make_mp3(tmp_path / "inputs" / "long.mp3", seed=6802, seconds=30)  # about 160 KB: over 0.1 MB
    assert song.stat().st_size < 0.1 * 2**20 < long.stat().st_size
    drop(song, folders.inbox / "once.mp3")
    first = genresort(folders, "sort", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert len(copies(song, folders.library)) == 1

    duplicate = drop(song, folders.inbox / "again.mp3")
    over = drop(long, folders.inbox / "long.mp3")
    dry = genresort(folders, "sort", "--dry-run", env=env)
    lines = [json.loads(line) for line in dry.stdout.splitlines() if line.startswith("{")]
    for path in (duplicate, over):
        about = [line for line in lines if str(path) in line.values()]
        assert about, f"no line about {path.name}: {dry.stdout}"
        assert not any(says_sorted(line) for line in about), about
    assert duplicate.exists() and over.exists(), "a dry run moved a file"
    assert "Traceback" not in dry.stderr


@pytest.mark.parametrize("command", ["sort", "watch"])
def test_a_log_file_that_is_a_folder_is_refused_with_a_clear_message(tmp_path: Path, command: str) -> None:
    folders = Folders(tmp_path)
    folder = tmp_path / "logs"
    folder.mkdir()
    result = genresort(folders, command, env=folders.env(log_file=folder))
    said = result.stdout + result.stderr
    assert result.returncode == 2, said
    assert "Traceback" not in said
    assert "log_file" in said, said


@pytest.mark.parametrize("key", ["file_timeout_seconds", "stability_seconds"])
def test_an_infinite_time_is_refused_naming_the_key(tmp_path: Path, key: str) -> None:
    folders = Folders(tmp_path)
    folders.config_file.write_text(f"{key} = inf\n")
    result = genresort(folders, "sort", "--dry-run")
    assert result.returncode == 2, result.stdout + result.stderr
    assert key in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_a_misspelt_environment_variable_is_refused_naming_it(tmp_path: Path) -> None:
    folders = Folders(tmp_path)
    result = genresort(folders, "sort", "--dry-run", env=folders.env() | {"GENRESORT_INBX": str(tmp_path / "x")})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "GENRESORT_INBX" in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_sort_with_a_missing_inbox_exits_non_zero(tmp_path: Path) -> None:
    folders = Folders(tmp_path)
    result = genresort(folders, "sort", env=folders.env() | {"GENRESORT_INBOX": str(tmp_path / "no-such-inbox")})
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
