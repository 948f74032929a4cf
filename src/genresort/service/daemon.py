"""`genresort watch`: the wiring of the daemon. The inbox watcher offers files to the stability gate, the intake
hands stable ones to the work queue, whose workers sort them with the crash-safe pipeline; the supervisor watches.
With web_listen set, a thread serves the review page."""

from __future__ import annotations

import os
from functools import partial

from structlog.typing import FilteringBoundLogger

from genresort.config import Settings
from genresort.library.lock import MovesLock
from genresort.logs import path_text
from genresort.service import notify
from genresort.service.albums import album_root
from genresort.service.inbox import LIMIT_ERRNOS, InboxWatcher, Intake, StabilityGate, inbox_filesystem, wants_polling
from genresort.service.pipeline import Sorter
from genresort.service.recovery import recover
from genresort.service.startup import open_state, start_sorter
from genresort.service.supervisor import EXIT_REFUSED, StopSignals, Supervisor, finish_in_flight, tick_seconds
from genresort.service.workqueue import WorkQueue


def run_daemon(settings: Settings, log: FilteringBoundLogger) -> int:
    """`genresort watch`: sort every file that arrives in the inbox until SIGTERM or SIGINT; the exit code."""
    state = open_state(settings, log)
    if state is None:
        return EXIT_REFUSED
    try:
        started = start_sorter(settings, state.journal, log)
        if started is None:
            return EXIT_REFUSED
        sorter, analysers = started
        page = None
        try:
            if settings.web_listen is not None:
                from genresort.service.web import open_review_page  # the web stack only where it is wanted

                page = open_review_page(settings, log)
                if page is None:
                    return EXIT_REFUSED
                page.start()
            return watch(settings, sorter, log)
        finally:
            if page is not None:
                page.stop()
            analysers.close()
    finally:
        state.close()


def watch(settings: Settings, sorter: Sorter, log: FilteringBoundLogger) -> int:
    """The daemon proper, once the state folder is ours and the model loaded.

    Signals are caught only from here on: while the model loads nothing is in flight, so a stop may be abrupt.
    """
    inbox = settings.inbox.absolute()
    filesystem = inbox_filesystem(inbox)
    polling = wants_polling(settings.polling, filesystem)
    gate = StabilityGate(settings.stability_seconds)
    work = WorkQueue(sorter.sort_file, settings.workers, settings.retry_max_seconds, log, unsettled=gate.offer)
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
    with StopSignals() as signals:
        recover(sorter, MovesLock(settings.state_dir))
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
            model=sorter.policy.model_id,
            workers=settings.workers,
            polling=polling,
            filesystem=filesystem,
            pid=os.getpid(),
        )
        intake.start()  # its first scan offers the files already in the inbox
        exit_code = Supervisor(settings, intake, work, signals, log).run()
        reason = signals.received[0] if signals.received else "the inbox can no longer be watched"
        log.info("daemon.stopping", reason=reason, in_flight=work.in_flight())
        notify.stopping()
        intake.stop()
        finished = finish_in_flight(work, signals, settings.file_timeout_seconds, tick_seconds(settings), log)
    log.info("daemon.stopped", exit_code=exit_code, abandoned=work.in_flight(), finished=finished, **work.outcomes())
    return exit_code
