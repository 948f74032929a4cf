"""The one path for every file, and recovery from a crash at each step (the journal's states)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import structlog
from mutagen.id3 import ID3

from conftest import shared_clip, write_mp3
from genresort.config import Settings
from genresort.digest import sha256_file
from genresort.library.journal import Step
from genresort.library.placement import STAGING_DIR, place_file, stage_copy
from genresort.library.tags import audio_payload_sha256, read_genres
from genresort.service.pipeline import Outcome, Sorter, open_sorter


@pytest.fixture(scope="module")
def model_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("music")
    return Settings(
        inbox=root / "inbox",
        library=root / "library",
        quarantine=root / "quarantine",
        unsure=root / "unsure",
        state_dir=root / "state",
        confidence_threshold=0.0,
    )


@pytest.fixture(scope="module")
def sorter(model_settings: Settings) -> Sorter:
    model_settings.inbox.mkdir(parents=True, exist_ok=True)
    sorter = open_sorter(model_settings, structlog.get_logger())
    yield sorter
    sorter.close()


def drop(sorter: Sorter, source: Path, name: str | None = None) -> Path:
    target = sorter.settings.inbox / (name or source.name)
    shutil.copyfile(source, target)
    return target


def test_a_clip_is_tagged_placed_and_released(sorter: Sorter) -> None:
    original = shared_clip("metal", 3)
    path = drop(sorter, original, "a.mp3")
    outcome = sorter.sort_file(path)
    assert outcome.outcome == Outcome.SORTED
    assert outcome.destination == sorter.settings.library / outcome.prediction.genre / "a.mp3"
    assert not path.exists()
    assert audio_payload_sha256(outcome.destination) == audio_payload_sha256(original)
    tags = ID3(outcome.destination)
    assert tags.version[:2] == (2, 3) and str(tags["TCON"]) == outcome.prediction.genre
    assert not any((sorter.settings.library / STAGING_DIR).iterdir())


def test_the_same_content_again_is_a_duplicate_kept_with_its_reason(sorter: Sorter) -> None:
    first = sorter.sort_file(drop(sorter, shared_clip("jazz", 5), "first.mp3"))
    again = sorter.sort_file(drop(sorter, shared_clip("jazz", 5), "again.mp3"))
    assert again.outcome == Outcome.DUPLICATE
    assert again.destination.parent == sorter.settings.quarantine / "duplicates"
    reason = json.loads(Path(f"{again.destination}.reason.json").read_text())
    assert str(first.destination) in reason["error"] and reason["sha256"] == sha256_file(again.destination)
    assert first.destination.exists()


def test_a_file_that_is_not_audio_is_quarantined_with_a_reason(sorter: Sorter) -> None:
    path = sorter.settings.inbox / "notes.mp3"
    path.write_text("not music")
    outcome = sorter.sort_file(path)
    assert outcome.outcome == Outcome.QUARANTINED and not path.exists()
    reason = json.loads(Path(f"{outcome.destination}.reason.json").read_text())
    assert {"error", "sha256", "time", "attempts"} <= set(reason)
    assert outcome.destination.read_text() == "not music"


def test_a_wav_is_sorted_and_tagged_in_an_id3_chunk(sorter: Sorter, tmp_path: Path) -> None:
    import soundfile

    samples, rate = soundfile.read(shared_clip("classical", 2), dtype="float32")
    wav = tmp_path / "piece.wav"
    soundfile.write(wav, samples, rate)
    outcome = sorter.sort_file(drop(sorter, wav))
    assert outcome.outcome == Outcome.SORTED and outcome.reason is None
    assert outcome.destination.read_bytes()[:4] == b"RIFF"
    assert read_genres(outcome.destination) == [outcome.prediction.genre]


def test_an_unsure_file_gets_its_top_three_but_no_genre(sorter: Sorter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sorter, "threshold", 1.01)  # nothing is sure enough
    outcome = sorter.sort_file(drop(sorter, shared_clip("country", 4), "unsure.mp3"))
    assert outcome.outcome == Outcome.UNSURE and outcome.destination.parent == sorter.settings.unsure
    tags = ID3(outcome.destination)
    assert "TCON" not in tags
    assert tags["TXXX:GENRESORT_TOP3"].text[0].startswith(outcome.prediction.genre)


def crash_after(sorter: Sorter, source: Path, step: Step, linked: bool = True):
    """Leave the journal and the disk as a crash right after `step` would: the steps of `_place_sorted`."""
    status = source.stat()
    record = sorter.journal.claim(source, sha256_file(source), status.st_size, status.st_mtime_ns)
    folder = sorter.settings.library / "Rock"
    staged = stage_copy(source, sorter.settings.library)
    record = sorter.journal.advance(record.id, Step.STAGED, staged_path=staged)
    record = sorter.journal.advance(record.id, Step.PLACING, destination=folder, outcome=Outcome.SORTED.value)
    if step == Step.PLACING:
        return record, (place_file(staged, folder, source.name) if linked else None)
    final = place_file(staged, folder, source.name)
    return sorter.journal.advance(record.id, Step.PLACED, destination=final), final


@pytest.mark.parametrize("step", [Step.PLACING, Step.PLACED])
def test_recovery_finishes_a_file_that_was_placed(sorter: Sorter, step: Step) -> None:
    source = write_mp3(sorter.settings.inbox / f"crash-{step}.mp3", seconds=3.0, seed=100 + len(step))
    record, final = crash_after(sorter, source, step)
    sorter.recover()
    assert final.exists() and not source.exists()
    assert final.stat().st_nlink == 1  # the staged name is gone
    assert not sorter.journal.unfinished()
    assert sorter.journal.find_finished_by_sha256(record.sha256).destination == final


def test_recovery_rolls_back_a_file_that_was_not_yet_linked_and_it_is_sorted_once(sorter: Sorter) -> None:
    source = write_mp3(sorter.settings.inbox / "not-linked.mp3", seconds=3.0, seed=7)
    crash_after(sorter, source, Step.PLACING, linked=False)
    sorter.recover()
    assert source.exists() and not (sorter.settings.library / "Rock" / "not-linked.mp3").exists()
    assert not (sorter.settings.library / STAGING_DIR).exists()  # leftovers of interrupted steps are cleared
    outcome = sorter.sort_file(source)
    assert outcome.outcome == Outcome.SORTED and not source.exists()
    assert len(list(sorter.settings.library.rglob("not-linked*.mp3"))) == 1


def test_a_vanished_file_is_skipped(sorter: Sorter) -> None:
    assert sorter.sort_file(sorter.settings.inbox / "gone.mp3").outcome == Outcome.SKIPPED


def test_dry_run_plans_without_touching(sorter: Sorter) -> None:
    path = drop(sorter, shared_clip("reggae", 2), "plan.mp3")
    before = sorted(sorter.settings.library.rglob("*"))
    plan = sorter.plan(path)
    assert plan.outcome == Outcome.SORTED and plan.destination.parent == sorter.settings.library
    assert path.exists() and sorted(sorter.settings.library.rglob("*")) == before
