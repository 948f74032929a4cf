"""The bulk benchmark's corpus: music files shaped like a real collection's, made from the shared GTZAN clips.

Three kinds of file (`KINDS`):

- `4min` and `10min`: 44.1 kHz stereo MP3s at a constant 192 kbps (PyAV's libmp3lame; `soundfile` cannot be set
  to a bitrate and wrote 160 kbps joint stereo), each the clips of one genre in a shuffled order, from a random
  offset, upsampled, the right channel the left one 1.5 s later (the two channels differ, as in a real mix);
- `30s`: the 30 s GTZAN clips as they are (22.05 kHz mono, 80 kbps); past the clips there are, a copy with an ID3
  title of its own, since a daemon takes the same bytes twice for a duplicate.

File `<kind>-<index>.mp3` is a pure function of its kind, its index and the shared data, so a small corpus is the
start of a larger one: a cache folder is only ever extended. Each file is written under a hidden name and renamed
into place, so an interrupted build leaves no half file behind.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

#: seconds of each built kind; None: a GTZAN clip as it is
KINDS: dict[str, float | None] = {"4min": 240.0, "30s": None, "10min": 600.0}
RATE = 44_100
BITRATE = 192_000
#: LAME's quality 7 (its faster psychoacoustic search) halves the encoding time; the stream is the same 192 kbps
#: CBR MPEG-1 Layer III, which costs a decoder the same whatever search made it.
LAME_QUALITY = "7"
STEREO_DELAY_SECONDS = 1.5
MAX_OFFSET_SECONDS = 10.0
SEED = 10  # issue 10
FULL_CLIP_QUALITIES = ("exact", "band-limited-8k")  # the 30 s clips; `excerpt-15s` ones are 15 s


@dataclass(frozen=True)
class Clip:
    path: Path
    genre: str
    quality: str


@dataclass(frozen=True)
class Recipe:
    """How to make one corpus file: a long file of one genre's clips, or (seconds None) a clip's copy."""

    kind: str
    index: int
    seconds: float | None
    clips: tuple[Path, ...]  # a long file's clips, in order; a copy's one clip
    copy_number: int  # a copy: 0 the clip as it is, n > 0 the same audio with the title "copy n"

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.index:04d}.mp3"


def read_manifest(data: Path) -> list[Clip]:
    """The GTZAN clips of the shared data's MANIFEST.tsv (not the 2 s fragments), in its order."""
    with open(data / "MANIFEST.tsv", newline="") as table:
        rows = list(csv.DictReader(table, delimiter="\t"))
    return [Clip(data / row["file"], row["genre"], row["quality"]) for row in rows if row["file"].startswith("gtzan/")]


def parse_mix(text: str) -> dict[str, float]:
    """ "4min:80,30s:15,10min:5" -> {kind: share}; the shares need not add up to 100."""
    mix = {}
    for part in text.split(","):
        kind, _, share = part.partition(":")
        if kind.strip() not in KINDS:
            raise ValueError(f"unknown kind {kind.strip()!r} in the mix (kinds: {', '.join(KINDS)})")
        mix[kind.strip()] = float(share)
    if any(share < 0 for share in mix.values()) or not sum(mix.values()) > 0:
        raise ValueError(f"the mix {text!r} needs positive shares")
    return mix


def split_count(total: int, shares: dict[str, float]) -> dict[str, int]:
    """`total` files split by `shares` (largest remainders), with at least one of each kind that has a share when
    `total` allows: a 12-file smoke run still has a 10-minute file."""
    weight = sum(shares.values())
    exact = {kind: total * share / weight for kind, share in shares.items()}
    counts = {kind: int(value) for kind, value in exact.items()}
    for kind in sorted(exact, key=lambda kind: counts[kind] - exact[kind])[: total - sum(counts.values())]:
        counts[kind] += 1
    for kind in [kind for kind, share in shares.items() if share > 0 and counts[kind] == 0]:
        largest = max(counts, key=counts.get)
        if counts[largest] > 1:
            counts[largest] -= 1
            counts[kind] += 1
    return counts


def round_robin(clips: list[Clip]) -> list[Clip]:
    """The first clip of each genre, then the second of each... so that any prefix mixes the genres."""
    genres = sorted({clip.genre for clip in clips})
    columns = [[clip for clip in clips if clip.genre == genre] for genre in genres]
    return [column[row] for row in range(max(map(len, columns))) for column in columns if row < len(column)]


