"""The review page (`genresort web`, or the daemon with web_listen set): the files genresort was unsure of or took
for not music, each with a player, its top 3 and a button per genre; why the model decided (on a file's own page:
the explanation takes a second); the quarantine with its reasons; the recent sorts with an undo.

It changes files only through the commands' own functions (moves.run_moves with moves.assign or moves.undo), which
hold the moves lock, not the daemon's: a running daemon goes on sorting meanwhile. Pages that only read open the
journal without a lock.

Security: it listens on 127.0.0.1 unless web_listen says otherwise, and then the configuration requires web_token
(config.Settings). With a token, every request carries it (a cookie set from ?token=, or Authorization: Bearer).
Every change is a POST with this start's CSRF token. Audio is served by journal id, and only from the configured
library, unsure and not-music folders: no path is ever taken from a request.
"""

from __future__ import annotations

import hmac
import json
import mimetypes
import secrets
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates
from structlog.typing import FilteringBoundLogger

from genresort.analysis.errors import ModelError
from genresort.config import Settings, listen_address
from genresort.library.journal import ExampleOrigin, FileRecord, Journal, Step
from genresort.library.layout import genre_folder
from genresort.library.model_store import effective_model_dir
from genresort.library.placement import REASON_SUFFIX
from genresort.library.tags import TagError, read_fields
from genresort.logs import get_logger, path_text
from genresort.paths import CARD_JSON
from genresort.service.moves import (
    ASSIGNED,
    LABELS,
    MoveError,
    MoveOutcome,
    assign,
    moves_instance,
    run_moves,
    undo,
    undo_folder,
)
from genresort.service.startup import open_journal_unlocked
from genresort.service.supervisor import EXIT_REFUSED

TOKEN_COOKIE = "genresort_token"
HISTORY_LENGTH = 30
ACTIVITY_DAYS = 7
TEMPLATES = Path(__file__).parent / "templates"
#: The journal's outcomes of files placed and not given back: in a genre folder, or left for a person to decide.
PLACED_OUTCOMES = ("sorted", ASSIGNED, *LABELS)


@dataclass(frozen=True)
class ReviewFile:
    """A placed file as the page shows it."""

    record: FileRecord
    top3: list[str]  # "Jazz 41%", from the file's GENRESORT_TOP3 tag
    library: Path

    @property
    def name(self) -> str:
        return path_text(Path(self.record.destination.name))

    @property
    def folder(self) -> str:
        """The genre it is sorted into (whatever path_template put below it), or unsure or not-music."""
        return path_text(Path(genre_folder(self.record.destination, self.library)))

    @property
    def outcome(self) -> str:
        return LABELS.get(self.record.outcome, self.record.outcome)

    @property
    def when(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.record.updated_at))


@dataclass(frozen=True)
class QuarantinedFile:
    name: str
    reason: str


class Reasons:
    """The log the commands write to, remembering the reasons it was given, to show them on the page."""

    def __init__(self, log: FilteringBoundLogger) -> None:
        self.log = log
        self.said: list[str] = []

    def info(self, event: str, **fields: object) -> None:
        self.log.info(event, **fields)

    def warning(self, event: str, **fields: object) -> None:
        self.remember(fields)
        self.log.warning(event, **fields)

    def error(self, event: str, **fields: object) -> None:
        self.remember(fields)
        self.log.error(event, **fields)

    def remember(self, fields: dict[str, object]) -> None:
        if "reason" in fields:
            self.said.append(str(fields["reason"]))


def top3_of(path: Path) -> list[str]:
    """The top 3 genresort wrote into the file's GENRESORT_TOP3 field, in whatever format; [] if none."""
    try:
        values = read_fields(path).get("GENRESORT_TOP3", [])
    except (TagError, OSError):
        return []
    return [as_percent(part) for value in values for part in str(value).split("; ") if part]


def as_percent(entry: str) -> str:
    """A top-3 entry as a percentage, "Jazz 0.412" -> "Jazz 41%" (one not in that form as it is)."""
    genre, _, probability = entry.rpartition(" ")
    try:
        return f"{genre} {float(probability):.0%}"
    except ValueError:
        return entry


def quarantined_files(quarantine: Path) -> list[QuarantinedFile]:
    """Each file set aside in the quarantine (and its duplicates folder), with the reason kept beside it."""
    found = []
    for reason_file in sorted(quarantine.rglob(f"*{REASON_SUFFIX}")):
        if ".genresort-staging" in reason_file.parts:
            continue
        try:
            reason = str(json.loads(reason_file.read_text()).get("error") or "no reason given")
        except (OSError, ValueError, AttributeError) as error:
            reason = f"the reason cannot be read: {error}"
        name = reason_file.relative_to(quarantine).as_posix().removesuffix(REASON_SUFFIX)
        found.append(QuarantinedFile(path_text(Path(name)), reason))
    return found


