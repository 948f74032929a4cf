"""Analysis in worker processes, so a decoder that hangs or crashes can be stopped without stopping us.

A thread cannot be killed; a process can. Each worker process loads the model once and answers one file at
a time; when a file takes longer than the time limit, the process is killed and a fresh one started.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import queue
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from threadpoolctl import threadpool_limits

from genresort.analysis import errors
from genresort.analysis.decision import Prediction, Thresholds
from genresort.analysis.errors import ModelError

_CONTEXT = multiprocessing.get_context("spawn")  # fork is unsafe in a threaded process
_STARTUP_SECONDS = 120.0


class AnalysisTimeout(Exception):
    """The file took longer than the per-file time limit; its worker was killed."""


class AnalysisCrashed(Exception):
    """The worker process died while analysing the file (e.g. a decoder crashed)."""


class AnalysisFailed(Exception):
    """The analysis raised an error that says nothing about the file being audio or not: a bug of ours, or a
    library's. Counted like a crash, and named as it is, never passed off as "not audio"."""


def opened_file_path(descriptor: int) -> Path:
    """A name the analysis workers can open for a file this process holds open, whatever its own name (one that is
    not UTF-8 cannot be sent to a worker) and wherever it is renamed meanwhile: /proc/<pid>/fd/<n> links to it."""
    return Path(f"/proc/{os.getpid()}/fd/{descriptor}")


@dataclass(frozen=True)
class ModelSummary:
    """What the parent needs to know of the model loaded in the workers."""

    model_id: str
    thresholds: Thresholds
    genres: tuple[str, ...]  # what the configuration's genre_names may rename


def _serve(model_dir: Path, connection: Connection) -> None:
    """The worker process: load the model, then answer paths with predictions or errors.

    It ignores SIGINT and SIGTERM, which reach the whole process group on Ctrl-C or `systemctl stop`: the
    daemon finishes the files in flight and then stops its workers itself.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from genresort.analysis.model import GenreModel  # numpy, onnxruntime and the decoders: here, not in the parent

    try:
        model = GenreModel.load(model_dir)
    except (ModelError, OSError, ValueError, KeyError) as error:
        connection.send(("model_error", str(error)))
        return
    threadpool_limits(limits=1)  # a second BLAS thread spins after each small product: 25% more CPU, no gain
    connection.send(("ready", ModelSummary(model.model_id, model.thresholds, tuple(model.genres))))
    while True:
        try:
            path = connection.recv()
        except EOFError:
            return
        try:
            connection.send(("prediction", model.analyse(path)))
        except errors.AudioError as error:
            connection.send(("audio_error", error))
        except OSError as error:
            connection.send(("os_error", (error.errno, error.strerror, str(error.filename))))
        except MemoryError:  # the machine is short of memory, the file is not at fault: retried later
            connection.send(("os_error", (errno.ENOMEM, os.strerror(errno.ENOMEM), str(path))))
        except Exception as error:  # an unexpected failure on one file must not end the worker
            connection.send(("failed", f"{type(error).__name__}: {error}"))


class AnalysisProcess:
    def __init__(self, model_dir: Path, timeout: float) -> None:
        self.model_dir = model_dir
        self.timeout = timeout
        self.summary = self._start()

    def _start(self) -> ModelSummary:
        self._connection, child_connection = _CONTEXT.Pipe()
        self._process = _CONTEXT.Process(
            target=_serve, args=(self.model_dir, child_connection), name="genresort-analysis", daemon=True
        )
        self._process.start()
        child_connection.close()
        if not self._connection.poll(_STARTUP_SECONDS):
            self.close()
            raise ModelError(f"the analysis worker did not load the model within {_STARTUP_SECONDS:.0f} s")
        try:
            kind, value = self._connection.recv()
        except EOFError as error:
            self.close()
            raise ModelError("the analysis worker died while loading the model") from error
        if kind == "model_error":
            self.close()
            raise ModelError(value)
        return value

    def analyse(self, path: Path) -> Prediction:
        # A worker that died while idle (the OOM killer's favourite) is replaced before it gets the file: its
        # death is not this file's fault, and a send to it would fail with a broken pipe.
        if not self._process.is_alive():
            self._restart()
        try:
            self._connection.send(path)
        except OSError:  # died between the check and the send: it never saw the path
            self._restart()
            self._connection.send(path)
        if not self._connection.poll(self.timeout):
            self._restart()
            raise AnalysisTimeout(f"analysis took longer than {self.timeout:.0f} s and was stopped")
        try:
            kind, value = self._connection.recv()
        except EOFError:
            self._restart()
            raise AnalysisCrashed("the analysis process died on this file") from None
        if kind == "audio_error":
            raise value
        if kind == "os_error":
            number, message, filename = value
            raise OSError(number, message, filename)
        if kind == "failed":
            raise AnalysisFailed(f"the analysis failed: {value}")
        return value

    def _restart(self) -> None:
        self.close()
        self.summary = self._start()

    def close(self) -> None:
        self._process.kill()
        self._process.join()
        self._connection.close()


class AnalyserPool:
    """A fixed number of analysis processes shared by the worker threads."""

    def __init__(self, model_dir: Path, workers: int, timeout: float) -> None:
        self._idle: queue.Queue[AnalysisProcess] = queue.Queue()
        self._all = []
        try:
            for _ in range(workers):
                process = AnalysisProcess(model_dir, timeout)
                self._all.append(process)
                self._idle.put(process)
        except BaseException:
            self.close()
            raise
        self.summary = self._all[0].summary

    def analyse(self, path: Path) -> Prediction:
        process = self._idle.get()
        try:
            return process.analyse(path)
        finally:
            self._idle.put(process)

    def close(self) -> None:
        for process in self._all:
            process.close()
