"""Music or not: reproduce every figure of the music-detector study (issue 7, part 1).

    .venv/bin/python tools/music_detector_study.py [--data ../shared/data] [--repeats 3] [--report FILE]

Music: the GTZAN clips (their 2 s fragments train, never score) and the real-world songs. Not music: the shared
non-music recordings and sounds synthesised into a temporary folder (espeak-ng speech, which needs
`apt-get install espeak-ng`; white, pink and brown noise; tones; sine sweeps; mains hum; room tone). Every fold is
grouped by artist, speaker or recording group, or generator; each fold's threshold is chosen on its training part.
Features come from .cache/features (the first run extracts what is missing: a few minutes).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import timeit
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from genresort.analysis.audio import WindowPlan, decode_analysis_windows
from genresort.analysis.features.clip import (
    ClipFeatures,
    FeatureSet,
    extract_clip_features,
    feature_vector,
    window_patches,
)
from genresort.analysis.features.embedding import MusicnnNetwork
from genresort.analysis.features.spectrogram import SAMPLE_RATE
from genresort.paths import DEFAULT_MODEL_DIR
from genresort.training.dataset import training_set
from genresort.training.fit import NETWORK_NAMES, network_files
from genresort.training.music_detector import (
    MUSIC_LOSS,
    REGULARISATION,
    HeldOut,
    cross_validate_detector,
    fit_final,
    read_samples,
    tag_columns,
)

REGULARISATIONS = (0.001, 0.01, 0.1)
TRADE_OFF_THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)


def share(count: int, total: int) -> str:
    return f"{count}/{total} ({100 * count / total:.1f}%)" if total else "-"


def errors_of(held: HeldOut) -> np.ndarray:
    """(repeats, samples): True where the held-out decision is wrong."""
    is_music = np.array([sample.is_music for sample in held.samples])
    return held.called_music != is_music


def summary_row(name: str, held: HeldOut) -> str:
    is_music = np.array([sample.is_music for sample in held.samples])
    hiphop = np.array([sample.kind == "GTZAN Hip-Hop" for sample in held.samples])
    errors = errors_of(held)
    repeats = len(errors)
    return (
        f"| {name} | {share(int(errors[:, ~is_music].sum()), repeats * int((~is_music).sum()))} "
        f"| {share(int(errors[:, is_music].sum()), repeats * int(is_music.sum()))} "
        f"| {share(int(errors[:, hiphop].sum()), repeats * int(hiphop.sum()))} "
        f"| {np.median(held.thresholds):.3f} |"
    )


def by_kind_table(held: HeldOut) -> list[str]:
    errors = errors_of(held)
    columns: dict[str, list[int]] = defaultdict(list)
    for index, sample in enumerate(held.samples):
        columns[sample.kind].append(index)
    lines = ["| kind | files | groups | wrong side (over repeats) |", "|---|---|---|---|"]
    for is_music in (False, True):
        for kind in sorted(k for k, members in columns.items() if held.samples[members[0]].is_music == is_music):
            members = columns[kind]
            groups = len({held.samples[i].group for i in members})
            wrong = int(errors[:, members].sum())
            lines.append(
                f"| {kind} ({'music' if is_music else 'not music'}) | {len(members)} | {groups} "
                f"| {share(wrong, len(errors) * len(members))} |"
            )
    for label, music_flag in (("all non-music", False), ("all music", True)):
        members = [i for i, sample in enumerate(held.samples) if sample.is_music == music_flag]
        lines.append(
            f"| **{label}** | {len(members)} | {len({held.samples[i].group for i in members})} "
            f"| {share(int(errors[:, members].sum()), len(errors) * len(members))} |"
        )
    return lines


def trade_off_table(held: HeldOut) -> list[str]:
    """Fixed thresholds on the held-out probabilities, beside the per-fold chosen ones."""
    is_music = np.array([sample.is_music for sample in held.samples])
    rap = np.array([sample.kind in ("GTZAN Hip-Hop", "realworld rap") for sample in held.samples])
    lines = [
        "| threshold | non-music called music | music called not-music | Hip-Hop/rap called not-music |",
        "|---|---|---|---|",
    ]
    rows = [(f"{t:g}", held.probabilities >= t) for t in TRADE_OFF_THRESHOLDS]
    rows.append(("chosen per fold", held.called_music))
    repeats = len(held.probabilities)
    for label, called in rows:
        lines.append(
            f"| {label} | {share(int(called[:, ~is_music].sum()), repeats * int((~is_music).sum()))} "
            f"| {share(int((~called[:, is_music]).sum()), repeats * int(is_music.sum()))} "
            f"| {share(int((~called[:, rap]).sum()), repeats * int(rap.sum()))} |"
        )
    return lines


def mistakes(held: HeldOut, near: float = 0.15) -> list[str]:
    """Every file on the wrong side in some repeat, and the right ones within `near` of their threshold."""
    errors = errors_of(held)
    lines = []
    for index, sample in enumerate(held.samples):
        probabilities, thresholds = held.probabilities[:, index], held.thresholds[:, index]
        wrong = int(errors[:, index].sum())
        close = bool(np.any(np.abs(probabilities - thresholds) < near))
        if wrong or close:
            verdict = f"WRONG {wrong}/{len(errors)}" if wrong else "right, close"
            lines.append(
                f"- {verdict}: {sample.name} [{sample.kind}] P(music) "
                f"{', '.join(f'{p:.3f}' for p in probabilities)} vs threshold "
                f"{', '.join(f'{t:.3f}' for t in thresholds)}"
            )
    return lines


def four_window_vectors(clips: list[ClipFeatures]) -> np.ndarray:
    """Each clip's vector as the daemon hears a long track: four windows of two patches (the whole clip where
    it is too short for that)."""
    names = list(NETWORK_NAMES)
    vectors = []
    for clip in clips:
        patches = window_patches(len(clip.network_outputs[names[0]]["taggram"]), windows=4, patches_per_window=2)
        vectors.append(feature_vector(clip, FeatureSet.EMBEDDING, names, patches))
    return np.stack(vectors)


def analysis_seconds(path: Path) -> float:
    """CPU seconds the daemon's analysis of one file takes today: decoding its windows and both networks."""
    networks = [MusicnnNetwork(network) for network in network_files(DEFAULT_MODEL_DIR)]
    started = time.process_time()
    windows = decode_analysis_windows(path, SAMPLE_RATE, WindowPlan())
    extract_clip_features(windows, networks, with_handcrafted=False)
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache", type=Path, default=Path(".cache/features"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--report", type=Path, help="also write the report (markdown) here")
    parser.add_argument("--detector", type=Path, help="write the final detector's arrays (JSON) here")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="genresort-synthetic-") as folder:
        samples, clips, aside = read_samples(options.data, Path(folder), options.cache)
    rows = training_set(clips, FeatureSet.EMBEDDING, list(NETWORK_NAMES))
    inputs = {
        "embedding": np.arange(rows.vectors.shape[1]),
        "tags": tag_columns(clips[0], list(NETWORK_NAMES)),
    }
    scored = [s for s in samples if s.scored]
    report = [
        "# Music or not: grouped cross-validation",
        "",
        f"`.venv/bin/python tools/music_detector_study.py --repeats {options.repeats}`",
        "",
        f"{sum(s.is_music for s in scored)} music files ({len({s.group for s in scored if s.is_music})} artists), "
        f"{sum(not s.is_music for s in scored)} non-music files "
        f"({len({s.group for s in scored if not s.is_music})} speakers, recording groups or generators); "
        f"{len(samples) - len(scored)} GTZAN fragments train only. 5 folds x {options.repeats} repeats, grouped; "
        "each fold's threshold from a 3-fold grouped cross-validation of its training part "
        f"({MUSIC_LOSS:.1%} music loss allowed).",
        "",
        "| input, C | non-music called music | music called not-music | GTZAN Hip-Hop called not-music | "
        "median threshold |",
        "|---|---|---|---|---|",
    ]
    results = {}
    for input_name, columns in inputs.items():
        for regularisation in REGULARISATIONS:
            held = cross_validate_detector(samples, rows, columns, regularisation, repeats=options.repeats)
            results[(input_name, regularisation)] = held
            report.append(summary_row(f"{input_name} ({len(columns)}), C={regularisation:g}", held))
            print(report[-1], flush=True)
    chosen = inputs["embedding"]
    for label, never_trains in (
        (f"embedding, C={REGULARISATION:g}, synthetic sounds never train", lambda s: s.kind.startswith("synthetic")),
        (
            f"embedding, C={REGULARISATION:g}, real non-music never trains",
            lambda s: not s.is_music and not s.kind.startswith("synthetic"),
        ),
    ):
        variant = [replace(sample, trains=not never_trains(sample)) for sample in samples]
        held = cross_validate_detector(variant, rows, chosen, REGULARISATION, repeats=options.repeats)
        report.append(summary_row(label, held))
        print(report[-1], flush=True)

    four_windows = cross_validate_detector(
        samples, rows, chosen, REGULARISATION, repeats=options.repeats, test_vectors=four_window_vectors(clips)
    )
    report.append(
        summary_row(f"embedding, C={REGULARISATION:g}, scored through four windows (a long track)", four_windows)
    )

    held = results[("embedding", REGULARISATION)]
    hiphop_failures = sorted(
        {
            s.name
            for s, wrong in zip(held.samples, errors_of(held).any(axis=0), strict=True)
            if wrong and s.kind == "GTZAN Hip-Hop"
        }
    )
    report += ["", f"## The chosen input: the whole embedding vector, C={REGULARISATION:g}", ""]
    report += by_kind_table(held)
    report += ["", f"GTZAN Hip-Hop clips called not-music in any repeat: {', '.join(hiphop_failures) or 'none'}."]
    report += ["", "### Trade-off over fixed thresholds (held-out P(music))", ""]
    report += trade_off_table(held) + ["", "### Wrong sides, and right ones near the threshold", ""]
    report += mistakes(held) or ["- none"]

    detector = fit_final(samples, rows, chosen, REGULARISATION)
    one = rows.vectors[:1]
    decision = min(timeit.repeat(lambda: detector.is_music(one), number=1000, repeat=5)) / 1000
    analysis = analysis_seconds(options.data / "gtzan" / "hiphop" / "hiphop.00002.mp3")
    report += [
        "",
        "## The detector fitted on everything",
        "",
        f"Threshold {detector.threshold:.4f} (from a grouped 3-fold cross-validation of all files); "
        f"{len(detector.columns)} weights. Decision for one file: {decision * 1e6:.1f} µs (scale, dot product, "
        f"logistic; timeit), against {analysis:.2f} s of CPU to decode a 30 s clip and run both networks "
        f"(process time): {100 * decision / analysis:.4f}% more.",
    ]
    for song, clip in aside:
        vector = feature_vector(clip, FeatureSet.EMBEDDING, list(NETWORK_NAMES))[np.newaxis]
        report.append(
            f"Spoken comedy, counted on neither side: {song.path.name} ({song.title}): "
            f"P(music) {detector.probability(vector)[0]:.3f}"
        )
    text = "\n".join(report) + "\n"
    print(text)
    if options.report:
        options.report.write_text(text)
    if options.detector:
        options.detector.write_text(detector.classifier.to_json())
        print(f"detector written to {options.detector}: threshold {detector.threshold:.4f}")


if __name__ == "__main__":
    main()