def folder_names(settings: Settings) -> list[str]:
    """The genre folders a person can assign: the model's genres as genre_names names them, from the card of the
    model in use."""
    card_path = effective_model_dir(settings) / CARD_JSON
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as error:
        raise ModelError(f"the model's card {card_path} cannot be read: {error}") from error
    return list(dict.fromkeys(settings.genre_names.get(genre, genre) for genre in card["genres"]))


def served_file(settings: Settings, record: FileRecord) -> Path | None:
    """Where a placed record's file is, if that is inside the library, unsure or not-music folders."""
    if record.destination is None or record.step is not Step.DONE:
        return None
    path = record.destination.resolve()
    folders = (settings.library, settings.unsure, settings.not_music)
    if not any(path.is_relative_to(folder.resolve()) for folder in folders) or not path.is_file():
        return None
    return path


def make_app(settings: Settings) -> Starlette:
    """The review page's application for these settings; a new CSRF token for each one made."""
    csrf = secrets.token_urlsafe(32)
    templates = Jinja2Templates(directory=TEMPLATES)
    known_genres = folder_names(settings)  # no page without a model's genres
    instance = moves_instance(settings)
    given_back_into = undo_folder(settings)
    log = get_logger()

    def genres() -> list[str]:
        """The genres of the model in use now (the daemon may load a new one while the page is served); the last
        ones read while its card is being replaced."""
        nonlocal known_genres
        try:
            known_genres = folder_names(settings)
        except ModelError:
            pass
        return known_genres

    @lru_cache(maxsize=1)
    def model_in(folder: Path):
        """The model, loaded for the first explanation asked for (a few seconds: the page should not wait), and again
        once another model is in use."""
        from genresort.analysis.model import GenreModel

        return GenreModel.load(folder)

    def model():
        return model_in(effective_model_dir(settings).resolve())

    def page(request: Request, name: str, status: int = 200, **context: object) -> Response:
        context = {"csrf": csrf, "genres": genres(), "undo_folder": path_text(given_back_into), **context}
        return templates.TemplateResponse(request, name, context, status)

    def reading(request: Request) -> Journal | Response:
        journal = open_journal_unlocked(settings, log)
        if journal is None:
            return page(request, "message.html", 503, title="The journal cannot be read", text="The log says why.")
        return journal

    def review(request: Request) -> Response:
        journal = reading(request)
        if isinstance(journal, Response):
            return journal
        with journal:
            recent = journal.placed_records(since=time.time() - ACTIVITY_DAYS * 86400)
            undecided = [record for record in journal.placed_records() if record.outcome in LABELS]
            history = journal.placed_records(last=HISTORY_LENGTH)
        return page(
            request,
            "review.html",
            activity=sorted(Counter(LABELS.get(record.outcome, record.outcome) for record in recent).items()),
            days=ACTIVITY_DAYS,
            undecided=[ReviewFile(record, top3_of(record.destination), settings.library) for record in undecided],
            history=[ReviewFile(record, [], settings.library) for record in history],
            quarantined=quarantined_files(settings.quarantine),
            said=request.query_params.get("said"),
        )

    def requested_file(request: Request) -> tuple[FileRecord | None, Path | None] | Response:
        """The placed record the request's id names, and its file if it may be served (inside the folders)."""
        journal = reading(request)
        if isinstance(journal, Response):
            return journal
        with journal:
            record = placed(journal, request.path_params["id"])
        return record, served_file(settings, record) if record else None

    def details(request: Request) -> Response:
        found = requested_file(request)
        if isinstance(found, Response):
            return found
        record, path = found
        if path is None:
            return page(request, "message.html", 404, title="No such file", text="genresort placed no file by that id.")
        from genresort.analysis.audio import AudioError
        from genresort.analysis.naming import named_explanation, named_prediction

        try:
            prediction, explanation = model().explain(path)
        except (AudioError, OSError) as error:
            return page(request, "message.html", 500, title="It cannot be heard", text=str(error))
        return page(
            request,
            "file.html",
            file=ReviewFile(record, top3_of(path), settings.library),
            prediction=named_prediction(prediction, settings.genre_names),
            explanation=named_explanation(explanation, settings.genre_names),
        )

    def audio(request: Request) -> Response:
        found = requested_file(request)
        if isinstance(found, Response):
            return found
        _, path = found
        if path is None:
            return PlainTextResponse("no such file", 404)
        return FileResponse(path, media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream")

    async def change(request: Request) -> Response:
        form = await request.form()
        given = str(form.get("csrf", "")).encode()
        if not hmac.compare_digest(given, csrf.encode()):
            return PlainTextResponse("a change needs the page's CSRF token: reload the page and try again", 403)
        record_id = request.path_params["id"]
        if request.url.path.startswith("/assign/"):
            genre = str(form.get("genre", ""))
            if genre not in genres():
                return PlainTextResponse(f"{genre!r} is not one of the model's genres", 400)
            command = "assign"

            def act(journal: Journal, record: FileRecord) -> MoveOutcome:
                return assign(
                    journal,
                    record,
                    genre,
                    settings.library,
                    instance,
                    settings.path_template,
                    ExampleOrigin.REVIEW_PAGE,
                )
        else:
            command = "undo"

            def act(journal: Journal, record: FileRecord) -> MoveOutcome:
                return undo(journal, record, given_back_into, instance)

        reasons = Reasons(log)
        done: list[MoveOutcome] = []

        def choose(journal: Journal) -> list[FileRecord]:
            record = placed(journal, record_id)
            if record is None:
                raise MoveError(f"genresort has no placed file by the id {record_id}")
            return [record]

        def acting(journal: Journal, record: FileRecord) -> MoveOutcome:
            done.append(act(journal, record))
            return done[-1]

        status = await run_in_threadpool(run_moves, settings, reasons, command, choose, acting)
        if status == EXIT_REFUSED and not done:  # another move runs too long, or the id is unknown
            text = "; ".join(reasons.said) or "the state folder cannot be opened"
            return page(request, "message.html", 409, title=f"Nothing was changed ({command})", text=text)
        (outcome,) = done
        if outcome.refused is not None:
            said = f"{path_text(Path(outcome.record.destination.name))}: not changed: {outcome.refused}"
        else:
            verb = "assigned to" if command == "assign" else "given back as it arrived into"
            into = genre_folder(outcome.destination, settings.library)
            said = path_text(Path(f"{outcome.destination.name}: {verb} {into}"))
        return RedirectResponse("/?" + urlencode({"said": said}), 303)

    middleware = [Middleware(BaseHTTPMiddleware, dispatch=guard(settings))]
    routes = [
        Route("/", review),
        Route("/file/{id:int}", details),
        Route("/audio/{id:int}", audio),
        Route("/assign/{id:int}", change, methods=["POST"]),
        Route("/undo/{id:int}", change, methods=["POST"]),
    ]
    return Starlette(routes=routes, middleware=middleware)


def placed(journal: Journal, record_id: int) -> FileRecord | None:
    """The record of a file genresort placed and has not given back, or None."""
    try:
        record = journal.get(record_id)
    except KeyError:
        return None
    if record.step is not Step.DONE or record.outcome not in PLACED_OUTCOMES:
        return None
    return record


def guard(settings: Settings):
    """Middleware: with a token set, a request without it (cookie, ?token= or Authorization: Bearer) gets 401; one
    that brings it in ?token= gets it back as a cookie, so the links and forms of the page need not carry it.
    Without a token (on loopback), a request must name this machine in its Host: a web page elsewhere whose name was
    made to resolve to 127.0.0.1 (DNS rebinding) could otherwise read the page, its CSRF token with it."""
    token = settings.web_token
    local_hosts = {"localhost", "127.0.0.1", "::1", listen_address(settings.review_page_address)[0]}

    def given(value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), token.encode())

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        if token is None:
            if host_name(request.headers.get("host", "")) not in local_hosts:
                return PlainTextResponse("this page answers only to this machine's own name (127.0.0.1)", 421)
            return await call_next(request)
        bearer = request.headers.get("authorization", "")
        from_query = given(request.query_params.get("token"))
        if not (
            from_query
            or given(request.cookies.get(TOKEN_COOKIE))
            or (bearer.startswith("Bearer ") and given(bearer.removeprefix("Bearer ")))
        ):
            return PlainTextResponse("this page needs its token: open it with ?token=<web_token>", 401)
        response = await call_next(request)
        if from_query:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    return dispatch


