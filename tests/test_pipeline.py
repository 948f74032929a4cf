"""The one path for every file, each of its branches, and recovery from a crash at each step.

The first tests run the real model in a real analysis process. The branch tests give the Sorter a scripted
`analyse` callable instead (the pipeline takes any callable, so that timeouts, crashes, and a file changed during
its analysis can be produced on demand); everything else is real: files, folders, the journal, links, chattr.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mutagen.id3 import ID3, TIT2

from conftest import shared_clip, small_tmpfs, tagged_like_a_download, write_mp3
from genresort.analysis.audio import NotAudioError
from genresort.analysis.decision import Prediction, Thresholds
from genresort.digest import sha256_file
from genresort.library.journal import Journal, Step
from genresort.library.lock import MovesLock
from genresort.library.placement import STAGING_DIR, place_file, stage_copy, staging_folder
from genresort.library.tags import ExistingGenrePolicy, audio_payload_sha256, read_genres
from genresort.paths import DEFAULT_MODEL_DIR
from genresort.service.pipeline import Outcome, Sorter, SortPolicy
from genresort.service.recovery import recover
from genresort.service.workers import AnalyserPool, AnalysisFailed, AnalysisTimeout

INSTANCE = "test-instance"
JAZZ = Prediction((("Jazz", 0.9), ("Blues", 0.06), ("Rock", 0.04)), "test-model")


@pytest.fixture(scope="module")
def analysers() -> Iterator[AnalyserPool]:
    pool = AnalyserPool(DEFAULT_MODEL_DIR, 1, 120.0)
    yield pool
    pool.close()


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    for name in ("inbox", "library", "quarantine", "unsure", "not-music", "state"):
        (tmp_path / name).mkdir()
    return tmp_path


def policy(root: Path, **changes) -> SortPolicy:
    values = dict(
        library=root / "library",
        unsure=root / "unsure",
        not_music=root / "not-music",
        quarantine=root / "quarantine",
        existing_genre=ExistingGenrePolicy.OVERWRITE,
        thresholds=Thresholds(confidence=0.0),
        max_file_bytes=2**30,
        model_id="test-model",
        instance=INSTANCE,
    )
    return SortPolicy(**(values | changes))


class Recorder:
    """A structlog-like logger that keeps its lines, to check what the sorting log says."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, dict]] = []

    def __getattr__(self, level: str) -> Callable[..., None]:
        return lambda event, **fields: self.lines.append((event, fields))

    def events(self) -> list[str]:
        return [event for event, _ in self.lines]


@pytest.fixture
def journal(folders: Path) -> Iterator[Journal]:
    with Journal(folders / "state" / "journal.sqlite3") as journal:
        yield journal


def scripted_sorter(folders: Path, journal: Journal, analyse: Callable[[Path], Prediction], **changes) -> Sorter:
    return Sorter(policy(folders, **changes), analyse, journal, Recorder())


@pytest.fixture
def sorter(folders: Path, journal: Journal, analysers: AnalyserPool) -> Sorter:
    return Sorter(policy(folders, model_id=analysers.summary.model_id), analysers.analyse, journal, Recorder())


def restart(sorter: Sorter) -> None:
    """What a start does before the first file: recovery, with the state folder's moves lock free."""
    recover(sorter, MovesLock(sorter.policy.library.parent / "state"))


def drop(sorter: Sorter, source: Path, name: str | bytes | None = None) -> Path:
    inbox = sorter.policy.library.parent / "inbox"
    target = inbox / (os.fsdecode(name) if name is not None else source.name)
    shutil.copyfile(source, target)
    return target


def staged_files(root: Path) -> list[Path]:
    return [path for path in (root / STAGING_DIR).rglob("*") if path.is_file()]


@contextmanager
def immutable(path: Path) -> Iterator[Path]:
    """chattr +i: not even root may remove, rename or add entries; how we get a permission error as root."""
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


# -- with the real model ------------------------------------------------------------------------------------


