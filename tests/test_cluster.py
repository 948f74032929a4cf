"""`genresort sort --cluster`: the analysis on a real Dask cluster (a LocalCluster of two worker processes, started
once for the module), the placement, tags and journal here, as with the local pool."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import make_mp3, shared_clip
from daemon_harness import Folders
from genresort.library.journal import Journal
from genresort.library.tags import read_fields
from genresort.service.startup import JOURNAL_NAME

if importlib.util.find_spec("distributed") is None:  # the cluster extra, which `make test` installs
    if os.environ.get("CI"):
        pytest.fail("the cluster extra (distributed) is not installed; CI is set, so it is required", pytrace=False)
    pytest.skip("the cluster extra (distributed) is not installed", allow_module_level=True)

import distributed  # noqa: E402

from genresort.paths import CARD_JSON, DEFAULT_MODEL_DIR  # noqa: E402
from genresort.service.cluster import model_files, shared_path  # noqa: E402
from genresort.service.workers import opened_file_path  # noqa: E402

CLIPS = [("jazz", 0), ("jazz", 1), ("metal", 0), ("metal", 1), ("classical", 0), ("country", 0)]
NOT_UTF8_ALBUM = b"Caf\xe9 Album"
CORRUPT = b"ID3\x03\x00\x00\x00\x00\x00\x10" + bytes(4000)  # an ID3 header, then nothing an MP3 decoder can read


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.Client]:
    """Two Dask worker processes of one thread each, with nannies that restart a worker that dies."""
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as local,
        distributed.Client(local) as client,
    ):
        yield client


def sort(folders: Folders, *arguments: str, environment: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "genresort.cli", "sort", "--config", str(folders.config_file), *arguments],
        env=folders.env(confidence_threshold=0.5) | (environment or {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen) -> tuple[int, list[dict], str]:
    stdout, stderr = process.communicate(timeout=120)
    return process.returncode, [json.loads(line) for line in stdout.splitlines()], stderr


def fill_inbox(folders: Folders) -> list[Path]:
    """Six real clips (two of them an album in a folder whose name is not UTF-8) and a corrupt MP3; mtimes kept, so
    none waits for its stability."""
    album = Path(os.fsdecode(os.fsencode(folders.inbox / "Album") + b"/" + NOT_UTF8_ALBUM))
    album.mkdir(parents=True)
    dropped = []
    for number, (genre, index) in enumerate(CLIPS):
        folder = album if genre == "jazz" else folders.inbox
        dropped.append(Path(shutil.copy2(shared_clip(genre, index), folder / f"{number:02d} {genre}.mp3")))
    corrupt = folders.inbox / "corrupt.mp3"
    corrupt.write_bytes(CORRUPT)
    os.utime(corrupt, (time.time() - 60, time.time() - 60))
    return [*dropped, corrupt]


def placed(folders: Folders) -> dict[str, tuple[str, str]]:
    """Each file's name below a destination folder: (the destination folder, its folder below it)."""
    found = {}
    for root in folders.destinations:
        for path in root.rglob("*.mp3"):
            if ".genresort-staging" not in path.parts:
                assert path.name not in found, f"{path.name} placed twice"
                found[path.name] = (root.name, path.relative_to(root).parts[0])
    return found


def journal_settled(folders: Folders, files: list[Path]) -> None:
    """The journal holds one finished record per file, its destination there, and none left unfinished."""
    with Journal(folders.state / JOURNAL_NAME) as journal:
        assert journal.unfinished() == []
        records = [entry.record for entry in journal.history()]
    assert sorted(record.source for record in records) == sorted(files)
    assert all(record.destination.exists() for record in records), records


def test_the_cluster_places_every_file_once_tagged_with_the_local_pools_genres(
    tmp_path: Path, cluster: distributed.Client
) -> None:
    on_cluster, local = Folders(tmp_path / "cluster"), Folders(tmp_path / "local")
    files = fill_inbox(on_cluster)
    fill_inbox(local)
    code, lines, stderr = finished(sort(on_cluster, "--cluster", cluster.scheduler.address))
    assert code == 1, stderr  # the corrupt file is quarantined
    local_code, local_lines, local_stderr = finished(sort(local, environment={"GENRESORT_WORKERS": "2"}))
    assert local_code == 1, local_stderr

    ready = next(line for line in lines if line["event"] == "cluster.ready")
    assert ready["workers"] == 2 and ready["threads"] == 2
    assert placed(on_cluster) == placed(local) and len(placed(on_cluster)) == len(files)
    assert not any(path.is_file() for path in on_cluster.inbox.rglob("*"))
    journal_settled(on_cluster, files)
    decisions = {line["source"]: line for line in lines if line["event"].startswith("file.")}
    local_decisions = {
        line["source"].replace("/local/", "/cluster/"): line
        for line in local_lines
        if line["event"].startswith("file.")
    }
    compared = ("event", "decision", "reason", "album_genre", "album_votes")  # an album heard on the cluster too
    for source, line in decisions.items():
        assert [line.get(key) for key in compared] == [local_decisions[source].get(key) for key in compared]
        assert line.get("confidence") == pytest.approx(local_decisions[source].get("confidence"), abs=1e-6)
    assert any(line.get("album_votes") for line in decisions.values())
    quarantined = decisions[str(on_cluster.inbox / "corrupt.mp3")]
    assert quarantined["event"] == "file.quarantined" and quarantined["reason"]
    sorted_line = next(line for line in lines if line["event"] == "file.sorted")
    tags = read_fields(Path(sorted_line["destination"]))
    assert tags["GENRE"] == [sorted_line["genre"]] and tags["GENRESORT_DECISION"] == [sorted_line["genre"]]