def host_name(header: str) -> str:
    """The host a Host header names, without its port: "127.0.0.1:8765" -> "127.0.0.1", "[::1]:8765" -> "::1"."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.partition(":")[0]


class ReviewServer:
    """The review page's server, its socket bound when made (a port in use is refused at start, in our words, not
    by uvicorn's exit); served from the calling thread (`genresort web`) or a thread of the daemon's."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn

        self.address = settings.review_page_address
        host, port = listen_address(self.address)
        self.socket = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
        try:
            self.server = uvicorn.Server(uvicorn.Config(make_app(settings), log_level="warning"))
        except BaseException:
            self.socket.close()
            raise
        self.thread: threading.Thread | None = None

    def serve(self) -> None:
        """Until SIGTERM or SIGINT (uvicorn's own handlers, in the main thread), or stop()."""
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self.socket.close()

    def start(self) -> None:
        self.thread = threading.Thread(target=self.serve, name="review-page", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10.0)


def open_review_page(settings: Settings, log: FilteringBoundLogger) -> ReviewServer | None:
    """The review page, bound to its address and announced in the log (`web.ready`); or None after logging why not
    (`web.refused`)."""
    try:
        page = ReviewServer(settings)
    except (OSError, ModelError) as error:
        log.error("web.refused", reason=f"the review page cannot be served on {settings.review_page_address}: {error}")
        return None
    log.info("web.ready", url=f"http://{page.address}/", token_required=settings.web_token is not None)
    return page


def run_web(settings: Settings, log: FilteringBoundLogger) -> int:
    """`genresort web`: serve the review page until stopped."""
    page = open_review_page(settings, log)
    if page is None:
        return EXIT_REFUSED
    page.serve()
    return 0
