"""Familiarity: whether a file's embedding lies near the music a genre model learnt from.

A genre model answers with one of its genres whatever it hears: one trained on Classical and Metal alone calls a
rap song Metal at 1.0. Its probabilities cannot say "none of these", but the distance to the clips it learnt from
can. The clips are kept, projected on a few principal axes of the standardised embedding; a file whose mean
distance to its nearest clips there is beyond the threshold (chosen on artists held out while fitting, in
training.familiarity) is unfamiliar. Stored as plain numbers in JSON, like the classifier: read with `json.loads`
alone, applied with numpy.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from genresort.analysis.model_file import ModelError, numbers, read_document

FAMILIARITY_FORMAT = "genresort-familiarity/1"
FORMULA = (
    "distance = mean Euclidean distance from ((x - mean) / scale) @ components to its `neighbours` nearest rows of "
    "references; the file is familiar when distance <= threshold"
)


@dataclass(frozen=True)
class Familiarity:
    """The training clips' neighbourhood in a standardised, principal-axes view of the embedding."""

    mean: np.ndarray  # (features,)
    scale: np.ndarray  # (features,), all > 0
    components: np.ndarray  # (features, dimensions): principal axes of the standardised training vectors
    references: np.ndarray  # (clips, dimensions): the training clips, projected
    neighbours: int  # the distance is the mean over this many nearest references
    threshold: float  # a file farther than this is unfamiliar

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """(rows, features) -> (rows, dimensions), in float64 whatever the vectors' type."""
        return ((np.asarray(vectors, dtype=np.float64) - self.mean) / self.scale) @ self.components

    def distance(self, vectors: np.ndarray) -> np.ndarray:
        """(rows, features) -> (rows,): mean Euclidean distance to the `neighbours` nearest references."""
        projected = self.project(vectors)
        distances = np.linalg.norm(projected[:, np.newaxis, :] - self.references[np.newaxis, :, :], axis=2)
        nearest = np.partition(distances, self.neighbours - 1, axis=1)[:, : self.neighbours]
        return nearest.mean(axis=1)

    def familiar(self, vectors: np.ndarray) -> np.ndarray:
        """(rows, features) -> (rows,) booleans: True where the distance is within the threshold."""
        return self.distance(vectors) <= self.threshold

    def to_json(self) -> str:
        """Every number in full precision (Python writes the shortest text that reads back to the same float)."""
        document = {
            "format": FAMILIARITY_FORMAT,
            "formula": FORMULA,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "components": self.components.tolist(),
            "references": self.references.tolist(),
            "neighbours": self.neighbours,
            "threshold": self.threshold,
        }
        return json.dumps(document, allow_nan=False) + "\n"


def parse_familiarity(text: bytes | str) -> Familiarity:
    """A Familiarity from its JSON; raises ModelError saying what is wrong with a malformed one."""
    document = read_document(text, FAMILIARITY_FORMAT)
    components = numbers(document, "components", (None, None))
    features, dimensions = components.shape
    if features == 0 or dimensions == 0:
        raise ModelError(f"'components' has shape {components.shape}, which holds no axis")
    scale = numbers(document, "scale", (features,))
    if (scale <= 0).any():
        raise ModelError("'scale' holds a scale that is not positive")
    references = numbers(document, "references", (None, dimensions))
    neighbours = document.get("neighbours")
    if isinstance(neighbours, bool) or not isinstance(neighbours, int) or not 1 <= neighbours <= len(references):
        raise ModelError(f"'neighbours' is not a whole number from 1 to the {len(references)} references")
    threshold = document.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold < math.inf:
        raise ModelError("'threshold' is not a positive finite number")
    return Familiarity(
        mean=numbers(document, "mean", (features,)),
        scale=scale,
        components=components,
        references=references,
        neighbours=neighbours,
        threshold=float(threshold),
    )