def test_a_clip_is_tagged_placed_and_released(sorter: Sorter) -> None:
    original = shared_clip("metal", 3)
    path = drop(sorter, original, "a.mp3")
    outcome = sorter.sort_file(path)
    assert outcome.outcome == Outcome.SORTED
    assert outcome.destination == sorter.policy.library / outcome.decision.label / "a.mp3"
    assert not path.exists()
    assert audio_payload_sha256(outcome.destination) == audio_payload_sha256(original)
    tags = ID3(outcome.destination)
    assert tags.version[:2] == (2, 3) and str(tags["TCON"]) == outcome.decision.label
    assert staged_files(sorter.policy.library) == []
    assert sorter.journal.find_finished_by_sha256(sha256_file(original)) is not None  # hashed while staged


def test_the_same_content_again_is_a_duplicate_kept_with_its_reason(sorter: Sorter) -> None:
    first = sorter.sort_file(drop(sorter, shared_clip("jazz", 5), "first.mp3"))
    again = sorter.sort_file(drop(sorter, shared_clip("jazz", 5), "again.mp3"))
    assert again.outcome == Outcome.DUPLICATE
    assert again.destination.parent == sorter.policy.quarantine / "duplicates"
    reason = json.loads(Path(f"{again.destination}.reason.json").read_text())
    assert str(first.destination) in reason["error"] and reason["sha256"] == sha256_file(again.destination)
    assert first.destination.exists()


def test_a_file_that_is_not_audio_is_quarantined_with_a_reason(sorter: Sorter) -> None:
    path = sorter.policy.library.parent / "inbox" / "notes.mp3"
    path.write_text("not music")
    outcome = sorter.sort_file(path)
    assert outcome.outcome == Outcome.QUARANTINED and not path.exists()
    reason = json.loads(Path(f"{outcome.destination}.reason.json").read_text())
    assert {"error", "sha256", "time", "attempts"} <= set(reason)
    assert outcome.destination.read_text() == "not music"
    assert staged_files(sorter.policy.library) == [] and staged_files(sorter.policy.quarantine) == []


def test_a_wav_is_sorted_and_tagged_in_an_id3_chunk(sorter: Sorter, tmp_path: Path) -> None:
    import soundfile

    samples, rate = soundfile.read(shared_clip("classical", 2), dtype="float32")
    wav = tmp_path / "piece.wav"
    soundfile.write(wav, samples, rate)
    outcome = sorter.sort_file(drop(sorter, wav))
    assert outcome.outcome == Outcome.SORTED and outcome.reason is None
    assert outcome.destination.read_bytes()[:4] == b"RIFF"
    assert read_genres(outcome.destination) == [outcome.decision.label]


def test_an_unsure_file_gets_its_top_three_but_no_genre(folders: Path, journal: Journal, analysers) -> None:
    nothing_is_sure = Thresholds(confidence=1.01)
    sorter = Sorter(policy(folders, thresholds=nothing_is_sure), analysers.analyse, journal, Recorder())
    outcome = sorter.sort_file(drop(sorter, shared_clip("country", 4), "unsure.mp3"))
    assert outcome.outcome == Outcome.UNSURE and outcome.destination.parent == sorter.policy.unsure
    tags = ID3(outcome.destination)
    assert "TCON" not in tags
    assert tags["TXXX:GENRESORT_TOP3"].text[0].startswith(outcome.decision.prediction.genre)


def test_dry_run_plans_without_touching(sorter: Sorter) -> None:
    path = drop(sorter, shared_clip("reggae", 2), "plan.mp3")
    before = sorted(sorter.policy.library.parent.rglob("*"))
    plan = sorter.plan(path)
    assert plan.outcome == Outcome.SORTED and plan.destination.parent == sorter.policy.library
    assert sorted(sorter.policy.library.parent.rglob("*")) == before


def test_a_sound_that_is_not_music_goes_to_not_music_tagged_with_its_evidence(folders: Path, journal: Journal) -> None:
    path = write_mp3(folders / "inbox" / "memo.mp3", seconds=2.0, seed=16)
    hum = Prediction(JAZZ.ranking, "test-model", music_probability=0.02)
    sorter = scripted_sorter(folders, journal, lambda staged: hum)
    outcome = sorter.sort_file(path)
    assert outcome.outcome == Outcome.NOT_MUSIC and outcome.destination == folders / "not-music" / "memo.mp3"
    tags = ID3(outcome.destination)
    assert "TCON" not in tags  # no genre a player would show
    assert tags["TXXX:GENRESORT_DECISION"].text == ["not-music"]
    assert tags["TXXX:GENRESORT_MUSIC_PROBABILITY"].text == ["0.020"]
    event, fields = sorter.log.lines[-1]
    assert event == "file.not_music" and fields["decision"] == "not-music" and fields["music_probability"] == 0.02
    assert not path.exists() and staged_files(folders / "not-music") == []


