"""The model's genres under the names a person chose: renamed ({"Hip-Hop": "Rap"}) or merged ({"Disco": "Pop"}).

Names are given after the decision, which is made in the model's own genres: its threshold was calibrated on
them. A name several genres merge into takes the probability of its likeliest member, not their sum, so the
ranking keeps its order and its confidence: a merge never turns an unsure file into a sorted one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from genresort.analysis.decision import Decision, Prediction

if TYPE_CHECKING:  # explanation imports numpy and the networks, which the daemon's parent process does without
    from genresort.analysis.explanation import Explanation


def named(decision: Decision, names: Mapping[str, str]) -> Decision:
    """`decision` with each genre of its ranking called by `names` (a genre not in it keeps its own name); the
    kind of decision and its thresholds are unchanged."""
    return replace(decision, prediction=named_prediction(decision.prediction, names))


def named_prediction(prediction: Prediction, names: Mapping[str, str]) -> Prediction:
    ranking: dict[str, float] = {}
    for genre, probability in prediction.ranking:
        name = names.get(genre, genre)
        ranking[name] = max(probability, ranking.get(name, probability))
    return replace(prediction, ranking=tuple(ranking.items()))


def named_explanation(explanation: Explanation, names: Mapping[str, str]) -> Explanation:
    """What each window heard, in the person's names too."""
    windows = tuple(replace(verdict, genre=names.get(verdict.genre, verdict.genre)) for verdict in explanation.windows)
    return replace(explanation, windows=windows)
