"""`genresort watch`: the wiring of the daemon. The inbox watcher offers files to the stability gate, the intake
hands stable ones to the work queue, whose workers sort them with the crash-safe pipeline; the supervisor watches.
Beside them: a check for files people moved from one genre folder to another (corrections.py), a watch on the model
folder that loads a new model without a restart, and, with web_listen set, a thread serving the review page."""

from __future__ import annotations

import os
import threading
import traceback
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

from structlog.typing import FilteringBoundLogger

from genresort.analysis.errors import ModelError
from genresort.config import ConfigError, Settings
from genresort.library.journal import Journal
from genresort.library.lock import MovesLock
from genresort.library.model_store import effective_model_dir
from genresort.logs import path_text
from genresort.service import notify
from genresort.service.albums import album_root
from genresort.service.corrections import CorrectionCheck
from genresort.service.inbox import LIMIT_ERRNOS, InboxWatcher, Intake, StabilityGate, inbox_filesystem, wants_polling
from genresort.service.pipeline import Sorter, SortOutcome, SortPolicy
from genresort.service.recovery import recover
from genresort.service.startup import ModelCard, load_model, open_state, start_sorter
from genresort.service.supervisor import EXIT_REFUSED, StopSignals, Supervisor, finish_in_flight, tick_seconds
from genresort.service.workers import AnalyserPool
from genresort.service.workqueue import WorkQueue

#: How often the model folder's card is looked at: a new model is sorting within this long of being installed.
MODEL_CHECK_SECONDS = 5.0
#: How long a stop waits for a check under way (a model still loading is closed when it is ready, not waited for).
CHECK_STOP_SECONDS = 10.0


def run_daemon(settings: Settings, log: FilteringBoundLogger) -> int:
    """`genresort watch`: sort every file that arrives in the inbox until SIGTERM or SIGINT; the exit code."""
    state = open_state(settings, log)
    if state is None:
        return EXIT_REFUSED
    try:
        card = ModelCard.of(effective_model_dir(settings))
        started = start_sorter(settings, state.journal, log, card)
        if started is None:
            return EXIT_REFUSED
        models = ModelSwitch(*started, card)
        page = None
        try:
            if settings.web_listen is not None:
                from genresort.service.web import open_review_page  # the web stack only where it is wanted

                page = open_review_page(settings, log)
                if page is None:
                    return EXIT_REFUSED
                page.start()
            return watch(settings, models, state.journal, log)
        finally:
            if page is not None:
                page.stop()
            models.close()
    finally:
        state.close()


def watch(settings: Settings, models: ModelSwitch, journal: Journal, log: FilteringBoundLogger) -> int:
    """The daemon proper, once the state folder is ours and the model loaded.

    Signals are caught only from here on: while the model loads nothing is in flight, so a stop may be abrupt.
    """
    inbox = settings.inbox.absolute()
    filesystem = inbox_filesystem(inbox)
    polling = wants_polling(settings.polling, filesystem)
    gate = StabilityGate(settings.stability_seconds)
    work = WorkQueue(models.sort_file, settings.workers, settings.retry_max_seconds, log, unsettled=gate.offer)
    watcher = InboxWatcher(inbox, polling, gate.offer)
    intake = Intake(
        inbox,
        watcher,
        gate,
        work.submit,
        tick_seconds(settings),
        settings.rescan_seconds,
        log,
        album_of=partial(album_root, inbox),
    )
    moves = MovesLock(settings.state_dir)
    corrections = CorrectionCheck(
        journal, settings.library, (settings.unsure, settings.not_music, settings.quarantine), moves, log
    )
    checks = [
        Every("corrections", settings.rescan_seconds, corrections.run, log),
        Every("model", MODEL_CHECK_SECONDS, ModelWatch(settings, models, log).check, log),
    ]
    with StopSignals() as signals:
        recover(models.sorter, moves)
        work.start()
        try:
            watcher.start()
        except OSError as error:
            hint = ' (inotify limits reached: raise them, or set polling = "on")' if error.errno in LIMIT_ERRNOS else ""
            log.error("daemon.refused", reason=f"cannot watch the inbox {inbox}: {error}{hint}")
            finish_in_flight(work, signals, settings.file_timeout_seconds, tick_seconds(settings), log)
            return EXIT_REFUSED
        notify.ready()
        log.info(
            "daemon.ready",
            inbox=path_text(inbox),
            library=path_text(settings.library),
            model=models.sorter.policy.model_id,
            workers=settings.workers,
            polling=polling,
            filesystem=filesystem,
            pid=os.getpid(),
        )
        intake.start()  # its first scan offers the files already in the inbox
        for check in checks:
            check.start()
        exit_code = Supervisor(settings, intake, work, signals, log).run()
        reason = signals.received[0] if signals.received else "the inbox can no longer be watched"
        log.info("daemon.stopping", reason=reason, in_flight=work.in_flight())
        notify.stopping()
        for check in checks:
            check.stop()
        intake.stop()
        finished = finish_in_flight(work, signals, settings.file_timeout_seconds, tick_seconds(settings), log)
    log.info("daemon.stopped", exit_code=exit_code, abandoned=work.in_flight(), finished=finished, **work.outcomes())
    return exit_code