def test_a_sorted_file_says_its_decision_in_its_tags(folders: Path, journal: Journal) -> None:
    path = write_mp3(folders / "inbox" / "song.mp3", seconds=2.0, seed=17)
    outcome = scripted_sorter(folders, journal, lambda staged: JAZZ).sort_file(path)
    assert ID3(outcome.destination)["TXXX:GENRESORT_DECISION"].text == ["Jazz"]


# -- odd names and odd files ---------------------------------------------------------------------------------


def test_a_name_that_is_not_utf8_is_sorted_once_and_logged_readably(folders: Path, journal: Journal) -> None:
    sorter = scripted_sorter(folders, journal, lambda path: JAZZ)
    path = folders / "inbox" / os.fsdecode(b"\xff\xfe.mp3")
    write_mp3(folders / "plain.mp3", seconds=2.0).rename(path)  # libsndfile itself cannot open such a name
    outcome = sorter.sort_file(path)
    assert outcome.outcome == Outcome.SORTED and not path.exists()
    assert os.listdir(os.fsencode(folders / "library" / "Jazz")) == [b"\xff\xfe.mp3"]
    event, fields = sorter.log.lines[-1]
    assert event == "file.sorted" and fields["source"].endswith("\\xff\\xfe.mp3")
    json.dumps(fields, ensure_ascii=False).encode("utf-8")  # writable as UTF-8


def test_a_name_that_is_not_utf8_is_quarantined_with_a_readable_reason(folders: Path, journal: Journal) -> None:
    def not_audio(path: Path) -> Prediction:
        raise NotAudioError(path, "not a readable audio file")

    sorter = scripted_sorter(folders, journal, not_audio)
    path = folders / "inbox" / os.fsdecode(b"bad\xe9.mp3")
    path.write_bytes(b"junk" * 100)
    outcome = sorter.sort_file(path)
    assert outcome.outcome == Outcome.QUARANTINED
    reason = json.loads(Path(f"{outcome.destination}.reason.json").read_text(encoding="utf-8"))
    assert reason["source"].endswith("bad\\xe9.mp3")


def test_a_symlink_is_never_followed_nor_removed(folders: Path, journal: Journal) -> None:
    secret = folders / "secret.txt"
    secret.write_text("root:x:0:0")
    link = folders / "inbox" / "song.mp3"
    link.symlink_to(secret)
    sorter = scripted_sorter(folders, journal, lambda path: pytest.fail("a link must not be analysed"))
    outcome = sorter.sort_file(link)
    assert outcome.outcome == Outcome.SKIPPED and "symbolic link" in outcome.reason
    assert link.is_symlink() and secret.read_text() == "root:x:0:0"
    assert [path for path in folders.rglob("*") if path.is_file() and not path.is_symlink()] == [secret] + [
        folders / "state" / name for name in os.listdir(folders / "state")
    ]


def test_a_fifo_does_not_block_the_worker(folders: Path, journal: Journal) -> None:
    fifo = folders / "inbox" / "song.mp3"
    os.mkfifo(fifo)
    sorter = scripted_sorter(folders, journal, lambda path: pytest.fail("a FIFO must not be analysed"))
    started = time.monotonic()
    outcome = sorter.sort_file(fifo)
    assert time.monotonic() - started < 5
    assert outcome.outcome == Outcome.SKIPPED and "not a regular file" in outcome.reason
    assert fifo.exists()


def test_a_vanished_file_is_skipped_quietly(folders: Path, journal: Journal) -> None:
    sorter = scripted_sorter(folders, journal, lambda path: JAZZ)
    assert sorter.sort_file(folders / "inbox" / "gone.mp3").outcome == Outcome.SKIPPED
    assert sorter.log.lines == []


