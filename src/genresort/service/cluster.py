"""The analysis on a Dask distributed cluster (`genresort sort --cluster`): a back catalogue too big for one machine.

Only the hearing leaves this process. Each Dask worker loads the model once (ModelPlugin) and analyses files it
reads from storage it shares with us; staging, tagging, placement and the journal stay here, so a crash is settled
as it always is. Nothing but a Prediction comes back, so a worker that dies mid-file costs its file a re-run on
another worker (the scheduler's doing), never a lost or doubled file; after distributed's `allowed-failures` deaths
it is AnalysisCrashed, which the pipeline counts and retries like a local worker's crash.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from concurrent.futures import CancelledError
from importlib import metadata
from pathlib import Path

import distributed
from threadpoolctl import threadpool_limits

from genresort.analysis import audio
from genresort.analysis.decision import Prediction
from genresort.analysis.model import NETWORK_FOLDER, GenreModel
from genresort.analysis.model_file import ModelError
from genresort.config import ConfigError
from genresort.paths import CARD_JSON
from genresort.service.workers import (
    AnalysisCrashed,
    AnalysisFailed,
    AnalysisTimeout,
    ModelSummary,
    opened_file_path,
)

#: How long a start waits for the cluster's first worker (a scheduler and its workers started together).
WORKERS_WAIT_SECONDS = 60.0
#: Files in flight at most, however large the cluster: beyond this, the one process that stages, tags and places
#: them is the bottleneck, and more threads only hold more staged copies.
MOST_IN_FLIGHT = 256


def genresort_version() -> str:
    """As `genresort --version` says it: a checkout run from its src/ without being installed is "(not installed)"."""
    try:
        return metadata.version("genresort")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def model_files(folder: Path) -> dict[str, bytes]:
    """The files a worker needs to load the model in `folder`, by their path relative to it: the card, every file it
    names but the training set (16 MB that only `retrain` reads), and the networks' folder (their tags' names)."""
    try:
        card = json.loads((folder / CARD_JSON).read_text())
        names = {CARD_JSON, card["model_file"]["name"], *files_named(card)}
        names.discard(card.get("training_set", {}).get("file"))
        names |= {f"{NETWORK_FOLDER}/{path.name}" for path in (folder / NETWORK_FOLDER).iterdir() if path.is_file()}
        outside = sorted(name for name in names if Path(name).is_absolute() or ".." in Path(name).parts)
        if outside:
            raise ModelError(f"the model card in {folder} names files outside its folder: {', '.join(outside)}")
        return {name: (folder / name).read_bytes() for name in sorted(names)}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelError(f"cannot read the model in {folder} to send it to the cluster: {error}") from error


def files_named(card: object) -> Iterable[str]:
    """Every `"file"` entry anywhere in a model card."""
    if isinstance(card, dict):
        for key, value in card.items():
            if key == "file" and isinstance(value, str):
                yield value
            else:
                yield from files_named(value)
    elif isinstance(card, list):
        for value in card:
            yield from files_named(value)


def write_model_files(folder: Path, files: dict[str, bytes]) -> None:
    """The model's files in `folder`, which only this user may write (GenreModel.load refuses anything else)."""
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(descriptor, "wb") as stream:
            stream.write(content)


class ModelPlugin(distributed.WorkerPlugin):
    """Loads the model once on each Dask worker, workers that join later included. It carries the model's files
    (about 7 MB), so a worker needs the same genresort installed, not the model at the same path; a worker running
    another genresort version refuses it, since it could hear the same files differently."""

    def __init__(self, files: dict[str, bytes], version: str) -> None:
        self.files = files
        self.version = version
        self.folder: Path | None = None
        self.model: GenreModel | None = None

    def setup(self, worker: distributed.Worker) -> None:
        if genresort_version() != self.version:
            raise ModelError(
                f"the Dask worker {worker.address} runs genresort {genresort_version()}, this one {self.version}: "
                "install the same version on every worker"
            )
        self.folder = Path(tempfile.mkdtemp(prefix="genresort-model-"))
        write_model_files(self.folder, self.files)
        self.model = GenreModel.load(self.folder)
        threadpool_limits(limits=1)  # as in a local worker: a second BLAS thread only spins

    def teardown(self, worker: distributed.Worker) -> None:
        self.model = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def summary(self) -> ModelSummary:
        return ModelSummary(self.model.model_id, self.model.thresholds, tuple(self.model.genres))


def analyse_on_worker(plugin_name: str, path: Path) -> Prediction:
    """The task a Dask worker runs for one file, with the model its plugin loaded. The file is heard through the
    worker's own link to it, as a local worker hears an album's tracks: the decoders cannot open a name that is not
    UTF-8. Any other error travels as itself; running out of memory is the machine's fault, not the file's: an
    OSError, retried later like a full disk."""
    model = distributed.get_worker().plugins[plugin_name].model
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # never waits on a FIFO put in a file's place
    try:
        return model.analyse(opened_file_path(descriptor))
    except audio.AudioError as error:  # named by the path we were given, not the worker's own link to the file
        raise type(error)(path, error.reason) from None
    except MemoryError:
        raise OSError(errno.ENOMEM, os.strerror(errno.ENOMEM), str(path)) from None
    finally:
        os.close(descriptor)


def summary_on_worker(plugin_name: str, dask_worker: distributed.Worker) -> ModelSummary:
    return dask_worker.plugins[plugin_name].summary()


