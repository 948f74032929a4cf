"""GenreModel: load and verify the trained model, predict a file's genre with a confidence.

A joblib file is a pickle and runs code when loaded, so before loading we check that nobody but its owner
can have changed it (permissions) and that it is the file the model card describes (sha256).
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
from pathlib import Path

import joblib
import numpy as np

from genresort.analysis.audio import WindowPlan, decode_analysis_windows
from genresort.analysis.decision import Prediction
from genresort.analysis.features.clip import ClipFeatures, FeatureSet, extract_clip_features, feature_vector
from genresort.analysis.features.embedding import MusicnnNetwork
from genresort.analysis.features.spectrogram import SAMPLE_RATE
from genresort.digest import sha256_file
from genresort.paths import DEFAULT_MODEL_DIR

MODEL_FILE = "genre_model.joblib"
CARD_JSON = "model_card.json"
CARD_MARKDOWN = "MODEL_CARD.md"
NETWORK_FOLDER = "musicnn"


class ModelError(Exception):
    """The model cannot be used; the message says what to do."""


def rank(probabilities: np.ndarray, genres: list[str], model_id: str) -> Prediction:
    order = np.argsort(probabilities)[::-1]
    return Prediction(tuple((genres[index], float(probabilities[index])) for index in order), model_id)


def check_private(path: Path) -> None:
    """Refuse a file or folder that another user could have written: it would let them run code here."""
    status = os.stat(path)
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ModelError(
            f"refusing to load {path}: it is writable by other users (mode {stat.filemode(status.st_mode)}); "
            f"if you trust it, run: chmod go-w {path}"
        )
    if status.st_uid not in (0, os.getuid()):
        raise ModelError(
            f"refusing to load {path}: it belongs to user id {status.st_uid}, not to you or root; "
            "a model runs code when loaded, so it must be yours"
        )


def verified(path: Path, expected_sha256: str) -> Path:
    check_private(path)
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise ModelError(
            f"refusing to load {path}: its sha256 is {actual}, but the model card says {expected_sha256}; "
            "the file was changed or replaced after training. Retrain it or restore the original."
        )
    return path


class GenreModel:
    """The trained classifier with the networks and analysis plan it was trained with."""

    def __init__(self, model_dir: Path, card: dict, pipeline, networks: list[MusicnnNetwork]) -> None:
        self.model_dir = model_dir
        self.card = card
        self.pipeline = pipeline
        self.networks = networks
        self.genres: list[str] = list(card["genres"])
        self.feature_set = FeatureSet(card["feature_set"])
        self.network_names: list[str] = [network["name"] for network in card["networks"]]
        self.window_plan = WindowPlan(**card["window_plan"])
        self.threshold: float = float(card["threshold"]["value"])
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
        pipeline = joblib.load(verified(model_dir / card["model_file"]["name"], card["model_file"]["sha256"]))
        networks = [
            MusicnnNetwork(verified(model_dir / network["file"], network["sha256"])) for network in card["networks"]
        ]
        return cls(model_dir, card, pipeline, networks)

    def predict_clip(self, clip: ClipFeatures) -> Prediction:
        vector = feature_vector(clip, self.feature_set, self.network_names)
        probabilities = self.pipeline.predict_proba(vector[np.newaxis, :])[0]
        return rank(probabilities, [str(genre) for genre in self.pipeline.classes_], self.model_id)

    def analyse(self, path: Path) -> Prediction:
        """Listen to a file's analysis windows and predict its genre; raises AudioError for bad input."""
        windows = decode_analysis_windows(path, SAMPLE_RATE, self.window_plan)
        with_handcrafted = self.feature_set != FeatureSet.EMBEDDING
        return self.predict_clip(extract_clip_features(windows, self.networks, with_handcrafted))