def test_a_huge_file_is_moved_aside_by_a_link_never_read_nor_copied(folders: Path, journal: Journal) -> None:
    big = folders / "inbox" / "big.mp3"
    with open(big, "wb") as sparse:
        sparse.truncate(5 * 2**30)  # 5 GB, no block written
    sorter = scripted_sorter(folders, journal, lambda path: pytest.fail("not to be read"), max_file_bytes=2**20)
    inode = big.stat().st_ino
    started = time.monotonic()
    outcome = sorter.sort_file(big)
    assert time.monotonic() - started < 2
    assert outcome.outcome == Outcome.QUARANTINED and "above the limit" in outcome.reason
    assert not big.exists() and outcome.destination.stat().st_ino == inode  # the same file, renamed
    assert outcome.destination.stat().st_blocks == 0
    assert json.loads(Path(f"{outcome.destination}.reason.json").read_text())["error"] == outcome.reason


def test_dry_run_says_duplicate_and_oversize_not_sorted(folders: Path, journal: Journal) -> None:
    sorter = scripted_sorter(folders, journal, lambda path: JAZZ)
    first = write_mp3(folders / "inbox" / "first.mp3", seconds=2.0, seed=3)
    copy = folders / "copy.mp3"
    shutil.copyfile(first, copy)
    assert sorter.sort_file(first).outcome == Outcome.SORTED
    again = folders / "inbox" / "again.mp3"
    shutil.copyfile(copy, again)
    assert sorter.plan(again).outcome == Outcome.DUPLICATE
    small = scripted_sorter(folders, journal, lambda path: JAZZ, max_file_bytes=100)
    assert small.plan(again).outcome == Outcome.QUARANTINED
    assert again.exists()


def test_unsure_and_quarantine_on_other_disks_get_a_copy_made_there(folders: Path, journal: Journal) -> None:
    """A hard link cannot cross file systems: the staged copy is copied onto the other disk, then linked."""
    unsure_song = write_mp3(folders / "inbox" / "doubt.mp3", seconds=2.0, seed=15)
    junk = folders / "inbox" / "junk.mp3"
    junk.write_bytes(b"not audio at all" * 64)

    def analyse(staged: Path) -> Prediction:
        if staged.stat().st_size < 2000:
            raise NotAudioError(staged, "not a readable audio file")
        return JAZZ

    with small_tmpfs(folders / "unsure", "16m"), small_tmpfs(folders / "quarantine", "16m"):
        sorter = scripted_sorter(folders, journal, analyse, thresholds=Thresholds(confidence=0.95))
        doubt = sorter.sort_file(unsure_song)
        quarantined = sorter.sort_file(junk)
        assert doubt.outcome == Outcome.UNSURE and doubt.destination.parent == folders / "unsure"
        assert quarantined.outcome == Outcome.QUARANTINED and quarantined.destination.parent == folders / "quarantine"
        assert quarantined.destination.read_bytes() == b"not audio at all" * 64
        for root in ("library", "unsure", "quarantine"):
            assert staged_files(folders / root) == []
        assert not unsure_song.exists() and not junk.exists()


# -- the file changes while it is sorted ---------------------------------------------------------------------


def test_a_file_appended_to_during_analysis_is_not_placed_until_it_settles(folders: Path, journal: Journal) -> None:
    path = write_mp3(folders / "inbox" / "growing.mp3", seconds=2.0, seed=4)
    tail = write_mp3(folders / "tail.mp3", seconds=1.0, seed=5).read_bytes()

    def analyse_while_writer_appends(staged: Path) -> Prediction:
        with open(path, "ab") as writer:
            writer.write(tail)
        return JAZZ

    sorter = scripted_sorter(folders, journal, analyse_while_writer_appends)
    outcome = sorter.sort_file(path)
    assert outcome.outcome == Outcome.CHANGED and "changed" in outcome.reason
    assert not (folders / "library" / "Jazz").exists() and staged_files(folders / "library") == []
    whole = path.read_bytes()
    settled = scripted_sorter(folders, journal, lambda staged: JAZZ).sort_file(path)
    assert settled.outcome == Outcome.SORTED and not path.exists()
    assert os.listdir(folders / "library" / "Jazz") == ["growing.mp3"]
    assert audio_payload_sha256(settled.destination) == audio_payload_sha256_of(whole, folders)