def test_a_dask_worker_killed_mid_file_costs_a_retry_never_a_lost_or_doubled_file(
    tmp_path: Path, cluster: distributed.Client
) -> None:
    folders = Folders(tmp_path / "music")
    files = [
        Path(shutil.copy2(shared_clip(genre, index), folders.inbox / f"{genre}{index}.mp3"))
        for genre in ("blues", "disco", "reggae", "rock")
        for index in range(2)
    ]
    before = cluster.run(os.getpid)
    process = sort(folders, "--cluster", cluster.scheduler.address)
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:  # a worker with a file of ours under way
        busy = [worker for worker, keys in cluster.processing().items() if keys]
        if busy:
            victim = before[busy[0]]
            os.kill(victim, signal.SIGKILL)
        time.sleep(0.05)
    assert victim is not None, "no worker ever took a file"
    code, lines, stderr = finished(process)
    assert code == 0, stderr
    assert sorted(line["source"] for line in lines if line["event"] == "file.sorted") == sorted(map(str, files))
    assert len(placed(folders)) == len(files) and list(folders.inbox.iterdir()) == []
    journal_settled(folders, files)
    cluster.wait_for_workers(2, timeout=60)  # its nanny started a fresh one
    assert victim not in cluster.run(os.getpid).values()


def test_an_unreachable_cluster_refuses_the_start_and_moves_nothing(tmp_path: Path) -> None:
    folders = Folders(tmp_path / "music")
    dropped = make_mp3(folders.inbox / "song.mp3", seed=1)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    code, lines, _ = finished(
        sort(folders, "--cluster", address, environment={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})
    )
    assert code == 2
    (refused,) = [line for line in lines if line["event"] == "daemon.refused"]
    assert address in refused["reason"] and "cannot be reached" in refused["reason"]
    assert dropped.is_file() and not any(path.is_file() for path in folders.library.rglob("*"))


def test_a_file_held_open_is_sent_to_the_cluster_by_its_real_name(tmp_path: Path) -> None:
    """An album's tracks are heard through /proc/<pid>/fd/<n>, which means nothing on another machine."""
    track = Path(os.fsdecode(os.fsencode(tmp_path) + b"/Caf\xe9.mp3"))
    track.write_bytes(CORRUPT)
    with open(track, "rb") as stream:
        assert shared_path(opened_file_path(stream.fileno())) == track
    assert shared_path(track) == track


def test_a_worker_is_sent_the_models_files_but_not_its_training_set() -> None:
    files = model_files(DEFAULT_MODEL_DIR)
    card = json.loads(files[CARD_JSON])
    assert card["model_file"]["name"] in files and "musicnn/msd_musicnn.onnx" in files
    assert "musicnn/tags_msd.txt" in files and card["training_set"]["file"] not in files
    assert sum(map(len, files.values())) < 10 * 2**20


def test_a_file_over_the_time_limit_is_stopped_and_its_worker_restarted(
    tmp_path: Path, cluster: distributed.Client
) -> None:
    """A running task cannot be interrupted: its worker is restarted, so that a hung decoder holds no thread."""
    folders = Folders(tmp_path / "music")
    clip = Path(shutil.copy2(shared_clip("blues", 5), folders.inbox / "slow.mp3"))  # heard in more than 0.3 s
    before = set(cluster.run(os.getpid).values())
    code, lines, stderr = finished(
        sort(folders, "--cluster", cluster.scheduler.address, environment={"GENRESORT_FILE_TIMEOUT_SECONDS": "0.3"})
    )
    assert code == 1, stderr
    (retry,) = [line for line in lines if line["event"] == "file.retry"]
    assert "took longer than" in retry["reason"] and clip.is_file()
    cluster.wait_for_workers(2, timeout=60)
    assert len(before - set(cluster.run(os.getpid).values())) == 1  # the one that held it, and only that one


def test_the_daemon_says_it_ignores_the_cluster_setting(tmp_path: Path, start_daemon) -> None:
    daemon = start_daemon(Folders(tmp_path / "music"), cluster="tcp://127.0.0.1:8786")
    daemon.wait_ready()
    (ignored,) = daemon.logs("cluster.ignored")
    assert ignored["cluster"] == "tcp://127.0.0.1:8786" and "sort" in ignored["reason"]
    assert daemon.terminate() == 0
