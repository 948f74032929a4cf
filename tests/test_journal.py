"""The journal must survive SIGKILL at any point and refuse transitions that would lose or repeat work."""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from genresort.library.journal import (
    ExampleOrigin,
    Journal,
    JournalDamaged,
    JournalError,
    Step,
    move_aside,
)

SHA_A = "a" * 64
SHA_B = "b" * 64


@pytest.fixture
def journal(tmp_path: Path):
    with Journal(tmp_path / "state" / "journal.sqlite3") as opened:
        yield opened


def run_child(script: str, *arguments: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stored_step(journal: Journal, record_id: int) -> str:
    with sqlite3.connect(journal.path) as connection:
        return connection.execute("SELECT step FROM files WHERE id = ?", (record_id,)).fetchone()[0]


def test_claim_creates_a_claimed_record(journal: Journal) -> None:
    record = journal.claim(Path("/inbox/song.mp3"), SHA_A, 1234, 5678)

    assert record.step is Step.CLAIMED
    assert (record.source, record.sha256, record.size, record.mtime_ns) == (Path("/inbox/song.mp3"), SHA_A, 1234, 5678)
    assert (record.staged_path, record.destination, record.outcome, record.last_error) == (None, None, None, None)
    assert record.attempts == 0
    assert record.updated_at > 0


def test_claim_returns_the_unfinished_record_for_the_same_file(journal: Journal) -> None:
    first = journal.claim(Path("/inbox/song.mp3"), SHA_A, 1, 1)
    journal.advance(first.id, Step.STAGED, staged_path=Path("/library/.staging/1.mp3"))

    again = journal.claim(Path("/inbox/song.mp3"), SHA_A, 1, 1)

    assert again.id == first.id
    assert again.step is Step.STAGED


def test_claim_of_changed_content_is_a_new_record(journal: Journal) -> None:
    first = journal.claim(Path("/inbox/song.mp3"), SHA_A, 1, 1)
    second = journal.claim(Path("/inbox/song.mp3"), SHA_B, 2, 2)

    assert second.id != first.id


def test_claim_after_finishing_starts_a_new_record(journal: Journal) -> None:
    first = journal.claim(Path("/inbox/song.mp3"), SHA_A, 1, 1)
    journal.advance(first.id, Step.QUARANTINED, destination=Path("/quarantine/song.mp3"), outcome="unreadable")

    second = journal.claim(Path("/inbox/song.mp3"), SHA_A, 1, 1)

    assert second.id != first.id
    assert second.step is Step.CLAIMED


def test_the_full_path_is_recorded_and_kept_across_reopening(tmp_path: Path) -> None:
    database = tmp_path / "journal.sqlite3"
    with Journal(database) as journal:
        record = journal.claim(Path("/inbox/song.mp3"), SHA_A, 1, 1)
        journal.advance(record.id, Step.STAGED, staged_path=Path("/library/.staging/1.mp3"))
        journal.advance(record.id, Step.PLACING, destination=Path("/library/Jazz/song.mp3"), outcome="sorted")
        journal.advance(record.id, Step.PLACED)
        journal.advance(record.id, Step.DONE)

    with Journal(database) as reopened:
        assert reopened.unfinished() == []
        found = reopened.find_finished_by_sha256(SHA_A)
        assert found is not None
        assert found.id == record.id
        assert found.step is Step.DONE
        assert found.staged_path == Path("/library/.staging/1.mp3")
        assert found.destination == Path("/library/Jazz/song.mp3")
        assert found.outcome == "sorted"


def test_a_file_name_that_is_not_utf8_round_trips(journal: Journal) -> None:
    source = Path(os.fsdecode(b"/inbox/caf\xe9.mp3"))

    record = journal.claim(source, SHA_A, 1, 1)

    assert journal.unfinished()[0].source == source
    assert journal.claim(source, SHA_A, 1, 1).id == record.id


@pytest.mark.parametrize(
    ("path_to", "refused"),
    [
        ([], Step.PLACED),
        ([], Step.DONE),
        ([Step.STAGED], Step.DONE),
        ([Step.STAGED, Step.PLACING, Step.PLACED], Step.QUARANTINED),
        ([Step.STAGED, Step.PLACING, Step.PLACED], Step.STAGED),
        ([Step.STAGED, Step.PLACING, Step.PLACED, Step.DONE], Step.DONE),
        ([Step.STAGED, Step.PLACING, Step.PLACED, Step.DONE], Step.CLAIMED),
        ([Step.QUARANTINED], Step.STAGED),
        ([Step.DUPLICATE], Step.DONE),
    ],
)
def test_invalid_transitions_are_refused(journal: Journal, path_to: list[Step], refused: Step) -> None:
    record = journal.claim(Path("/inbox/song.mp3"), SHA_A, 1, 1)
    for step in path_to:
        journal.advance(record.id, step, staged_path=Path("/staged"), destination=Path("/library/Jazz/song.mp3"))

    with pytest.raises(ValueError, match="not allowed"):
        journal.advance(record.id, refused, staged_path=Path("/staged"), destination=Path("/elsewhere"))

    assert stored_step(journal, record.id) == (path_to[-1] if path_to else Step.CLAIMED)


def test_steps_that_name_a_file_require_it(journal: Journal) -> None:
    record = journal.claim(Path("/inbox/song.mp3"), SHA_A, 1, 1)

    with pytest.raises(ValueError, match="staged_path"):
        journal.advance(record.id, Step.STAGED)
    with pytest.raises(ValueError, match="destination"):
        journal.advance(record.id, Step.QUARANTINED)
    journal.advance(record.id, Step.STAGED, staged_path=Path("/staged"))
    with pytest.raises(ValueError, match="destination"):
        journal.advance(record.id, Step.PLACING)


def test_a_lost_staged_copy_can_be_staged_again(journal: Journal) -> None:
    record = journal.claim(Path("/inbox/song.mp3"), SHA_A, 1, 1)
    journal.advance(record.id, Step.STAGED, staged_path=Path("/staged/1"))
    journal.advance(record.id, Step.PLACING, destination=Path("/library/Jazz/song.mp3"))

    restaged = journal.advance(record.id, Step.STAGED, staged_path=Path("/staged/2"))

    assert restaged.staged_path == Path("/staged/2")
    assert restaged.destination == Path("/library/Jazz/song.mp3")


def test_unknown_record_is_a_key_error(journal: Journal) -> None:
    with pytest.raises(KeyError):
        journal.advance(999, Step.STAGED, staged_path=Path("/staged"))


def test_record_failure_counts_attempts(journal: Journal) -> None:
    record = journal.claim(Path("/inbox/song.mp3"), SHA_A, 1, 1)

    journal.record_failure(record.id, "disk full")
    failed = journal.record_failure(record.id, "still full")

    assert failed.attempts == 2
    assert failed.last_error == "still full"
    assert failed.step is Step.CLAIMED


def test_record_failure_on_a_finished_record_is_refused(journal: Journal) -> None:
    record = journal.claim(Path("/inbox/song.mp3"), SHA_A, 1, 1)
    journal.advance(record.id, Step.DUPLICATE, destination=Path("/library/Jazz/song.mp3"))

    with pytest.raises(ValueError):
        journal.record_failure(record.id, "late error")


def test_unfinished_lists_only_records_midway_oldest_first(journal: Journal) -> None:
    staged = journal.claim(Path("/inbox/1.mp3"), SHA_A, 1, 1)
    journal.advance(staged.id, Step.STAGED, staged_path=Path("/staged/1"))
    quarantined = journal.claim(Path("/inbox/2.mp3"), SHA_B, 1, 1)
    journal.advance(quarantined.id, Step.QUARANTINED, destination=Path("/quarantine/2.mp3"))
    claimed = journal.claim(Path("/inbox/3.mp3"), "c" * 64, 1, 1)

    assert [record.id for record in journal.unfinished()] == [staged.id, claimed.id]


def test_finished_lookups(journal: Journal) -> None:
    source = Path("/inbox/song.mp3")
    assert journal.find_finished_by_sha256(SHA_A) is None

    first = journal.claim(source, SHA_A, 1, 1)
    journal.advance(first.id, Step.STAGED, staged_path=Path("/staged"))
    journal.advance(first.id, Step.PLACING, destination=Path("/library/Jazz/song.mp3"), outcome="sorted")
    journal.advance(first.id, Step.PLACED)
    assert journal.find_finished_by_sha256(SHA_A) is None
    journal.advance(first.id, Step.DONE)
    redropped = journal.claim(Path("/inbox/copy.mp3"), SHA_A, 1, 1)
    journal.advance(redropped.id, Step.DUPLICATE, destination=Path("/library/Jazz/song.mp3"))

    found = journal.find_finished_by_sha256(SHA_A)
    assert found is not None and found.id == first.id
    assert journal.find_finished_by_sha256(SHA_B) is None


def test_wal_mode_is_on(tmp_path: Path) -> None:
    database = tmp_path / "journal.sqlite3"
    Journal(database).close()

    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_journal_from_another_schema_version_is_refused(tmp_path: Path) -> None:
    database = tmp_path / "journal.sqlite3"
    Journal(database).close()
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE schema_version SET version = 99")

    with pytest.raises(JournalError, match="schema version 99"):
        Journal(database)


def test_a_journal_of_the_first_version_is_opened_and_gains_the_arrivals_table(tmp_path: Path) -> None:
    """A journal written before arrivals were kept (version 1: the files table alone) keeps its records and is
    upgraded in place; its records simply have nothing kept for an undo."""
    database = tmp_path / "journal.sqlite3"
    with Journal(database) as journal:
        record = journal.claim(Path("/inbox/old.mp3"), "ab" * 32, 3, 4)
    with sqlite3.connect(database) as connection:
        connection.execute("DROP TABLE arrivals")
        connection.execute("UPDATE schema_version SET version = 1")

    with Journal(database) as journal:
        assert journal.get(record.id).source == Path("/inbox/old.mp3") and journal.arrival(record.id) is None
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT version FROM schema_version").fetchone() == (2,)
        assert connection.execute("SELECT count(*) FROM arrivals").fetchone() == (0,)


def test_a_journal_from_before_examples_is_opened_and_gains_the_examples_table(tmp_path: Path) -> None:
    """A journal of this version written before examples were kept opens with its records and an empty examples
    table, without a new version number: an older genresort, which never reads the table, still opens it."""
    database = tmp_path / "journal.sqlite3"
    with Journal(database) as journal:
        record = journal.claim(Path("/inbox/old.mp3"), SHA_A, 3, 4)
    with sqlite3.connect(database) as connection:
        connection.execute("DROP TABLE examples")

    with Journal(database) as journal:
        assert journal.get(record.id).source == Path("/inbox/old.mp3") and journal.examples() == []
        journal.keep_example(SHA_A, Path("/library/Jazz/old.mp3"), "Jazz", ExampleOrigin.ASSIGN)
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT version FROM schema_version").fetchone() == (2,)


def test_examples_are_kept_in_order_with_their_path_genre_and_origin(journal: Journal) -> None:
    odd_name = Path(os.fsdecode(b"/library/Synthwave/caf\xe9 \xff.mp3"))
    first = journal.keep_example(SHA_A, odd_name, "Synthwave", ExampleOrigin.REVIEW_PAGE)
    second = journal.keep_example(SHA_B, Path("/library/Jazz/b.mp3"), "Jazz", "moved")

    assert journal.examples() == [first, second]
    assert (first.sha256, first.path, first.genre, first.origin) == (SHA_A, odd_name, "Synthwave", "review-page")
    assert second.origin is ExampleOrigin.MOVED and first.noted_at <= second.noted_at


def test_a_later_example_of_the_same_content_replaces_the_earlier(tmp_path: Path) -> None:
    """The person changed their mind: the last genre given to a content is the one learnt, and it survives a
    reopening."""
    database = tmp_path / "journal.sqlite3"
    with Journal(database) as journal:
        journal.keep_example(SHA_A, Path("/library/Rock/a.mp3"), "Rock", ExampleOrigin.ASSIGN)
        journal.keep_example(SHA_B, Path("/library/Jazz/b.mp3"), "Jazz", ExampleOrigin.ASSIGN)
        journal.keep_example(SHA_A, Path("/library/Metal/a.mp3"), "Metal", ExampleOrigin.MOVED)

    with Journal(database) as journal:
        examples = journal.examples()
    assert [(example.sha256, example.genre, example.path.name) for example in examples] == [
        (SHA_B, "Jazz", "b.mp3"),
        (SHA_A, "Metal", "a.mp3"),
    ]


def test_an_example_of_an_unknown_origin_is_refused(journal: Journal) -> None:
    with pytest.raises(ValueError, match="'guess'"):
        journal.keep_example(SHA_A, Path("/library/Rock/a.mp3"), "Rock", "guess")
    assert journal.examples() == []


def test_an_advance_survives_sigkill_right_after_it_returns(tmp_path: Path) -> None:
    database = tmp_path / "journal.sqlite3"
    child = run_child(
        """
        import os, signal, sys
        from pathlib import Path
        from genresort.library.journal import Journal, Step
        journal = Journal(Path(sys.argv[1]))
        record = journal.claim(Path("/inbox/song.mp3"), "a" * 64, 1, 1)
        journal.advance(record.id, Step.STAGED, staged_path=Path("/library/.staging/1.mp3"))
        journal.advance(record.id, Step.PLACING, destination=Path("/library/Jazz/song.mp3"))
        journal.advance(record.id, Step.PLACED)
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        str(database),
    )
    _, errors = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, errors

    with Journal(database) as reopened:
        [record] = reopened.unfinished()
    assert record.step is Step.PLACED
    assert record.destination == Path("/library/Jazz/song.mp3")


def test_concurrent_claims_from_threads_give_one_record_per_file(journal: Journal) -> None:
    files = [(Path(f"/inbox/{number}.mp3"), f"{number:064x}") for number in range(20)]
    start = threading.Barrier(8)
    claimed_ids: list[set[int]] = [set() for _ in files]
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            for index, (source, sha256) in enumerate(files):
                claimed_ids[index].add(journal.claim(source, sha256, 1, 1).id)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert all(len(ids) == 1 for ids in claimed_ids)
    assert len(journal.unfinished()) == len(files)


def test_concurrent_advances_from_threads(journal: Journal) -> None:
    records = [journal.claim(Path(f"/inbox/{number}.mp3"), f"{number:064x}", 1, 1) for number in range(16)]

    def sort_one(record_id: int) -> None:
        journal.advance(record_id, Step.STAGED, staged_path=Path(f"/staged/{record_id}"))
        journal.advance(record_id, Step.PLACING, destination=Path(f"/library/Jazz/{record_id}.mp3"), outcome="sorted")
        journal.advance(record_id, Step.PLACED)
        journal.advance(record_id, Step.DONE)

    threads = [threading.Thread(target=sort_one, args=(record.id,)) for record in records]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert journal.unfinished() == []
    assert all(journal.find_finished_by_sha256(record.sha256) is not None for record in records)


# --- a damaged journal -----------------------------------------------------------------------------------------


def journal_with_files(path: Path, count: int = 300) -> Path:
    """A real journal of `count` claimed files (about 30 pages), closed, so its -wal is checkpointed into it."""
    with Journal(path) as journal:
        for number in range(count):
            journal.claim(Path(f"/inbox/{number:04d} a track with a long name.mp3"), f"{number:064x}", number, 1)
    return path


def page_size(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[16:18], "big")


def overwrite_middle_page(path: Path, page: bytes) -> None:
    size = page_size(path)
    with path.open("r+b") as file:
        file.seek(path.stat().st_size // size // 2 * size)
        file.write(page[:size].ljust(size, b"\0"))


def truncate_to_half(path: Path) -> None:
    size = page_size(path)
    os.truncate(path, path.stat().st_size // size // 2 * size)


DAMAGES: dict[str, Callable[[Path], None]] = {
    "junk bytes": lambda path: path.write_bytes(b"this is not a database\n" * 400),
    "a page of zeros in the middle": lambda path: overwrite_middle_page(path, b""),
    "a page of junk in the middle": lambda path: overwrite_middle_page(path, random.Random(6).randbytes(65536)),
    "truncated to half its pages": truncate_to_half,
}


def damaged_journal(folder: Path, damage: str) -> Path:
    path = journal_with_files(folder / "journal.sqlite3")
    DAMAGES[damage](path)
    return path


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_journal_is_refused_as_damaged_and_left_as_it_is(tmp_path: Path, damage: str) -> None:
    path = damaged_journal(tmp_path, damage)
    damaged = path.read_bytes()

    with pytest.raises(JournalDamaged, match=f"the journal {path} is damaged: "):
        Journal(path)

    assert path.read_bytes() == damaged


def test_move_aside_renames_the_journal_with_its_wal_and_shm_and_a_fresh_one_opens(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").write_bytes(f"damaged{suffix}".encode())

    aside = move_aside(path)

    assert re.fullmatch(r"journal\.sqlite3\.damaged-\d{8}T\d{6}Z", aside.name)
    assert sorted(entry.name for entry in tmp_path.iterdir()) == [aside.name, f"{aside.name}-shm", f"{aside.name}-wal"]
    assert [Path(f"{aside}{suffix}").read_bytes() for suffix in ("", "-wal", "-shm")] == [
        b"damaged",
        b"damaged-wal",
        b"damaged-shm",
    ]
    with Journal(path) as fresh:
        assert fresh.unfinished() == []


def test_move_aside_never_replaces_a_journal_moved_aside_before(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    asides = []
    for number in range(3):
        path.write_bytes(f"damaged {number}".encode())
        asides.append(move_aside(path))

    assert [aside.read_bytes() for aside in asides] == [b"damaged 0", b"damaged 1", b"damaged 2"]