def audio_payload_sha256_of(content: bytes, folders: Path) -> str:
    probe = folders / "probe.mp3"
    probe.write_bytes(content)
    return audio_payload_sha256(probe)


def test_a_file_replaced_during_analysis_is_placed_once_with_the_new_content(folders: Path, journal: Journal) -> None:
    path = write_mp3(folders / "inbox" / "swapped.mp3", seconds=2.0, seed=6)
    other = write_mp3(folders / "other.mp3", seconds=2.0, seed=7)
    other_audio = audio_payload_sha256(other)

    def analyse_while_replaced(staged: Path) -> Prediction:
        os.replace(other, path)
        return JAZZ

    assert scripted_sorter(folders, journal, analyse_while_replaced).sort_file(path).outcome == Outcome.CHANGED
    settled = scripted_sorter(folders, journal, lambda staged: JAZZ).sort_file(path)
    assert settled.outcome == Outcome.SORTED
    assert [audio_payload_sha256(placed) for placed in (folders / "library" / "Jazz").iterdir()] == [other_audio]


# -- failures that are not the file's fault ------------------------------------------------------------------


def test_a_transient_error_does_not_count_toward_the_analysis_attempts(folders: Path, journal: Journal) -> None:
    path = write_mp3(folders / "inbox" / "song.mp3", seconds=2.0, seed=8)
    script = iter(
        [OSError(28, "No space left on device"), AnalysisTimeout("took too long"), AnalysisTimeout("took too long")]
    )

    def analyse(staged: Path) -> Prediction:
        raise next(script)

    sorter = scripted_sorter(folders, journal, analyse)
    assert sorter.sort_file(path).outcome == Outcome.RETRY  # disk full
    assert sorter.sort_file(path).outcome == Outcome.RETRY  # first timeout: not yet given up
    final = sorter.sort_file(path)  # second timeout
    assert final.outcome == Outcome.QUARANTINED and "2 attempts" in final.reason
    assert staged_files(folders / "library") == [] and staged_files(folders / "quarantine") == []


def test_a_bug_in_the_analysis_is_named_as_such_never_called_not_audio(folders: Path, journal: Journal) -> None:
    path = write_mp3(folders / "inbox" / "song.mp3", seconds=2.0, seed=9)

    def analyse(staged: Path) -> Prediction:
        raise AnalysisFailed("the analysis failed: ZeroDivisionError: division by zero")

    sorter = scripted_sorter(folders, journal, analyse)
    assert sorter.sort_file(path).outcome == Outcome.RETRY
    final = sorter.sort_file(path)
    assert final.outcome == Outcome.QUARANTINED and "ZeroDivisionError" in final.reason
    assert "not a readable audio file" not in final.reason


def test_an_unexpected_error_in_the_worker_is_named_and_the_worker_lives_on(analysers: AnalyserPool) -> None:
    with pytest.raises(AnalysisFailed, match="ValueError"):  # open() refuses a NUL in a name: not about audio
        analysers.analyse(Path("bad\0name.mp3"))
    assert analysers.analyse(shared_clip("blues", 1)).genre


def test_a_file_missing_mid_way_is_retried_and_logged_never_taken_for_gone(folders: Path, journal: Journal) -> None:
    path = write_mp3(folders / "inbox" / "song.mp3", seconds=2.0, seed=14)

    def analyse_then_lose_the_staged_copy(staged: Path) -> Prediction:
        staged.unlink()  # as a person cleaning hidden folders might
        return JAZZ

    sorter = scripted_sorter(folders, journal, analyse_then_lose_the_staged_copy)
    outcome = sorter.sort_file(path)
    assert outcome.outcome == Outcome.RETRY and "FileNotFoundError" in outcome.reason
    assert sorter.log.events() == ["file.retry"] and path.exists()
    assert scripted_sorter(folders, journal, lambda staged: JAZZ).sort_file(path).outcome == Outcome.SORTED


