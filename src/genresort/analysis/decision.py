"""From what the model heard to what happens to the file: a genre to sort by, or "unsure" for a person to decide.

Pure and small, and the one place that says what a decision looks like as JSON: the sorting log, `classify --json`
and `sort --dry-run` all print `decision_fields`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

UNSURE = "unsure"


@dataclass(frozen=True)
class Prediction:
    """The model's view of one file: every genre with its calibrated probability, most likely first."""

    ranking: tuple[tuple[str, float], ...]
    model_id: str

    @property
    def genre(self) -> str:
        return self.ranking[0][0]

    @property
    def confidence(self) -> float:
        return self.ranking[0][1]

    @property
    def top(self) -> tuple[tuple[str, float], ...]:
        return self.ranking[:3]


class DecisionKind(StrEnum):
    GENRE = "genre"  # sure enough to sort into the genre's folder
    UNSURE = "unsure"  # below the threshold: a person decides, helped by the top 3


@dataclass(frozen=True)
class Decision:
    kind: DecisionKind
    prediction: Prediction
    threshold: float

    @property
    def label(self) -> str:
        """The genre to sort by, or "unsure"."""
        return self.prediction.genre if self.kind is DecisionKind.GENRE else UNSURE


def decide(prediction: Prediction, threshold: float) -> Decision:
    """Sort by the most likely genre only when the model is confident enough to act alone."""
    kind = DecisionKind.GENRE if prediction.confidence >= threshold else DecisionKind.UNSURE
    return Decision(kind, prediction, threshold)


def decision_fields(decision: Decision) -> dict[str, object]:
    """The decision as JSON fields: `genre` is always the most likely one, `decision` what was done about it."""
    prediction = decision.prediction
    return {
        "genre": prediction.genre,
        "confidence": round(prediction.confidence, 4),
        "top": [[genre, round(probability, 4)] for genre, probability in prediction.top],
        "decision": decision.label,
        "threshold": round(decision.threshold, 4),
        "model": prediction.model_id,
    }
