"""Albums: files that arrive together in one subfolder of the inbox (an album, a release with its CD1/ and CD2/)
are decided together, one genre for the whole folder from the evidence of all its tracks (decision.decide_album),
and keep their folders below the genre folder.

The first track of a folder to be sorted has the whole folder heard (each track's prediction kept for its own turn,
so no track is heard twice); a track added later, or left after a crash, follows the genre its folder's sorted
tracks went to (the journal knows them). A folder whose tracks' album tags name several albums (loose downloads) is
no album: each of its tracks decides alone. The intake hands a folder's files on only once the whole folder is
stable.
"""

from __future__ import annotations

import errno
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from genresort.analysis.decision import AlbumVerdict, Decision, Prediction, decide_album
from genresort.analysis.errors import AudioError
from genresort.library.formats import format_of
from genresort.library.journal import Journal
from genresort.library.layout import genre_folder, read_track_tags
from genresort.service.workers import AnalysisCrashed, AnalysisFailed, AnalysisTimeout, opened_file_path

#: Albums whose tracks' predictions are kept, the least recently used dropped first: a few hundred KB at most.
ALBUMS_KEPT = 32
#: A folder of a disc of an album: its tracks belong to the folder above.
DISC_FOLDER = re.compile(r"(cd|disc|disk)[ _-]*\d+", re.IGNORECASE)
#: Tracks of a folder sorted this recently count for the rest of it (a crash, a track added late); older ones were
#: another drop into a folder used again.
ARRIVED_TOGETHER_SECONDS = 24 * 3600.0

Signature = tuple[Path, int, int]  # (path, size, mtime_ns) of a track as it was heard


def album_root(inbox: Path, path: Path) -> Path | None:
    """The folder of the album a file arrived in: the folder it is in, or the one above a disc folder ("CD1",
    "Disc 2"); None for a file dropped into the inbox itself, or outside it. A download client's folder of releases
    is not an album: each release folder in it is."""
    folder = path.parent
    if folder == inbox or not folder.is_relative_to(inbox):
        return None
    if DISC_FOLDER.fullmatch(folder.name) and folder.parent != inbox:
        return folder.parent
    return folder


def tracks_of(inbox: Path, root: Path) -> list[Path]:
    """The files of the album at `root` (album_root) whose content is audio, hidden ones left out, sorted."""
    found = []
    for parent, folders, names in os.walk(root):
        folders[:] = [name for name in folders if not name.startswith(".")]
        for name in names:
            path = Path(parent) / name
            try:
                if (
                    not name.startswith(".")
                    and album_root(inbox, path) == root
                    and path.is_file()
                    and format_of(path) is not None
                ):
                    found.append(path)
            except OSError:  # gone or unreadable: its own turn says why
                continue
    return sorted(found)


def signature_of(path: Path) -> Signature | None:
    try:
        status = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return path, status.st_size, status.st_mtime_ns


@dataclass
class Album:
    verdict: AlbumVerdict | None  # None: the folder is no album (its tracks' tags name several), each decides alone
    heard: dict[Signature, Prediction]  # tracks not yet sorted: their predictions, taken at their turn
    tried: frozenset[Signature]  # every track the folder's hearing met, heard or not (one it could not hear is
    # heard alone at its turn, which says why: the folder is heard again only for a track new to it)


class Albums:
    """The albums being sorted: each heard once, its verdict kept until its tracks have taken their predictions."""

    def __init__(
        self,
        inbox: Path,
        library: Path,
        analyse: Callable[[Path], Prediction],
        decide: Callable[[Prediction], Decision],
        journal: Journal,
    ) -> None:
        self.inbox = inbox
        self.library = library
        self.analyse = analyse
        self.decide = decide
        self.journal = journal
        self._lock = threading.Lock()
        self._folder_locks: dict[Path, threading.Lock] = {}
        self._albums: OrderedDict[Path, Album] = OrderedDict()

    def hear(self, root: Path, track: Signature) -> tuple[Prediction | None, AlbumVerdict | None]:
        """This track's prediction, if its folder's hearing made one (None: hear it yourself: it could not be heard
        then, or changed since), and its album's verdict (None: the folder is no album). The first track of a folder
        hears the whole folder."""
        with self._folder_lock(root):
            with self._lock:
                album = self._albums.get(root)
                if album is not None:
                    self._albums.move_to_end(root)
            if album is None or track not in album.tried:
                album = self._hear_folder(root, album)
            with self._lock:
                return album.heard.pop(track, None), album.verdict

    def _folder_lock(self, root: Path) -> threading.Lock:
        with self._lock:
            return self._folder_locks.setdefault(root, threading.Lock())

    def _hear_folder(self, root: Path, earlier: Album | None) -> Album:
        """The folder's tracks heard (none its earlier hearing met: those are sorted, or heard at their turn), and
        its verdict made anew, with the tracks sorted since."""
        tracks = tracks_of(self.inbox, root)
        known, met = ({}, frozenset()) if earlier is None else (earlier.heard, earlier.tried)
        heard: dict[Signature, Prediction] = {}
        tried: set[Signature] = set()
        for path in tracks:
            signature = signature_of(path)
            if signature is None:
                continue
            tried.add(signature)
            if signature in met:  # heard before: its prediction kept, or it is heard alone at its turn
                if signature in known:
                    heard[signature] = known[signature]
                continue
            try:
                with open(path, "rb") as stream:
                    heard[signature] = self.analyse(opened_file_path(stream.fileno()))
            except (AudioError, OSError, AnalysisTimeout, AnalysisCrashed, AnalysisFailed):
                continue  # heard alone at its turn, where its own reason, or failure, counts
        recent = self.journal.sorted_from(root, since=time.time() - ARRIVED_TOGETHER_SECONDS)
        placed = [genre_folder(destination, self.library) for destination in recent]
        verdict = decide_album([self.decide(prediction) for prediction in heard.values()], placed)
        album = Album(verdict if one_album(tracks) else None, heard, frozenset(tried))
        with self._lock:
            self._albums[root] = album
            self._albums.move_to_end(root)
            while len(self._albums) > ALBUMS_KEPT:
                dropped, _ = self._albums.popitem(last=False)
                self._folder_locks.pop(dropped, None)
        return album


def one_album(tracks: list[Path]) -> bool:
    """Whether the tracks of a folder can be one album: their album tags, where they have one, name one album. A
    folder of loose downloads names several: decided together, its commonest genre would take them all."""
    names = set()
    for path in tracks:
        try:
            album = read_track_tags(path).album
        except OSError:
            continue
        if album:
            names.add(album.strip().casefold())
    return len(names) <= 1


def prune_emptied(folder: Path, root: Path) -> None:
    """Remove `folder` and the folders above it up to the album's `root` (album_root) once they are empty:
    an album sorted leaves no empty folder behind. A folder still holding anything (a cover, a file that is no
    audio, a track not yet sorted) stays."""
    while folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT, errno.EBUSY, errno.EACCES, errno.EPERM):
                return
            raise
        folder = folder.parent