def test_an_unwritable_genre_folder_leaves_no_staged_copies(folders: Path, journal: Journal) -> None:
    path = write_mp3(folders / "inbox" / "song.mp3", seconds=2.0, seed=10)
    jazz = folders / "library" / "Jazz"
    jazz.mkdir()
    sorter = scripted_sorter(folders, journal, lambda staged: JAZZ)
    with immutable(jazz):
        for _ in range(3):
            outcome = sorter.sort_file(path)
            assert outcome.outcome == Outcome.RETRY and "Operation not permitted" in outcome.reason
            assert staged_files(folders / "library") == []
    assert path.exists()
    assert sorter.sort_file(path).outcome == Outcome.SORTED


def test_an_original_that_cannot_be_removed_stays_and_is_not_sorted_again(folders: Path, journal: Journal) -> None:
    folder = folders / "inbox" / "theirs"
    path = write_mp3(folder / "song.mp3", seconds=2.0, seed=11)
    sorter = scripted_sorter(folders, journal, lambda staged: JAZZ)
    with immutable(folder):
        outcome = sorter.sort_file(path)
        assert outcome.outcome == Outcome.SORTED and "could not be removed" in outcome.reason
        assert path.exists() and (folders / "library" / "Jazz" / "song.mp3").exists()
        again = sorter.sort_file(path)
        assert again.outcome == Outcome.SKIPPED and again.reason is None
        restart(sorter)  # the next start
    assert journal.unfinished() == []
    assert os.listdir(folders / "library" / "Jazz") == ["song.mp3"]


# -- after a crash -------------------------------------------------------------------------------------------


def crash_after(sorter: Sorter, source: Path, step: Step, linked: bool = True):
    """Leave the journal and the disk as a crash right after `step` would."""
    status = source.stat()
    with open(source, "rb") as stream:
        staged = stage_copy(stream, staging_folder(sorter.policy.library, INSTANCE), ".mp3")
    record = sorter.journal.claim(source, staged.sha256, status.st_size, status.st_mtime_ns)
    folder = sorter.policy.library / "Rock"
    record = sorter.journal.advance(record.id, Step.STAGED, staged_path=staged.path)
    record = sorter.journal.advance(record.id, Step.PLACING, destination=folder, outcome=Outcome.SORTED.value)
    if step == Step.PLACING:
        return record, (place_file(staged.path, folder, source.name) if linked else None)
    final = place_file(staged.path, folder, source.name)
    return sorter.journal.advance(record.id, Step.PLACED, destination=final), final


@pytest.mark.parametrize("step", [Step.PLACING, Step.PLACED])
def test_recovery_finishes_a_file_that_was_placed(folders: Path, journal: Journal, step: Step) -> None:
    sorter = scripted_sorter(folders, journal, lambda staged: JAZZ)
    source = write_mp3(folders / "inbox" / f"crash-{step}.mp3", seconds=2.0, seed=100 + len(step))
    record, final = crash_after(sorter, source, step)
    restart(sorter)
    assert final.exists() and not source.exists()
    assert final.stat().st_nlink == 1  # the staged name is gone
    assert not journal.unfinished()
    assert journal.find_finished_by_sha256(record.sha256).destination == final


def test_recovery_rolls_back_a_file_that_was_not_yet_linked_and_it_is_sorted_once(folders: Path, journal) -> None:
    sorter = scripted_sorter(folders, journal, lambda staged: JAZZ)
    source = write_mp3(folders / "inbox" / "not-linked.mp3", seconds=2.0, seed=7)
    crash_after(sorter, source, Step.PLACING, linked=False)
    restart(sorter)
    assert source.exists() and not (folders / "library" / "Rock" / "not-linked.mp3").exists()
    assert staged_files(folders / "library") == []  # leftovers of interrupted steps are cleared
    outcome = sorter.sort_file(source)
    assert outcome.outcome == Outcome.SORTED and not source.exists()
    assert len(list((folders / "library").rglob("not-linked*.mp3"))) == 1


