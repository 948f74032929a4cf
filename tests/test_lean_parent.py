"""The daemon's parent process stays lean: numpy, onnxruntime and the decoders live in its analysis workers only.

A real `genresort watch` sorts a real MP3; then the shared objects mapped into each process are read from
/proc/<pid>/maps. Each worker holds its own copy of the model and the networks; the parent, which watches, places,
tags and journals, needs none of it (and would carry it in memory for nothing, and import it at every start).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conftest import shared_clip
from daemon_harness import Daemon, Folders, analysis_workers, drop

#: The folders and names that tell a heavy library's shared objects, wherever its wheel or the system put them.
HEAVY_FOLDERS = frozenset(
    {"numpy", "numpy.libs", "onnxruntime", "av", "av.libs", "soxr", "_soundfile_data", "scipy", "scipy.libs"}
    | {"sklearn", "scikit_learn.libs", "librosa", "numba", "llvmlite"}
)
HEAVY_NAMES = ("libsndfile", "libonnxruntime", "libavcodec", "libsoxr", "libopenblas")


def mapped_libraries(pid: int) -> set[Path]:
    """The shared objects mapped into the process now."""
    mapped = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and ".so" in fields[5]:
            mapped.add(Path(fields[5].strip()))
    return mapped


def heavy(library: Path) -> bool:
    return bool(HEAVY_FOLDERS.intersection(library.parts)) or library.name.startswith(HEAVY_NAMES)


def test_the_parent_maps_no_numpy_onnxruntime_or_decoder_while_its_worker_does(
    tmp_path: Path, start_daemon: Callable[..., Daemon]
) -> None:
    folders = Folders(tmp_path)
    daemon = start_daemon(folders, stability_seconds=0.5, workers=1)
    daemon.wait_ready()
    song = drop(shared_clip("jazz"), folders.inbox / "song.mp3")
    outcome = daemon.wait_outcome(song)
    assert outcome["event"] in ("file.sorted", "file.unsure"), outcome

    in_parent = sorted(str(library) for library in mapped_libraries(daemon.pid) if heavy(library))
    assert in_parent == [], f"the daemon's parent process maps {in_parent}"
    workers = analysis_workers(daemon)
    assert len(workers) == 1, workers
    in_worker = mapped_libraries(workers[0])
    assert any("onnxruntime" in library.parts for library in in_worker), "the worker maps no onnxruntime"
    assert any(heavy(library) and "numpy" in library.parts for library in in_worker), "the worker maps no numpy"
    assert daemon.terminate() == 0