class Every:
    """`task` on a thread of its own: at once, then every `seconds` until stopped. An error is logged as
    `<name>.failed` and the next round comes as planned: a check that fails once must not stop the sorting."""

    def __init__(self, name: str, seconds: float, task: Callable[[], object], log: FilteringBoundLogger) -> None:
        self._name = name
        self._seconds = seconds
        self._task = task
        self._log = log
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"genresort-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(CHECK_STOP_SECONDS)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._task()
            except Exception as error:
                frames = traceback.extract_tb(error.__traceback__)
                self._log.error(
                    f"{self._name}.failed",
                    error=f"{type(error).__name__}: {error}",
                    traceback=[f"{frame.filename}:{frame.lineno} in {frame.name}" for frame in frames],
                )
            self._stopping.wait(self._seconds)


class ModelSwitch:
    """The sorter of the model in use, replaced by a new model's without a restart. Each file is sorted whole by the
    sorter it started with (its model's workers, thresholds and id, from analysis to log line); a replaced model's
    workers are stopped once its last file is done."""

    def __init__(self, sorter: Sorter, analysers: AnalyserPool, card: ModelCard) -> None:
        self.sorter = sorter
        self.card = card
        self._analysers = analysers
        self._lock = threading.Lock()
        self._sorting: Counter[Sorter] = Counter()  # files in flight on each sorter
        self._retired: dict[Sorter, AnalyserPool] = {}  # replaced, with files still in flight
        self._closed = False

    def sort_file(self, path: Path) -> SortOutcome:
        with self._lock:
            sorter = self.sorter
            self._sorting[sorter] += 1
        try:
            return sorter.sort_file(path)
        finally:
            with self._lock:
                self._sorting[sorter] -= 1
                idle = None
                if not self._sorting[sorter]:
                    del self._sorting[sorter]
                    idle = self._retired.pop(sorter, None)
            if idle is not None:
                idle.close()

    def swap(self, policy: SortPolicy, analysers: AnalyserPool, card: ModelCard) -> Sorter | None:
        """Sort the next files with the model of `analysers` and `policy`; the sorter replaced (None, and the new
        workers stopped, once the daemon has closed this switch).

        The new sorter shares the journal, the log and the locks that keep two files of one content from being sorted
        at once, also across the change of model (Sorter.with_model)."""
        sorter = self.sorter.with_model(policy, analysers.analyse)
        with self._lock:
            if self._closed:
                previous, idle = None, analysers
            else:
                previous, idle = self.sorter, self._analysers
                self.sorter, self._analysers, self.card = sorter, analysers, card
                if self._sorting[previous]:  # its files in flight finish on its workers
                    self._retired[previous], idle = idle, None
        if idle is not None:
            idle.close()
        return previous

    def close(self) -> None:
        """Stop every model's workers (the files in flight are finished or abandoned by now)."""
        with self._lock:
            self._closed = True
            pools = [self._analysers, *self._retired.values()]
            self._retired.clear()
        for pool in pools:
            pool.close()


class ModelWatch:
    """Loads the model the model folder leads to once it changes (`genresort retrain` swaps a symlink to a new
    model's folder; its card changes with it), and sorts with it from the next file on: `model.loaded`. A model that
    cannot be loaded, or that the configuration does not fit (genre_names naming a genre it lacks), is refused
    (`model.refused`, once until the folder changes again) and the model in use sorts on. Neither the journal nor
    any file is touched."""

    def __init__(self, settings: Settings, models: ModelSwitch, log: FilteringBoundLogger) -> None:
        self._settings = settings
        self._models = models
        self._log = log
        self._refused: ModelCard | None = None

    def check(self) -> None:
        card = ModelCard.of(effective_model_dir(self._settings))
        if card in (self._models.card, self._refused):
            return
        in_use = self._models.sorter.policy.model_id
        try:
            policy, analysers = load_model(self._settings, card)
        except (ModelError, ConfigError) as error:
            self._refused = card
            self._log.error("model.refused", model_dir=path_text(card.folder), reason=str(error), model=in_use)
            return
        if self._models.swap(policy, analysers, card) is not None:
            self._log.info(
                "model.loaded",
                model=policy.model_id,
                previous_model=in_use,
                genres=list(analysers.summary.genres),
                model_dir=path_text(card.folder),
            )