def test_one_record_that_cannot_be_settled_does_not_stop_the_others(folders: Path, journal: Journal) -> None:
    sorter = scripted_sorter(folders, journal, lambda staged: JAZZ)
    broken = write_mp3(folders / "inbox" / "broken.mp3", seconds=2.0, seed=12)
    locked = folders / "locked"
    staged = locked / ".staged.mp3"
    write_mp3(staged, seconds=1.0, seed=12)
    record = journal.claim(broken, sha256_file(broken), 1, 1)
    journal.advance(record.id, Step.STAGED, staged_path=staged)
    journal.advance(record.id, Step.PLACING, destination=folders / "library" / "Rock", outcome="sorted")
    fine = write_mp3(folders / "inbox" / "fine.mp3", seconds=2.0, seed=13)
    _, fine_final = crash_after(sorter, fine, Step.PLACED)
    with immutable(locked):  # its staged copy cannot be removed
        restart(sorter)
    assert "recovery.failed" in sorter.log.events()
    assert not fine.exists() and fine_final.exists()
    assert [unfinished.id for unfinished in journal.unfinished()] == [record.id]
    assert broken.exists() and staged.exists()
    restart(sorter)  # the next start, with the cause gone: rolled back, the file is sorted again from the inbox
    assert not staged.exists() and broken.exists()


def test_recovery_leaves_another_instances_staging_alone(folders: Path, journal: Journal) -> None:
    other = staging_folder(folders / "library", "another-instance")
    other.mkdir(parents=True)
    (other / ".in-flight.mp3").write_bytes(b"someone else's copy")
    mine = staging_folder(folders / "library", INSTANCE)
    mine.mkdir(parents=True)
    (mine / ".leftover.mp3").write_bytes(b"ours, from a crash")
    restart(scripted_sorter(folders, journal, lambda staged: JAZZ))
    assert (other / ".in-flight.mp3").exists() and not (mine / ".leftover.mp3").exists()


# -- what arrived, kept for an undo ---------------------------------------------------------------------------


def test_a_sorted_file_can_be_given_back_byte_for_byte_from_what_the_journal_kept(
    folders: Path, journal: Journal, tmp_path: Path
) -> None:
    import io

    from genresort.library.arrival import read_written, rebuild

    original = tagged_like_a_download(tmp_path / "original.mp3", cover_bytes=2**20)
    sorter = scripted_sorter(folders, journal, lambda path: JAZZ)
    outcome = sorter.sort_file(drop(sorter, original))
    assert outcome.outcome == Outcome.SORTED
    placed = outcome.destination
    assert placed.read_bytes() != original.read_bytes()  # retagged: ID3v2.3 with our frames
    record = journal.find_finished_by_sha256(sha256_file(original))
    arrival, written = journal.arrival(record.id)
    assert written == read_written(placed)
    given_back = io.BytesIO()
    rebuild(placed, arrival, given_back)
    assert given_back.getvalue() == original.read_bytes()

    tags = ID3(placed)  # a person edits a tag: what genresort wrote is no longer there
    tags.add(TIT2(encoding=3, text=["Night Train (live)"]))
    tags.save(placed, v2_version=3)
    assert read_written(placed).tags_sha256 != written.tags_sha256


def test_a_file_whose_container_tagging_rewrites_keeps_nothing_to_rebuild(folders: Path, journal: Journal) -> None:
    """A WAV's tag writer may rewrite its chunks: its original cannot be rebuilt around the audio, so nothing is
    kept (an undo will say why) and it is sorted as before."""
    import soundfile

    wav = folders / "memo.wav"
    soundfile.write(wav, [[0.1, -0.1]] * 44100, 44100)
    sorter = scripted_sorter(folders, journal, lambda path: JAZZ)
    outcome = sorter.sort_file(drop(sorter, wav))
    assert outcome.outcome == Outcome.SORTED
    assert journal.arrival(journal.find_finished_by_sha256(outcome.sha256).id) is None


def test_a_moves_lock_that_cannot_be_taken_leaves_the_moves_and_settles_the_rest(
    folders: Path, journal: Journal
) -> None:
    """A damaged state folder (the lock's name taken by a folder) must not stop a start."""
    (folders / "state" / "moves.lock").mkdir()
    sorter = scripted_sorter(folders, journal, lambda staged: JAZZ)
    source = write_mp3(folders / "inbox" / "placed-before-the-crash.mp3", seconds=2.0, seed=31)
    _, final = crash_after(sorter, source, Step.PLACED)
    restart(sorter)
    assert final.exists() and not source.exists() and journal.unfinished() == []
    (failed,) = [fields for event, fields in sorter.log.lines if event == "recovery.failed"]
    assert failed["step"] == "moving" and "moves.lock" in failed["error"]
