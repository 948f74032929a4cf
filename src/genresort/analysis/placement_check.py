"""The placement check: is the top genre right? Judged from more than its probability, and calibrated on real
recordings (training/realworld.py fits it), because a probability calibrated on GTZAN clips protects nothing
outside them: on real songs a Metal on top is right 97% of the time, a Blues 24%.

Pure: arrays in, arrays out. The model card stores the tag agreement's arrays and the threshold; the check's
logistic regression is a LinearClassifier file, verified like the genre classifier.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genresort.analysis.model_file import LinearClassifier

#: What a placement is checked on: these columns, then one per genre (1 for the top genre, 0 for the others).
EVIDENCE = ("confidence", "margin", "tag_agreement")
#: The check's classes, in the order of its probabilities.
CHECK_CLASSES = ("wrong", "right")


@dataclass(frozen=True)
class TagAgreement:
    """The share of the MSD tagger's genre-tag probability that speaks for a genre: for a clip and a genre of ours,
    sum(tag mean * support) / sum(tag mean) over the tagger's genre tags. It is 0 for a genre no tag speaks for
    (Classical and Reggae: the MSD tags name neither); the check's bias per genre makes up for that."""

    columns: np.ndarray  # (tags,) entries of the embedding vector holding each genre tag's clip mean
    support: np.ndarray  # (genres, tags) 1.0 where the tag's published genre is compatible with our genre

    def of(self, vectors: np.ndarray, genre_index: np.ndarray) -> np.ndarray:
        """(files, features) vectors and the index of one genre per file -> (files,) agreement in [0, 1]."""
        mass = vectors[:, self.columns]
        return (mass * self.support[genre_index]).sum(axis=1) / np.maximum(mass.sum(axis=1), 1e-12)


def evidence(
    probabilities: np.ndarray, vectors: np.ndarray, agreement: TagAgreement, genre_columns: np.ndarray | None = None
) -> np.ndarray:
    """(files, genres) probabilities and (files, features) embedding vectors -> (files, len(EVIDENCE) + genres the
    check knows): the top genre's probability, its lead over the second, the tagger's agreement with it, and which
    genre it is. `genre_columns` are the columns of the genres the check knows, in its order (None: all); the rows of
    files whose top genre is none of them mean nothing."""
    columns = np.arange(probabilities.shape[1]) if genre_columns is None else genre_columns
    ranked = np.sort(probabilities, axis=1)
    top = probabilities[:, columns].argmax(axis=1)
    return np.column_stack(
        [
            ranked[:, -1],
            ranked[:, -1] - ranked[:, -2],
            agreement.of(vectors, top),
            np.eye(len(columns))[top],
        ]
    )


@dataclass(frozen=True)
class PlacementCheck:
    """P(the top genre is right) from a file's evidence rows: a two-class LinearClassifier (scaling, one weight
    vector, a logistic). The top genre is placed when it reaches `threshold`; otherwise the file is unsure.

    A model retrained with a person's own genres has genres the check was never calibrated on (no real song tells
    how often a "Synthwave" on top is right): `genre_columns` names the classifier's columns of the genres it knows,
    and a file whose top genre is another is not judged by it (GenreModel leaves its placement probability out, and
    the confidence threshold decides)."""

    classifier: LinearClassifier
    threshold: float
    agreement: TagAgreement
    genre_columns: np.ndarray | None = None  # the classifier's columns of the genres the check knows; None: all

    def probability(self, evidence_rows: np.ndarray) -> np.ndarray:
        return self.classifier.predict_proba(evidence_rows)[:, 1]

    def places(self, evidence_rows: np.ndarray) -> np.ndarray:
        return self.probability(evidence_rows) >= self.threshold

    def evidence(self, probabilities: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        return evidence(probabilities, vectors, self.agreement, self.genre_columns)

    def judges(self, genre_column: int) -> bool:
        """Whether the check knows the genre of this column of the classifier."""
        return self.genre_columns is None or genre_column in self.genre_columns
