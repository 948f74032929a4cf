"""The model's genres under the names a person chose: renamed ({"Hip-Hop": "Rap"}) or merged ({"Disco": "Pop"}).

Names are given after the decision, which is made in the model's own genres: its threshold was calibrated on
them. A name several genres merge into takes the probability of its likeliest member, not their sum, so the
ranking keeps its order and its confidence: a merge never turns an unsure file into a sorted one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from genresort.analysis.decision import Decision


def named(decision: Decision, names: Mapping[str, str]) -> Decision:
    """`decision` with each genre of its ranking called by `names` (a genre not in it keeps its own name); the
    kind of decision and its thresholds are unchanged."""
    ranking: dict[str, float] = {}
    for genre, probability in decision.prediction.ranking:
        name = names.get(genre, genre)
        ranking[name] = max(probability, ranking.get(name, probability))
    return replace(decision, prediction=replace(decision.prediction, ranking=tuple(ranking.items())))