def shared_path(path: Path) -> Path:
    """The name a Dask worker can open for `path`: a file this process holds open (opened_file_path, as the album
    hearing and a dry run give it) by the name it has now on the shared storage, since /proc/<pid>/fd/<n> means
    nothing on another machine; any other path as it is. A file removed meanwhile gets a name no worker finds: an
    OSError, which leaves the track to be heard alone at its turn, from its staged copy."""
    if path.parent == opened_file_path(0).parent:
        return Path(os.readlink(path))
    return path


def check_shared_storage(client: distributed.Client, folders: Iterable[Path]) -> None:
    """ConfigError unless every worker sees each folder that exists here at the same path: a probe file made here
    must be there. A worker that saw another folder of that name would hear other files, or none."""
    for folder in folders:
        if not folder.is_dir():
            continue  # a dry run's library not made yet: nothing is staged there
        descriptor, probe = tempfile.mkstemp(prefix=".genresort-cluster-probe-", dir=folder)
        os.close(descriptor)
        try:
            seen = client.run(os.path.isfile, probe)
        finally:
            os.unlink(probe)
        blind = sorted(address for address, found in seen.items() if not found)
        if blind:
            raise ConfigError(
                f"the cluster's workers {', '.join(blind)} do not see {folder} here: the inbox and the library must"
                " be on storage every worker sees at the same paths"
            )


class ClusterAnalysers:
    """The analysis on a Dask cluster, in AnalyserPool's shape (analyse, summary, close). `workers` and `threads`:
    the cluster's at the start; `in_flight`: how many files to sort at once, twice the threads, so that each thread
    has a file to hear while another is staged or placed here."""

    def __init__(self, address: str, model_dir: Path, timeout: float, shared_folders: Iterable[Path]) -> None:
        self.address = address
        self.timeout = timeout
        try:  # connecting waits as long as dask's distributed.comm.timeouts.connect (30 s unless configured)
            self.client = distributed.Client(address, set_as_default=False)
        except (OSError, ValueError, TypeError) as error:
            raise ConfigError(f"the cluster {address} cannot be reached: {error}") from error
        self.plugin_name = f"genresort-model-{uuid.uuid4().hex}"  # ours alone: another run's close cannot drop it
        try:
            try:
                self.client.wait_for_workers(1, timeout=WORKERS_WAIT_SECONDS)
            except TimeoutError as error:
                waited = f"waited {WORKERS_WAIT_SECONDS:.0f} s"
                raise ConfigError(f"the cluster {address} has no worker ({waited})") from error
            check_shared_storage(self.client, shared_folders)
            self.client.register_plugin(ModelPlugin(model_files(model_dir), genresort_version()), self.plugin_name)
            self.summary = agreed_summary(self.client.run(summary_on_worker, self.plugin_name))
            threads = self.client.nthreads()
            self.workers, self.threads = len(threads), sum(threads.values())
            self.in_flight = min(2 * self.threads, MOST_IN_FLIGHT)
        except OSError as error:  # the connection lost, or a worker's own failure to set the model up
            self.close()
            raise ConfigError(f"the cluster {address} failed at the start: {error}") from error
        except BaseException:
            self.close()
            raise

    def analyse(self, path: Path) -> Prediction:
        """As AnalyserPool.analyse: AudioError for a bad file, OSError for what is not the file's fault (retried
        later, not counted), AnalysisTimeout, AnalysisCrashed and AnalysisFailed (counted as attempts). The time
        limit runs from the submission: with twice as many files in flight as the cluster has threads, a file waits
        for at most about one other file's analysis."""
        future = self.client.submit(analyse_on_worker, self.plugin_name, shared_path(path), pure=False)
        try:
            answer = future.result(timeout=self.timeout)
        except TimeoutError:
            if future.done():  # a TimeoutError of the worker's (ETIMEDOUT reading a share): not the file's fault
                raise
            self._stop(future)
            raise AnalysisTimeout(f"analysis took longer than {self.timeout:.0f} s and was stopped") from None
        except distributed.KilledWorker:
            raise AnalysisCrashed("the analysis killed every Dask worker that tried this file") from None
        except CancelledError:
            raise OSError(
                errno.ECONNABORTED, f"the cluster {self.address} dropped the analysis (its scheduler restarted?)"
            ) from None
        except (OSError, audio.AudioError):
            raise
        except Exception as error:
            raise AnalysisFailed(f"the analysis failed: {type(error).__name__}: {error}") from error
        return answer

    def _stop(self, future: distributed.Future) -> None:
        """A running task cannot be interrupted (a hung decoder keeps its thread): its worker is restarted by its
        nanny, and the other files it held are re-run elsewhere."""
        holders = [worker for worker, keys in self.client.processing().items() if future.key in keys]
        future.cancel()
        if holders:
            self.client.restart_workers(holders, raise_for_error=False)

    def close(self) -> None:
        """The model unloaded from the workers (it holds about 250 MB on each), and the connection closed. A cluster
        already gone has nothing left to unload."""
        try:
            self.client.unregister_worker_plugin(self.plugin_name)
        except (OSError, KeyError, ValueError):
            pass
        self.client.close()


def agreed_summary(summaries: dict[str, ModelSummary]) -> ModelSummary:
    """The model every worker loaded; ModelError if they differ (they load the same files: a worker's libraries
    would be at fault)."""
    distinct = set(summaries.values())
    if len(distinct) != 1:
        raise ModelError(f"the cluster's workers loaded different models: {summaries}")
    return distinct.pop()