def recipes(clips: list[Clip], counts: dict[str, int]) -> Iterator[Recipe]:
    """The recipes of the first `counts[kind]` files of each kind."""
    import numpy as np

    full_clips = round_robin([clip for clip in clips if clip.quality in FULL_CLIP_QUALITIES])
    genres = sorted({clip.genre for clip in clips})
    for kind_number, (kind, seconds) in enumerate(KINDS.items()):
        for index in range(counts.get(kind, 0)):
            if seconds is None:
                clip = full_clips[index % len(full_clips)]
                yield Recipe(kind, index, None, (clip.path,), index // len(full_clips))
                continue
            genre = genres[index % len(genres)]
            pool = [clip.path for clip in clips if clip.genre == genre]
            rng = np.random.default_rng([SEED, kind_number, index])
            order = [pool[position] for position in rng.permutation(len(pool))]
            yield Recipe(kind, index, seconds, tuple(order), 0)


def long_file_audio(recipe: Recipe):
    """A long recipe's audio: float32 (samples, 2) at 44.1 kHz, `recipe.seconds` long."""
    import numpy as np
    import soundfile
    import soxr

    rng = np.random.default_rng([SEED, list(KINDS).index(recipe.kind), recipe.index, 1])  # not the order's seed
    offset = int(rng.uniform(0, MAX_OFFSET_SECONDS) * RATE)
    delay = int(STEREO_DELAY_SECONDS * RATE)
    needed = int(recipe.seconds * RATE) + delay + offset
    parts, total = [], 0
    while total < needed:  # a genre with few clips goes round again
        for path in recipe.clips:
            samples, clip_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
            parts.append(soxr.resample(samples.mean(axis=1), clip_rate, RATE))
            total += len(parts[-1])
            if total >= needed:
                break
    left = np.concatenate(parts)[offset:]
    length = int(recipe.seconds * RATE)
    return np.stack([left[delay : delay + length], left[:length]], axis=1)


def encode_mp3(stereo, path: Path, title: str) -> None:
    """Write float32 (samples, 2) at 44.1 kHz as a 192 kbps CBR MP3 with an ID3 title."""
    import av
    import numpy as np

    planar = np.ascontiguousarray(stereo.T)
    with av.open(str(path), "w", format="mp3") as container:
        container.metadata["title"] = title
        stream = container.add_stream("mp3", rate=RATE, layout="stereo", options={"compression_level": LAME_QUALITY})
        stream.bit_rate = BITRATE
        for start in range(0, planar.shape[1], RATE):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(planar[:, start : start + RATE]), format="fltp", layout="stereo"
            )
            frame.sample_rate = RATE
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def check_mp3(path: Path) -> None:
    """Refuse a long file that is not what the benchmark promises (44.1 kHz stereo, 192 kbps CBR)."""
    from mutagen.mp3 import MP3, BitrateMode

    info = MP3(path).info
    found = (info.sample_rate, info.channels, info.bitrate, info.bitrate_mode)
    if found != (RATE, 2, BITRATE, BitrateMode.CBR):
        raise RuntimeError(f"{path} came out as {found}, not 44.1 kHz stereo 192 kbps CBR")


def build(recipe: Recipe, folder: Path) -> Path:
    """Make one corpus file (under a hidden name, then renamed into place) and return its path."""
    from mutagen.id3 import ID3, TIT2

    path = folder / recipe.name
    partial = folder / f".{recipe.name}.partial"
    if recipe.seconds is None:
        shutil.copyfile(recipe.clips[0], partial)
        if recipe.copy_number:
            tags = ID3()
            tags.add(TIT2(encoding=3, text=f"{recipe.clips[0].stem} copy {recipe.copy_number}"))
            tags.save(partial)
    else:
        encode_mp3(long_file_audio(recipe), partial, f"genresort bench {recipe.kind} {recipe.index}")
        check_mp3(partial)
    os.replace(partial, path)
    return path


def build_corpus(data: Path, folder: Path, counts: dict[str, int], processes: int) -> dict[str, list[Path]]:
    """{kind: paths} of the first `counts[kind]` files of each kind in `folder`, building the missing ones with
    `processes` processes; prints a line per file built."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = list(recipes(read_manifest(data), counts))
    missing = [recipe for recipe in wanted if not (folder / recipe.name).exists()]
    if missing:
        print(f"building {len(missing)} corpus files in {folder} with {processes} processes", flush=True)
        with ProcessPoolExecutor(processes) as pool:
            for done, path in enumerate(pool.map(build, missing, [folder] * len(missing)), start=1):
                print(f"  {done}/{len(missing)} {path.name}", flush=True)
    return {kind: [folder / recipe.name for recipe in wanted if recipe.kind == kind] for kind in counts}
