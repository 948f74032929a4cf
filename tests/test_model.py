"""The model file is plain numbers in JSON: loading it runs no code and needs no scikit-learn, and a changed or
malformed one is refused with a message that says what is wrong."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import shared_clip, write_mp3
from genresort.analysis.decision import decide
from genresort.analysis.model import CARD_JSON, DETECTOR_CLASSES, MODEL_FILE, PATCH_SECONDS, GenreModel, places_agree
from genresort.analysis.model_file import ModelError
from genresort.paths import DEFAULT_MODEL_DIR


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    """The shipped model folder, copied so that a test may spoil it."""
    return Path(shutil.copytree(DEFAULT_MODEL_DIR, tmp_path / "model"))


def rewrite_model(model_dir: Path, change: Callable[[dict], None], update_card: bool = True) -> None:
    """Change the model file's JSON; with `update_card`, record its new sha256 in the card, as a retrained model
    would have it, so that what is refused is the content itself."""
    model_path = model_dir / MODEL_FILE
    document = json.loads(model_path.read_text())
    change(document)
    model_path.write_text(json.dumps(document))
    if update_card:
        card = json.loads((model_dir / CARD_JSON).read_text())
        card["model_file"]["sha256"] = hashlib.sha256(model_path.read_bytes()).hexdigest()
        (model_dir / CARD_JSON).write_text(json.dumps(card))


def test_one_weight_changed_in_the_model_file_is_refused_by_its_sha256(model_copy: Path) -> None:
    def nudge(document: dict) -> None:
        document["weights"][7][3] += 1e-6

    rewrite_model(model_copy, nudge, update_card=False)
    with pytest.raises(ModelError, match="sha256 .* but the model card says"):
        GenreModel.load(model_copy)


def drop_intercept(document: dict) -> None:
    del document["intercept"]


def shorten_mean(document: dict) -> None:
    document["scaler_mean"].pop()


def put_nan(document: dict) -> None:
    document["weights"][0][0] = float("nan")


def put_text(document: dict) -> None:
    document["scaler_scale"][5] = "1.0"


def zero_scale(document: dict) -> None:
    document["scaler_scale"][5] = 0.0


def swap_classes(document: dict) -> None:
    document["classes"][:2] = reversed(document["classes"][:2])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (drop_intercept, "'intercept' is missing"),
        (shorten_mean, r"'scaler_mean' has shape \(\d+,\), expected \(\d+,\)"),
        (put_nan, "holds NaN"),
        (put_text, "'scaler_scale' is not an array of numbers"),
        (zero_scale, "'scaler_scale' holds a scale that is not positive"),
        (swap_classes, "its genres .* are not the model card's"),
    ],
)
def test_a_malformed_model_file_is_refused_saying_what_is_wrong(
    model_copy: Path, change: Callable[[dict], None], message: str
) -> None:
    rewrite_model(model_copy, change)
    with pytest.raises(ModelError, match=message) as refused:
        GenreModel.load(model_copy)
    assert str(model_copy / MODEL_FILE) in str(refused.value)


def test_a_model_from_before_is_refused_unread_because_it_is_a_pickle(model_copy: Path) -> None:
    card = json.loads((model_copy / CARD_JSON).read_text())
    pickle = model_copy / "genre_model.joblib"
    pickle.write_bytes(b"\x80\x04 would run code")
    card["model_file"] = {"name": pickle.name, "sha256": hashlib.sha256(pickle.read_bytes()).hexdigest()}
    (model_copy / CARD_JSON).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="pickle .* retrain"):
        GenreModel.load(model_copy)


def test_the_analysis_loads_and_classifies_without_scikit_learn_or_joblib(tmp_path: Path) -> None:
    """In a fresh interpreter, as an analysis worker starts: the shipped model, a real MP3, and after both, no
    scikit-learn or joblib among the imported modules."""
    song = write_mp3(tmp_path / "song.mp3", seconds=8)
    code = f"""
