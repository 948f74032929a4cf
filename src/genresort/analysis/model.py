"""GenreModel: load and verify the trained model, predict a file's genre with a confidence.

The classifier is stored as plain numbers in JSON (`LinearClassifier`), read with `json.loads` alone: loading a
model cannot run code, and the analysis needs numpy but not scikit-learn. The model still decides where a person's
files go, so before using it we check that nobody but its owner can have changed it (permissions) and that it is
the file the model card describes (sha256).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from genresort.analysis.audio import WindowPlan, decode_analysis_windows
from genresort.analysis.decision import Prediction, Thresholds
from genresort.analysis.features.clip import ClipFeatures, FeatureSet, extract_clip_features, feature_vector
from genresort.analysis.features.embedding import MusicnnNetwork
from genresort.analysis.features.spectrogram import SAMPLE_RATE
from genresort.digest import sha256_file
from genresort.paths import DEFAULT_MODEL_DIR

MODEL_FILE = "genre_model.json"
#: The music detector's classes, in the order of its probabilities (training.music_detector.CLASSES).
DETECTOR_CLASSES = ("not-music", "music")
MODEL_FORMAT = "genresort-linear-classifier/1"
CARD_JSON = "model_card.json"
CARD_MARKDOWN = "MODEL_CARD.md"
NETWORK_FOLDER = "musicnn"
FORMULA = (
    "probabilities = softmax(inverse_temperature * logits), logits = ((x - scaler_mean) / scaler_scale) @ weights "
    "+ intercept, computed in the float type of x (float32); with two classes weights has one column, whose logit d "
    "stands for the logits (-d, d)"
)


class ModelError(Exception):
    """The model cannot be used; the message says what to do."""


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


def parse_classifier(text: bytes | str) -> LinearClassifier:
    """A LinearClassifier from its JSON; raises ModelError saying what is wrong with a malformed one."""
    try:
        document = json.loads(text, parse_constant=refuse_constant)
    except ValueError as error:
        raise ModelError(f"it is not valid UTF-8 JSON ({error})") from error
    if not isinstance(document, dict) or document.get("format") != MODEL_FORMAT:
        raise ModelError(f"its format is not {MODEL_FORMAT}")
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


def rank(probabilities: np.ndarray, genres: Sequence[str], model_id: str) -> Prediction:
    order = np.argsort(probabilities)[::-1]
    return Prediction(tuple((genres[index], float(probabilities[index])) for index in order), model_id)


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


def load_detector(model_dir: Path, card: dict) -> LinearClassifier | None:
    """The music detector the card names, verified like the classifier; None when the card names none."""
    entry = card.get("music_detector")
    if entry is None:
        return None
    path = model_dir / entry["file"]
    detector = load_classifier(path, entry["sha256"])
    if detector.classes != DETECTOR_CLASSES:
        raise ModelError(f"refusing to load {path}: its classes are {detector.classes}, not {DETECTOR_CLASSES}")
    return detector


class GenreModel:
    """The trained classifier with the networks and analysis plan it was trained with."""

    def __init__(
        self,
        model_dir: Path,
        card: dict,
        classifier: LinearClassifier,
        networks: list[MusicnnNetwork],
        detector: LinearClassifier | None = None,
    ):
        self.model_dir = model_dir
        self.card = card
        self.classifier = classifier
        self.networks = networks
        self.detector = detector  # P(music) from the same vector; None for a model trained without one
        self.genres: list[str] = list(card["genres"])
        self.feature_set = FeatureSet(card["feature_set"])
        self.network_names: list[str] = [network["name"] for network in card["networks"]]
        self.window_plan = WindowPlan(**card["window_plan"])
        self.threshold: float = float(card["threshold"]["value"])
        music = card.get("music_detector", {})
        self.thresholds = Thresholds(
            confidence=self.threshold,
            music=float(music.get("threshold", 0.0)),
            music_sure=float(music.get("sure", music.get("threshold", 0.0))),
            shortest_not_music_seconds=float(music.get("shortest_seconds", 0.0)),
        )
        self.model_id: str = f"{card['model_id']} sha256:{card['model_file']['sha256'][:12]}"

    @classmethod
    def load(cls, model_dir: Path = DEFAULT_MODEL_DIR) -> GenreModel:
        model_dir = Path(model_dir)
        card_path = model_dir / CARD_JSON
        if not card_path.is_file():
            raise ModelError(f"no model in {model_dir}: {CARD_JSON} is missing (train one with: genresort train)")
        check_private(model_dir)
        check_private(card_path)
        card = json.loads(card_path.read_text())
        if FeatureSet(card["feature_set"]) != FeatureSet.EMBEDDING and importlib.util.find_spec("librosa") is None:
            raise ModelError(
                f"the model in {model_dir} uses the handcrafted features, which need librosa: install "
                "genresort[train] (and, under systemd, turn MemoryDenyWriteExecute off: librosa's numba needs it)"
            )
        model_path = model_dir / card["model_file"]["name"]
        classifier = load_classifier(model_path, card["model_file"]["sha256"])
        if list(classifier.classes) != list(card["genres"]):
            raise ModelError(
                f"refusing to load {model_path}: its genres {list(classifier.classes)} are not the model card's "
                f"{card['genres']}; retrain the model (genresort train)"
            )
        networks = [
            MusicnnNetwork(verified(model_dir / network["file"], network["sha256"])) for network in card["networks"]
        ]
        return cls(model_dir, card, classifier, networks, load_detector(model_dir, card))

    def predict_clip(self, clip: ClipFeatures) -> Prediction:
        vector = feature_vector(clip, self.feature_set, self.network_names)
        probabilities = self.classifier.predict_proba(vector[np.newaxis, :])[0]
        music = None if self.detector is None else float(self.detector.predict_proba(vector[np.newaxis, :])[0, 1])
        return replace(rank(probabilities, self.classifier.classes, self.model_id), music_probability=music)

    def analyse(self, path: Path) -> Prediction:
        """Listen to a file's analysis windows and predict its genre; raises AudioError for bad input."""
        windows = decode_analysis_windows(path, SAMPLE_RATE, self.window_plan)
        with_handcrafted = self.feature_set != FeatureSet.EMBEDDING
        prediction = self.predict_clip(extract_clip_features(windows, self.networks, with_handcrafted))
        return replace(prediction, heard_seconds=sum(len(window) for window in windows) / SAMPLE_RATE)
