"""GenreModel: load and verify the trained model, predict a file's genre with a confidence.

Every file of the model is plain numbers in JSON, read and verified by model_file.py: the classifier, the music
detector, and the placement check or the familiarity that say whether the top genre can be trusted.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from genresort.analysis.audio import WindowPlan, decode_analysis_windows
from genresort.analysis.decision import DecisionKind, Prediction, Thresholds, decide, settled_at_first_look
from genresort.analysis.explanation import Explanation, explain
from genresort.analysis.familiarity import Familiarity, parse_familiarity
from genresort.analysis.features.clip import (
    ClipFeatures,
    FeatureSet,
    clip_patches,
    extract_clip_features,
    feature_vector,
    first_look_places,
    joined_outputs,
    network_clip,
    run_networks,
)
from genresort.analysis.features.embedding import PATCH_FRAMES, MusicnnNetwork
from genresort.analysis.features.spectrogram import HOP_LENGTH, SAMPLE_RATE
from genresort.analysis.model_file import (
    LinearClassifier,
    ModelError,
    check_private,
    load_classifier,
    numbers,
    verified,
    verified_bytes,
)
from genresort.analysis.placement_check import CHECK_CLASSES, EVIDENCE, PlacementCheck, TagAgreement
from genresort.paths import CARD_JSON, DEFAULT_MODEL_DIR

MODEL_FILE = "genre_model.json"
CARD_MARKDOWN = "MODEL_CARD.md"
NETWORK_FOLDER = "musicnn"
#: The music detector's classes, in the order of its probabilities (training.music_detector.CLASSES).
DETECTOR_CLASSES = ("not-music", "music")
#: Seconds of sound in one of the networks' patches.
PATCH_SECONDS = PATCH_FRAMES * HOP_LENGTH / SAMPLE_RATE


def rank(probabilities: np.ndarray, genres: Sequence[str], model_id: str) -> Prediction:
    order = np.argsort(probabilities)[::-1]
    return Prediction(tuple((genres[index], float(probabilities[index])) for index in order), model_id)


def places_agree(place_probabilities: np.ndarray, genre: int | np.ndarray) -> np.ndarray:
    """Whether each place a first look heard, alone, finds `genre` (the first look's top genre) likeliest: a genre heard
    at one place only is not settled (deciding without this cost GTZAN's held-out accuracy 1.5 points).
    (places, genres) probabilities of one clip, or (places, clips, genres) with one genre per clip."""
    return (place_probabilities.argmax(axis=-1) == genre).all(axis=0)


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


def load_check(model_dir: Path, card: dict, classifier: LinearClassifier) -> PlacementCheck | None:
    """The placement check the card names, verified like the classifier and checked against it; None when the card
    names none (a model of a person's own genres, which real recordings cannot calibrate). The card's `genres` are
    those the check was calibrated on, when they are not all the model's (a model retrained with a person's own
    genres: see PlacementCheck)."""
    entry = card.get("placement_check")
    if entry is None:
        return None
    path = model_dir / entry["file"]
    check = load_classifier(path, entry["sha256"])
    features = len(classifier.scaler_mean)
    known = entry.get("genres", list(classifier.classes))
    if (
        not isinstance(known, list)
        or not all(isinstance(genre, str) for genre in known)
        or len(set(known)) != len(known)
        or not set(known) <= set(classifier.classes)
    ):
        raise ModelError(f"refusing to load {path}: the genres it knows {known} are not genres of the model")
    genres = len(known)
    try:
        columns = numbers(entry, "tag_columns", (None,))
        support = numbers(entry, "tag_support", (genres, len(columns)))
        threshold = float(entry["threshold"])
    except (ModelError, KeyError, TypeError, ValueError) as error:
        raise ModelError(f"refusing to load {path}: its model card entry is malformed ({error})") from error
    if check.classes != CHECK_CLASSES or len(check.scaler_mean) != len(EVIDENCE) + genres:
        raise ModelError(f"refusing to load {path}: it is not a placement check for the model's {genres} genres")
    if (columns != columns.round()).any() or not ((0 <= columns) & (columns < features)).all():
        raise ModelError(f"refusing to load {path}: its tag columns are not entries of the embedding vector")
    if not 0.0 <= threshold <= 1.0:
        raise ModelError(f"refusing to load {path}: its threshold {threshold} is not a probability")
    genre_columns = None
    if known != list(classifier.classes):
        genre_columns = np.array([classifier.classes.index(genre) for genre in known])
    return PlacementCheck(check, threshold, TagAgreement(columns.astype(int), support), genre_columns)


def load_familiarity(model_dir: Path, card: dict, classifier: LinearClassifier) -> Familiarity | None:
    """The familiarity the card names, verified like the classifier; None when the card names none (the shipped
    model: its placement check guards it, and familiarity flagged under 4% of real songs outside its taxonomy)."""
    entry = card.get("familiarity")
    if entry is None:
        return None
    path = model_dir / entry["file"]
    content = verified_bytes(path, entry["sha256"])
    try:
        familiarity = parse_familiarity(content)
    except ModelError as error:
        raise ModelError(f"refusing to load {path}: {error}; retrain the model (genresort train)") from error
    if len(familiarity.mean) != len(classifier.scaler_mean):
        raise ModelError(f"refusing to load {path}: it measures vectors of another length than the classifier's")
    return familiarity


class GenreModel:
    """The trained classifier with the networks and analysis plan it was trained with."""

    def __init__(
        self,
        model_dir: Path,
        card: dict,
        classifier: LinearClassifier,
        networks: list[MusicnnNetwork],
        detector: LinearClassifier | None = None,
        check: PlacementCheck | None = None,
        familiarity: Familiarity | None = None,
    ):
        self.model_dir = model_dir
        self.card = card
        self.classifier = classifier
        self.networks = networks
        self.detector = detector  # P(music) from the same vector; None for a model trained without one
        self.check = check  # P(the top genre is right), calibrated on real recordings; None: the confidence decides
        self.familiarity = familiarity  # how far a sound lies from the music learnt; None: the model cannot tell
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
            placement=None if check is None else check.threshold,
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
        detector, check = load_detector(model_dir, card), load_check(model_dir, card, classifier)
        familiarity = load_familiarity(model_dir, card, classifier)
        return cls(model_dir, card, classifier, networks, detector, check, familiarity)

    def predict_clip(self, clip: ClipFeatures) -> Prediction:
        return self.predict_vector(feature_vector(clip, self.feature_set, self.network_names))

    def predict_vector(self, vector: np.ndarray) -> Prediction:
        """The prediction for one clip's feature vector (training.fit measures the model on vectors it has)."""
        vectors = vector[np.newaxis, :]
        probabilities = self.classifier.predict_proba(vectors)
        music = None if self.detector is None else float(self.detector.predict_proba(vectors)[0, 1])
        placement = novelty = None
        if self.check is not None and self.check.judges(int(probabilities[0].argmax())):
            placement = float(self.check.probability(self.check.evidence(probabilities, vectors))[0])
        if self.familiarity is not None:
            novelty = float(self.familiarity.distance(vectors)[0] / self.familiarity.threshold)
        return replace(
            rank(probabilities[0], self.classifier.classes, self.model_id),
            music_probability=music,
            placement_probability=placement,
            novelty=novelty,
        )

    def listen(self, path: Path) -> tuple[ClipFeatures, float]:
        """A file's analysis windows heard by the networks, and how many seconds of sound they hold; raises
        AudioError for bad input."""
        windows = decode_analysis_windows(path, SAMPLE_RATE, self.window_plan)
        with_handcrafted = self.feature_set != FeatureSet.EMBEDDING
        heard = sum(len(window) for window in windows) / SAMPLE_RATE
        return extract_clip_features(windows, self.networks, with_handcrafted), heard

    def analyse(self, path: Path) -> Prediction:
        """Listen to a file's analysis windows and predict its genre; raises AudioError for bad input.

        The networks (nine tenths of the work) first hear a few of the windows' patches, and the rest only when
        the decision from those is not clearly settled (settled_at_first_look)."""
        if self.feature_set != FeatureSet.EMBEDDING:
            clip, heard = self.listen(path)
            return replace(self.predict_clip(clip), heard_seconds=heard)
        windows = decode_analysis_windows(path, SAMPLE_RATE, self.window_plan)
        heard = sum(len(window) for window in windows) / SAMPLE_RATE
        patches = clip_patches(windows)
        places = first_look_places(len(patches))
        if places is None:
            return replace(self.predict_clip(network_clip(run_networks(self.networks, patches))), heard_seconds=heard)
        first = np.unique(np.concatenate(places))
        first_outputs = run_networks(self.networks, patches[first])
        heard_places = [np.searchsorted(first, place) for place in places]  # each place's rows in first_outputs
        glance = self.settled_first_look(network_clip(first_outputs), heard_places)
        if glance is not None:
            return glance
        rest = run_networks(self.networks, np.delete(patches, first, axis=0))
        return replace(self.predict_clip(network_clip(joined_outputs(first_outputs, first, rest))), heard_seconds=heard)

    def settled_first_look(self, clip: ClipFeatures, places: list[np.ndarray]) -> Prediction | None:
        """The prediction from a first look at a clip (the patches of each place it heard), if it settles the
        decision: clear of every threshold by the margin and, for a genre, the top genre of every place alone."""
        heard = np.unique(np.concatenate(places))
        glance = replace(
            self.predict_vector(feature_vector(clip, self.feature_set, self.network_names, heard)),
            heard_seconds=PATCH_SECONDS * len(heard),
        )
        decision = decide(glance, self.thresholds)
        if not settled_at_first_look(decision):
            return None
        if decision.kind is DecisionKind.GENRE:
            vectors = np.stack([feature_vector(clip, self.feature_set, self.network_names, place) for place in places])
            if not places_agree(self.classifier.predict_proba(vectors), self.classifier.classes.index(glance.genre)):
                return None
        return glance

    def explain(self, path: Path) -> tuple[Prediction, Explanation]:
        """The prediction `analyse` makes, and why: what each window heard (all of them, even when a first look
        decided) and the networks' strongest tags."""
        clip, heard = self.listen(path)
        tags = {name: self.tag_names(name) for name in self.network_names}
        explanation = explain(clip, self.classifier, self.feature_set, self.network_names, tags)
        prediction = None
        places = first_look_places(sum(clip.window_patch_counts))
        if self.feature_set == FeatureSet.EMBEDDING and places is not None:
            prediction = self.settled_first_look(clip, places)
        return prediction or replace(self.predict_clip(clip), heard_seconds=heard), explanation

    def tag_names(self, network_name: str) -> list[str]:
        """A network's tags in its taggram's order, from the file beside it (tags_msd.txt for msd_musicnn)."""
        path = self.model_dir / NETWORK_FOLDER / f"tags_{network_name.split('_')[0]}.txt"
        try:
            return [line for line in path.read_text().splitlines() if line]
        except OSError as error:
            raise ModelError(f"cannot read the tags of {network_name} ({path}): {error.strerror}") from error
