"""The open-world figures `genresort evaluate` reports and the model card carries (issue 7, part 6): what happens to
sounds that are not music, and to music, when the music detector is held out by source and the genre rule decides.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from genresort.analysis.decision import FIRST_LOOK_MARGIN
from genresort.training.music_detector import HeldOut


def nonmusic_figures(held: HeldOut, genre_rule_places: np.ndarray, sure: float) -> dict:
    """Shares over the detector's held-out repeats: non-music placed in a genre (the detector is sure it is music and
    the genre rule places it: `genre_rule_places`, per sample or per repeat and sample), non-music that got past the
    detector, music sent to not-music; and per kind of sound. The genre rule never learnt from non-music, so applying
    the shipped one to it is honest; music is only judged on the detector, which was held out."""
    is_music = np.array([sample.is_music for sample in held.samples])
    kinds = np.array([sample.kind for sample in held.samples])
    not_music = ~held.called_music  # (repeats, samples)
    genre_stage = held.probabilities >= np.maximum(held.thresholds, sure)
    placed = genre_stage & genre_rule_places
    per_kind = {}
    for kind in sorted(set(kinds)):
        columns = kinds == kind
        per_kind[str(kind)] = {
            "music": bool(is_music[columns][0]),
            "files": int(columns.sum()),
            "not_music": float(not_music[:, columns].mean()),
            # music is judged on the detector alone: the genre rule learnt from these very songs
            "placed_in_a_genre": None if is_music[columns][0] else float(placed[:, columns].mean()),
        }
    return {
        "repeats": int(held.probabilities.shape[0]),
        "nonmusic_files": int((~is_music).sum()),
        "music_files": int(is_music.sum()),
        "nonmusic_placed_in_a_genre": float(placed[:, ~is_music].mean()),
        "nonmusic_past_the_detector": float(genre_stage[:, ~is_music].mean()),
        "music_to_not_music": float(not_music[:, is_music].mean()),
        "per_kind": per_kind,
    }


def at_first_look(
    held: HeldOut, places: np.ndarray, glance: HeldOut, glance_places_settled: np.ndarray, sure: float
) -> tuple[HeldOut, np.ndarray, float]:
    """The detector's verdicts and the genre rule's placements when a first look decides where it is settled, as
    GenreModel.analyse does (decision.settled_at_first_look): not music with the margin to spare, or music with the
    margin to spare and a placement the rule makes with the margin to spare (`glance_places_settled`); everything
    heard otherwise. `glance` holds the same folds' P(music) for each sample's first look. Returns the held-out
    verdicts, the placements (repeats, samples), and the share of verdicts made at first look."""
    not_music = glance.probabilities < glance.thresholds - FIRST_LOOK_MARGIN
    music = (glance.probabilities >= np.maximum(glance.thresholds, sure) + FIRST_LOOK_MARGIN) & glance_places_settled
    settled = not_music | music
    verdicts = replace(held, probabilities=np.where(settled, glance.probabilities, held.probabilities))
    return verdicts, np.where(settled, music, places[np.newaxis, :]), float(settled.mean())


def nonmusic_markdown(figures: dict) -> list[str]:
    lines = [
        f"- Non-music placed in a genre: {figures['nonmusic_placed_in_a_genre']:.1%} of "
        f"{figures['nonmusic_files']} files (past the music detector: {figures['nonmusic_past_the_detector']:.1%}); "
        f"music sent to not-music: {figures['music_to_not_music']:.1%} of {figures['music_files']} files "
        f"(detector grouped by source, {figures['repeats']} repeats).",
        "",
        "| kind | music? | files | called not-music | placed in a genre |",
        "|---|---|---|---|---|",
    ]
    for kind, row in figures["per_kind"].items():
        placed = "-" if row["placed_in_a_genre"] is None else f"{row['placed_in_a_genre']:.1%}"
        lines.append(
            f"| {kind} | {'yes' if row['music'] else 'no'} | {row['files']} | {row['not_music']:.1%} | {placed} |"
        )
    return lines
