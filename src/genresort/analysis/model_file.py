"""Plain numbers in JSON: every file of a model is read with `json.loads` alone, checked number by number, and
refused unless it is its owner's and the file its model card describes (sha256). Loading a model cannot run code,
and the analysis needs numpy but not scikit-learn.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genresort.analysis.errors import ModelError
from genresort.digest import sha256_file

MODEL_FORMAT = "genresort-linear-classifier/1"
FORMULA = (
    "probabilities = softmax(inverse_temperature * logits), logits = ((x - scaler_mean) / scaler_scale) @ weights "
    "+ intercept, computed in the float type of x (float32); with two classes weights has one column, whose logit d "
    "stands for the logits (-d, d)"
)


@dataclass(frozen=True)
class LinearClassifier:
    """Standard scaling, a linear layer and a softmax at a calibrated temperature: what scikit-learn's Pipeline
    of StandardScaler and CalibratedClassifierCV(LogisticRegression, method="temperature", ensemble=False)
    computes, as plain arrays (training.classifier.export_classifier makes one; a test proves them equal)."""

    classes: tuple[str, ...]
    scaler_mean: np.ndarray  # (features,)
    scaler_scale: np.ndarray  # (features,)
    weights: np.ndarray  # (features, classes), or (features, 1) for two classes: LogisticRegression's coef_.T
    intercept: np.ndarray  # (classes,), or (1,) for two classes
    inverse_temperature: float

    def predict_proba(self, vectors: np.ndarray) -> np.ndarray:
        """(rows, features) -> (rows, classes). The arithmetic stays in the vectors' float type, as scikit-learn's
        does (the classifier was fitted on float32 vectors, so its weights are float32 values), and the weights
        are laid out as scikit-learn's coef_.T is, so that BLAS adds the same numbers in the same order."""
        dtype = vectors.dtype
        scaled = (vectors - self.scaler_mean.astype(dtype)) / self.scaler_scale.astype(dtype)
        decision = scaled @ self.weights.astype(dtype) + self.intercept.astype(dtype)
        logits = np.concatenate([-decision, decision], axis=1) if len(self.classes) == 2 else decision
        tempered = dtype.type(self.inverse_temperature) * logits
        exponentials = np.exp(tempered - tempered.max(axis=1, keepdims=True))
        return exponentials / exponentials.sum(axis=1, keepdims=True)

    def to_json(self) -> str:
        """Every number in full precision (Python writes the shortest text that reads back to the same float)."""
        document = {
            "format": MODEL_FORMAT,
            "formula": FORMULA,
            "classes": list(self.classes),
            "scaler_mean": self.scaler_mean.tolist(),
            "scaler_scale": self.scaler_scale.tolist(),
            "weights": self.weights.tolist(),
            "intercept": self.intercept.tolist(),
            "inverse_temperature": self.inverse_temperature,
        }
        return json.dumps(document, allow_nan=False) + "\n"


def refuse_constant(name: str) -> None:
    raise ModelError(f"it holds {name}, which is not a number a model can use")


def numbers(document: dict, key: str, shape: tuple[int | None, ...]) -> np.ndarray:
    """The array under `key`, refused unless it is finite numbers of this shape (None: any length)."""
    if key not in document:
        raise ModelError(f"'{key}' is missing")
    try:
        values = np.array(document[key])
    except ValueError as error:
        raise ModelError(f"'{key}' is not a rectangular array of numbers") from error
    if values.dtype.kind not in "iuf" or values.ndim != len(shape):
        raise ModelError(f"'{key}' is not an array of numbers with {len(shape)} dimension(s)")
    if any(expected is not None and actual != expected for actual, expected in zip(values.shape, shape, strict=True)):
        raise ModelError(f"'{key}' has shape {values.shape}, expected {tuple(n or '*' for n in shape)}")
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise ModelError(f"'{key}' holds a number too large to be finite")
    return values


def read_document(text: bytes | str, file_format: str) -> dict:
    """The JSON object of a model file that says it is `file_format`; ModelError if it is not."""
    try:
        document = json.loads(text, parse_constant=refuse_constant)
    except ValueError as error:
        raise ModelError(f"it is not valid UTF-8 JSON ({error})") from error
    if not isinstance(document, dict) or document.get("format") != file_format:
        raise ModelError(f"its format is not {file_format}")
    return document


def parse_classifier(text: bytes | str) -> LinearClassifier:
    """A LinearClassifier from its JSON; raises ModelError saying what is wrong with a malformed one."""
    document = read_document(text, MODEL_FORMAT)
    classes = document.get("classes")
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(name, str) for name in classes):
        raise ModelError("'classes' is not a list of at least two genre names")
    if len(set(classes)) != len(classes):
        raise ModelError("'classes' names a genre twice")
    columns = 1 if len(classes) == 2 else len(classes)
    weights = numbers(document, "weights", (None, columns))
    features = weights.shape[0]
    scale = numbers(document, "scaler_scale", (features,))
    if (scale <= 0).any():
        raise ModelError("'scaler_scale' holds a scale that is not positive")
    inverse_temperature = document.get("inverse_temperature")
    if not isinstance(inverse_temperature, int | float) or not 0 < inverse_temperature < math.inf:
        raise ModelError("'inverse_temperature' is not a positive finite number")
    return LinearClassifier(
        classes=tuple(classes),
        scaler_mean=numbers(document, "scaler_mean", (features,)),
        scaler_scale=scale,
        weights=weights,
        intercept=numbers(document, "intercept", (columns,)),
        inverse_temperature=float(inverse_temperature),
    )


def check_private(path: Path) -> None:
    """Refuse a file or folder that another user could have written: it would let them decide where your files go."""
    status = os.stat(path)
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ModelError(
            f"refusing to load {path}: it is writable by other users (mode {stat.filemode(status.st_mode)}); "
            f"if you trust it, run: chmod go-w {path}"
        )
    if status.st_uid not in (0, os.getuid()):
        raise ModelError(
            f"refusing to load {path}: it belongs to user id {status.st_uid}, not to you or root; "
            "a model decides where your files go, so it must be yours"
        )


def check_sha256(path: Path, actual: str, expected: str) -> None:
    if actual != expected:
        raise ModelError(
            f"refusing to load {path}: its sha256 is {actual}, but the model card says {expected}; "
            "the file was changed or replaced after training. Retrain it or restore the original."
        )


def verified(path: Path, expected_sha256: str) -> Path:
    check_private(path)
    check_sha256(path, sha256_file(path), expected_sha256)
    return path


def verified_bytes(path: Path, expected_sha256: str) -> bytes:
    """The file's content, read once: what is parsed is exactly what was hashed."""
    check_private(path)
    content = path.read_bytes()
    check_sha256(path, hashlib.sha256(content).hexdigest(), expected_sha256)
    return content


def load_classifier(path: Path, expected_sha256: str) -> LinearClassifier:
    if path.suffix != ".json":
        raise ModelError(
            f"refusing to load {path}: it is a scikit-learn pickle from an older genresort, and loading a pickle "
            "can run code; retrain the model (genresort train) to get one stored as plain JSON"
        )
    content = verified_bytes(path, expected_sha256)
    try:
        return parse_classifier(content)
    except ModelError as error:
        raise ModelError(f"refusing to load {path}: {error}; retrain the model (genresort train)") from error