import json, sys
from genresort.analysis.model import GenreModel
prediction = GenreModel.load().analyse(__import__("pathlib").Path({str(song)!r}))
print(json.dumps({{"genre": prediction.genre, "total": sum(p for _, p in prediction.ranking),
                  "imported": [name for name in ("sklearn", "joblib") if name in sys.modules]}}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome["imported"] == []
    assert outcome["genre"] in GenreModel.load().genres and outcome["total"] == pytest.approx(1.0, abs=1e-5)


# --- the music detector ------------------------------------------------------------------------------------------


def test_the_shipped_model_measures_music_and_carries_its_thresholds() -> None:
    model = GenreModel.load()
    assert model.detector is not None and model.detector.classes == DETECTOR_CLASSES
    assert 0 < model.thresholds.music <= model.thresholds.music_sure < 1
    assert model.thresholds.confidence == model.threshold


def test_a_changed_music_detector_is_refused_by_its_sha256(model_copy: Path) -> None:
    card = json.loads((model_copy / CARD_JSON).read_text())
    detector = model_copy / card["music_detector"]["file"]
    document = json.loads(detector.read_text())
    document["intercept"][0] += 1.0  # a detector that calls more things music
    detector.write_text(json.dumps(document))
    with pytest.raises(ModelError, match="sha256"):
        GenreModel.load(model_copy)


def test_a_music_detector_of_other_classes_is_refused(model_copy: Path) -> None:
    card = json.loads((model_copy / CARD_JSON).read_text())
    detector = model_copy / card["music_detector"]["file"]
    document = json.loads(detector.read_text())
    document["classes"] = ["music", "not-music"]  # swapped: P(music) would be read from the wrong column
    detector.write_text(json.dumps(document))
    card["music_detector"]["sha256"] = hashlib.sha256(detector.read_bytes()).hexdigest()
    (model_copy / CARD_JSON).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="classes"):
        GenreModel.load(model_copy)


# --- the placement check ---------------------------------------------------------------------------------------


def test_the_shipped_model_places_by_a_check_calibrated_on_real_songs(tmp_path: Path) -> None:
    model = GenreModel.load()
    card = model.card["placement_check"]
    assert model.check is not None and model.thresholds.placement == card["threshold"]
    assert card["figures"]["precision"] >= 0.85 and card["figures"]["coverage"] >= 0.4
    prediction = model.analyse(write_mp3(tmp_path / "song.mp3", seconds=8))
    assert 0.0 <= prediction.placement_probability <= 1.0


def spoil_check(model_dir: Path, change_file: Callable[[dict], None], change_entry: Callable[[dict], None]) -> None:
    """Change the placement check's file and card entry, recording the file's new sha256 as a retrained model
    would: what is refused is the content itself."""
    card = json.loads((model_dir / CARD_JSON).read_text())
    path = model_dir / card["placement_check"]["file"]
    document = json.loads(path.read_text())
    change_file(document)
    path.write_text(json.dumps(document))
    card["placement_check"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    change_entry(card["placement_check"])
    (model_dir / CARD_JSON).write_text(json.dumps(card))


def test_a_changed_placement_check_is_refused_by_its_sha256(model_copy: Path) -> None:
    card = json.loads((model_copy / CARD_JSON).read_text())
    path = model_copy / card["placement_check"]["file"]
    document = json.loads(path.read_text())
    document["intercept"][0] += 1.0  # a check that places more
    path.write_text(json.dumps(document))
    with pytest.raises(ModelError, match="sha256"):
        GenreModel.load(model_copy)


def unchanged(document: dict) -> None:
    pass


def drop_a_weight(document: dict) -> None:
    document["weights"].pop()
    document["scaler_mean"].pop()
    document["scaler_scale"].pop()


def column_past_the_vector(entry: dict) -> None:
    entry["tag_columns"][0] = 10**6


def threshold_above_one(entry: dict) -> None:
    entry["threshold"] = 1.5


def support_of_other_genres(entry: dict) -> None:
    entry["tag_support"].pop()


@pytest.mark.parametrize(
    ("change_file", "change_entry", "message"),
    [
        (drop_a_weight, unchanged, "not a placement check for the model's 10 genres"),
        (unchanged, column_past_the_vector, "tag columns are not entries of the embedding vector"),
        (unchanged, threshold_above_one, "threshold 1.5 is not a probability"),
        (unchanged, support_of_other_genres, "card entry is malformed"),
    ],
)
def test_a_placement_check_that_does_not_fit_the_model_is_refused(
    model_copy: Path, change_file: Callable, change_entry: Callable, message: str
) -> None:
    spoil_check(model_copy, change_file, change_entry)
    with pytest.raises(ModelError, match=message):
        GenreModel.load(model_copy)


def test_a_clear_clip_is_decided_at_first_look_as_hearing_all_of_it_decides() -> None:
    model = GenreModel.load()
    clip = shared_clip("metal", 0)
    prediction = model.analyse(clip)
    assert prediction.heard_seconds == pytest.approx(4 * PATCH_SECONDS)  # two places, two patches each
    whole = model.predict_clip(model.listen(clip)[0])
    assert decide(prediction, model.thresholds).label == decide(whole, model.thresholds).label == "Metal"


def test_a_file_the_first_look_does_not_settle_is_heard_whole() -> None:
    model = GenreModel.load()
    clip = shared_clip("blues", 0)  # Blues is rarely placed on a first look: a Blues on top is often wrong
    prediction = model.analyse(clip)
    assert prediction.heard_seconds == pytest.approx(30, abs=0.1)
    whole = model.predict_clip(model.listen(clip)[0])
    assert prediction.ranking == whole.ranking  # heard in two parts, to the last bit as in one go


def test_a_genre_heard_at_one_place_only_is_not_settled_at_first_look(tmp_path: Path) -> None:
    model = GenreModel.load()
    metal, rate = soundfile.read(shared_clip("metal", 0), dtype="float32")
    reggae, _ = soundfile.read(shared_clip("reggae", 0), dtype="float32")
    # a minute, heard in four 6 s windows, the first look at the first and the third: it finds Metal clearly (the check
    # passes with the margin to spare), but the third window alone hears Reggae
    track = tmp_path / "medley.mp3"
    soundfile.write(track, np.concatenate([metal, reggae]), rate, format="MP3")
    settled = tmp_path / "metal.mp3"
    soundfile.write(settled, np.concatenate([metal, metal[::-1]]), rate, format="MP3")
    assert model.analyse(settled).heard_seconds == pytest.approx(4 * PATCH_SECONDS)
    assert model.analyse(track).heard_seconds == pytest.approx(24, abs=0.1)


def test_places_agree_when_each_finds_the_first_looks_top_genre_likeliest() -> None:
    places = np.array([[[0.7, 0.3], [0.2, 0.8]], [[0.6, 0.4], [0.6, 0.4]]])  # (places, clips, genres)
    assert places_agree(places, np.array([0, 1])).tolist() == [True, False]
    assert places_agree(places[:, 0], 0)
