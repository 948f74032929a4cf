"""`genresort train` and `genresort evaluate`: cross-validate, fit on everything, write the model and its card."""

from __future__ import annotations

import json
import platform
import shutil
from collections import Counter
from dataclasses import asdict, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import numpy as np

from genresort.analysis.audio import WindowPlan
from genresort.analysis.decision import FIRST_LOOK_MARGIN, DecisionKind, decide, settled_at_first_look
from genresort.analysis.familiarity import Familiarity
from genresort.analysis.features.clip import FIRST_LOOK_WINDOWS, ClipFeatures, FeatureSet, FirstLookVectors
from genresort.analysis.features.embedding import MusicnnNetwork
from genresort.analysis.model import CARD_JSON, CARD_MARKDOWN, MODEL_FILE, NETWORK_FOLDER, GenreModel, places_agree
from genresort.analysis.placement_check import EVIDENCE
from genresort.digest import sha256_file
from genresort.paths import DEFAULT_MODEL_DIR
from genresort.training.calibration import Calibrated, calibrate, learnt_songs, read_real_songs
from genresort.training.classifier import export_classifier, fit_learnt
from genresort.training.dataset import (
    TRAINING_SET_FILE,
    DataSetError,
    FeatureCache,
    LabelledFile,
    LearntSet,
    extract_features,
    training_set,
)
from genresort.training.evaluation import (
    cross_validate,
    expected_calibration_error,
    format_comparison,
    format_scores,
    plot_confusion,
    plot_reliability,
    scores,
)
from genresort.training.familiarity import fit_familiarity
from genresort.training.music_detector import evaluate_detector
from genresort.training.open_world_figures import at_first_look, nonmusic_figures, nonmusic_markdown

NETWORK_NAMES = ("msd_musicnn", "mtt_musicnn")
GTZAN_GENRES = ("Blues", "Classical", "Country", "Disco", "Hip-Hop", "Jazz", "Metal", "Pop", "Reggae", "Rock")
TAGS_FILE = DEFAULT_MODEL_DIR / NETWORK_FOLDER / "tags_msd.txt"
CHECK_FILE = "placement_check.json"
RELIABILITY = "reliability.png"
FAMILIARITY_FILE = "familiarity.json"
FAMILIARITY_NEIGHBOURS = 3
SHIPPED_FEATURE_SET = FeatureSet.EMBEDDING
TARGET_PRECISION = 0.9
HEADLINE_FIGURES = ("clips", "accuracy", "balanced_accuracy", "macro_f1", "expected_calibration_error", "threshold")


def network_files(model_dir: Path) -> list[Path]:
    return [model_dir / NETWORK_FOLDER / f"{name}.onnx" for name in NETWORK_NAMES]


def prepare(files: list[LabelledFile], cache_dir: Path) -> tuple[list[LabelledFile], list[ClipFeatures]]:
    """Features of every usable file, from the cache where possible."""
    if len({file.genre for file in files if file.scored}) < 2:
        raise DataSetError("need clips of at least two genres to train")
    paths = network_files(DEFAULT_MODEL_DIR)
    networks = [MusicnnNetwork(path) for path in paths]
    plan = WindowPlan()
    return extract_features(files, networks, plan, FeatureCache(cache_dir, plan, paths))


def compare_feature_sets(kept: list[LabelledFile], clips: list[ClipFeatures], repeats: int) -> dict[str, dict]:
    """Artist-grouped cross-validation figures of each feature set, side by side."""
    return {
        feature_set.value: scores(
            cross_validate(kept, training_set(clips, feature_set, list(NETWORK_NAMES)), repeats=repeats),
            TARGET_PRECISION,
        )
        for feature_set in FeatureSet
    }


def comparison_report(results: dict[str, dict]) -> str:
    clips = next(iter(results.values()))["clips"]
    sections = [f"# Artist-grouped cross-validation ({clips} scored clips)", "", format_comparison(results)]
    for name, figures in results.items():
        sections += ["", f"## {name}", "", format_scores(figures)]
    return "\n".join(sections)


def evaluate(
    files: list[LabelledFile],
    report_dir: Path,
    cache_dir: Path,
    repeats: int = 3,
    realworld: Path | None = None,
    open_world_data: Path | None = None,
) -> str:
    """Every figure `train` measures, for a model trained (into `report_dir`/model) but not installed: report.md
    is its model card, report.json its machine-readable twin, with the confusion and reliability PNGs beside."""
    model_dir = report_dir / "model"
    card = train(files, model_dir, cache_dir, "evaluation", repeats, realworld, open_world_data)
    report = (model_dir / CARD_MARKDOWN).read_text()
    (report_dir / "report.md").write_text(report)
    (report_dir / "report.json").write_text(json.dumps(card, indent=2) + "\n")
    for picture in model_dir.glob("*.png"):
        shutil.copyfile(picture, report_dir / picture.name)
    return report


def train(
    files: list[LabelledFile],
    output_dir: Path,
    cache_dir: Path,
    data_description: str,
    repeats: int = 3,
    realworld: Path | None = None,
    open_world_data: Path | None = None,
) -> dict:
    """Cross-validate (`repeats` times 5 folds), fit on everything, and write the model with its card. With the
    real-world development set (`realworld`, a folder with its MANIFEST.tsv), the classifier also learns its songs
    and a placement check calibrated on them decides what is placed. With `open_world_data` (the shared data folder:
    GTZAN, realworld/ and nonmusic/), the card also says what the model does with sounds that are not music."""
    if realworld is not None:
        refuse_other_taxonomies(files, realworld)
    detector = shipped_detector()  # read before output_dir, which may be the shipped model's folder, is rewritten
    kept, clips = prepare(files, cache_dir)
    comparison = compare_feature_sets(kept, clips, repeats)
    figures = comparison[SHIPPED_FEATURE_SET.value]
    rows = training_set(clips, SHIPPED_FEATURE_SET, list(NETWORK_NAMES))
    learnt = LearntSet.of(kept, rows)
    calibrated = None
    if realworld is not None:
        songs = read_real_songs(realworld / "MANIFEST.tsv", cache_dir, NETWORK_NAMES)
        first_looks = FirstLookVectors.of(clips, SHIPPED_FEATURE_SET, list(NETWORK_NAMES))
        calibrated = calibrate(kept, rows, songs, TAGS_FILE, NETWORK_NAMES, TARGET_PRECISION, repeats, first_looks)
        learnt = learnt.joined(learnt_songs(songs, calibrated.labels))
        figures = scores(calibrated.gtzan, TARGET_PRECISION)
    classifier = export_classifier(fit_learnt(learnt))

    output_dir.mkdir(parents=True, exist_ok=True)
    for source in network_files(DEFAULT_MODEL_DIR):
        target = output_dir / NETWORK_FOLDER / source.name
        if target.resolve() != source.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            for name in ("LICENSE-musicnn.txt", f"tags_{source.stem.split('_')[0]}.txt"):
                shutil.copyfile(source.parent / name, target.parent / name)
    model_path = output_dir / MODEL_FILE
    model_path.write_text(classifier.to_json())
    plot_confusion(figures, "artist-grouped cross-validation", output_dir / "confusion.png")
    card = model_card(kept, figures, model_path, output_dir, data_description, repeats)
    card["training_set"] = write_learnt(learnt, output_dir)
    card["comparison"] = {name: {key: results[key] for key in HEADLINE_FIGURES} for name, results in comparison.items()}
    if detector is not None:
        entry, content = detector
        (output_dir / entry["file"]).write_bytes(content)
        card["music_detector"] = entry
    if calibrated is None:
        familiarity_path = output_dir / FAMILIARITY_FILE
        familiarity_path.write_text(familiarity_of(learnt).to_json())
        card["familiarity"] = {"file": familiarity_path.name, "sha256": sha256_file(familiarity_path)}
    else:
        check_path = output_dir / CHECK_FILE
        check_path.write_text(calibrated.check.classifier.to_json())
        card["placement_check"] = check_card_entry(calibrated, check_path, realworld, repeats)
        if calibrated.first_look is not None:
            card["first_look"] = first_look_entry(calibrated, figures)
        plot_reliability(reliability_curves(calibrated), "reliability (held-out artists)", output_dir / RELIABILITY)
    (output_dir / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n")
    if open_world_data is not None and detector is not None:
        card["open_world"] = open_world_figures(output_dir, open_world_data, cache_dir, repeats)
        (output_dir / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n")
    (output_dir / CARD_MARKDOWN).write_text(model_card_markdown(card, figures, format_comparison(comparison)))
    return card


def write_learnt(learnt: LearntSet, output_dir: Path) -> dict:
    """Write what the classifier learnt (TRAINING_SET_FILE) beside it; its model card entry."""
    path = output_dir / TRAINING_SET_FILE
    learnt.save(path)
    return {
        "file": path.name,
        "sha256": sha256_file(path),
        "rows": len(learnt.vectors),
        "clips": int((~learnt.real_song).sum()),
        "real_songs": int(learnt.real_song.sum()),
    }


def familiarity_of(learnt: LearntSet) -> Familiarity:
    """How far a sound lies from the clips of a model without a placement check (a person's own genres): a song of
    none of its genres is unsure, not the nearest genre at 1.0. At most as many neighbours as the smallest genre has
    clips, so that a file's nearest clips stay within one genre."""
    scored = np.flatnonzero(learnt.scored)
    smallest = min(Counter(learnt.genres[scored]).values())
    try:
        return fit_familiarity(
            learnt.vectors[learnt.own_row[scored]],
            list(learnt.groups[scored]),
            neighbours=min(FAMILIARITY_NEIGHBOURS, smallest),
        )
    except ValueError as error:
        raise DataSetError(f"cannot measure how far a new song lies from the training clips: {error}") from error


def reliability_curves(calibrated: Calibrated) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """What each number the decision reads means: the top genre's probability on GTZAN clips and on real songs, and
    the placement check's probability on real songs (all held out by artist)."""
    gtzan = calibrated.gtzan
    songs = calibrated.songs
    gtzan_top = np.array(gtzan.genres)[gtzan.probabilities.argmax(axis=1)]
    return {
        "GTZAN clips: top genre's probability": (gtzan.probabilities.max(axis=1), gtzan_top == gtzan.true_genres),
        "real songs: top genre's probability": (songs.confidence, songs.right),
        "real songs: placement check": (songs.check_probability, songs.right),
    }


def open_world_figures(model_dir: Path, data: Path, cache_dir: Path, repeats: int) -> dict:
    """The written model on sounds that are not music and on music, its detector held out by source: every sample
    is decided as the daemon decides, with the held-out detector's verdict in place of the shipped detector's; and
    again deciding at first look where that is settled (GenreModel.analyse)."""
    model = GenreModel.load(model_dir)
    detected = evaluate_detector(data, cache_dir, repeats)
    genre_alone = replace(model.thresholds, music=0.0, music_sure=0.0)

    def genre_decisions(rows: np.ndarray) -> list:
        return [decide(replace(model.predict_vector(row), music_probability=None), genre_alone) for row in rows]

    places = np.array([decision.kind is DecisionKind.GENRE for decision in genre_decisions(detected.vectors)])
    looks = detected.first_looks
    glances = genre_decisions(looks.glance)
    tops = np.array([model.classifier.classes.index(decision.prediction.genre) for decision in glances])
    agree = places_agree(np.stack([model.classifier.predict_proba(place) for place in looks.places]), tops)
    settled = agree & [decision.kind is DecisionKind.GENRE and settled_at_first_look(decision) for decision in glances]
    sure = model.thresholds.music_sure
    figures = nonmusic_figures(detected.held, places, sure)
    held, placed, share = at_first_look(detected.held, places, detected.first_look, settled, sure)
    figures["first_look"] = {**nonmusic_figures(held, placed, sure), "decided_at_first_look": share}
    return figures


def refuse_other_taxonomies(files: list[LabelledFile], realworld: Path) -> None:
    """The real-world songs' published genres are matched to GTZAN's ten by the README's table, which knows no other
    genre: a person's own taxonomy is decided by the confidence alone."""
    unknown = sorted({file.genre for file in files} - set(GTZAN_GENRES))
    if unknown:
        raise DataSetError(
            f"cannot calibrate on the real-world songs in {realworld}: their compatibility table knows GTZAN's genres "
            f"only, not {', '.join(unknown)}; train without them"
        )


def check_card_entry(calibrated: Calibrated, path: Path, realworld: Path, repeats: int) -> dict:
    """What the model card says of the placement check: its file, threshold, the tag agreement's arrays, and what the
    recipe did on real songs of held-out artists."""
    held_out = calibrated.held_out
    low, high = held_out.precision_range
    return {
        "file": path.name,
        "sha256": sha256_file(path),
        "threshold": calibrated.check.threshold,
        "target_precision": TARGET_PRECISION,
        "evidence": [*EVIDENCE, *(f"top genre is {genre}" for genre in calibrated.genres)],
        "tag_columns": calibrated.check.agreement.columns.tolist(),
        "tag_support": calibrated.check.agreement.support.tolist(),
        "figures": {
            "data": str(realworld),
            "protocol": f"5 artist-grouped folds x {repeats} repeats; genre model and check fitted on the training "
            "folds only, the check on out-of-fold probabilities",
            "coverage": held_out.coverage,
            "precision": held_out.precision,
            "precision_range": [low, high],
            "expected_calibration_error": {
                name: expected_calibration_error(correct, confidence)
                for name, (confidence, correct) in reliability_curves(calibrated).items()
            },
        },
    }


def first_look_entry(calibrated: Calibrated, gtzan_figures: dict) -> dict:
    """What deciding at first look (GenreModel.analyse) does to the held-out figures, beside hearing everything."""
    first_look = calibrated.first_look
    glance = scores(first_look.gtzan, TARGET_PRECISION)
    low, high = first_look.held_out.precision_range
    return {
        "patches": {"windows": FIRST_LOOK_WINDOWS[0], "patches_per_window": FIRST_LOOK_WINDOWS[1]},
        "margin": FIRST_LOOK_MARGIN,
        "gtzan": {
            "decided_at_first_look": first_look.gtzan_settled,
            "accuracy": glance["accuracy"],
            "balanced_accuracy": glance["balanced_accuracy"],
            "accuracy_hearing_all": gtzan_figures["accuracy"],
            "balanced_accuracy_hearing_all": gtzan_figures["balanced_accuracy"],
        },
        "real_songs": {
            "decided_at_first_look": first_look.songs_settled,
            "coverage": first_look.held_out.coverage,
            "precision": first_look.held_out.precision,
            "precision_range": [low, high],
            "coverage_hearing_all": calibrated.held_out.coverage,
            "precision_hearing_all": calibrated.held_out.precision,
        },
    }


def first_look_markdown(card: dict) -> list[str]:
    entry = card.get("first_look")
    if entry is None:
        return []
    gtzan, songs = entry["gtzan"], entry["real_songs"]
    lines = [
        "## Deciding at first look",
        "",
        f"The networks first hear {entry['patches']['windows']} places of "
        f"{entry['patches']['patches_per_window']} patches; a file whose decision from those passes every test with "
        f"{entry['margin']:.2f} to spare is decided there, and every other file is heard whole. Held out as above:",
        "",
        "| figure | hearing all | deciding at first look |",
        "|---|---|---|",
        f"| GTZAN accuracy | {gtzan['accuracy_hearing_all']:.3f} | {gtzan['accuracy']:.3f} |",
        f"| GTZAN balanced accuracy | {gtzan['balanced_accuracy_hearing_all']:.3f} | "
        f"{gtzan['balanced_accuracy']:.3f} |",
        f"| real songs placed | {songs['coverage_hearing_all']:.1%} | {songs['coverage']:.1%} |",
        f"| real songs right, of those placed | {songs['precision_hearing_all']:.1%} | {songs['precision']:.1%} |",
    ]
    open_world = card.get("open_world")
    if open_world is not None and "first_look" in open_world:
        glance = open_world["first_look"]
        lines += [
            f"| non-music placed in a genre | {open_world['nonmusic_placed_in_a_genre']:.1%} | "
            f"{glance['nonmusic_placed_in_a_genre']:.1%} |",
            f"| music sent to not-music | {open_world['music_to_not_music']:.1%} | "
            f"{glance['music_to_not_music']:.1%} |",
        ]
    shares = [f"GTZAN clips {gtzan['decided_at_first_look']:.0%}", f"real songs {songs['decided_at_first_look']:.0%}"]
    if open_world is not None and "first_look" in open_world:
        shares.append(f"the open-world samples {open_world['first_look']['decided_at_first_look']:.0%}")
    return [*lines, "", f"Decided at first look: {', '.join(shares)}.", ""]


def shipped_detector() -> tuple[dict, bytes] | None:
    """The shipped model's music detector (its card entry and file), which every trained model carries: it reads
    only the networks' embedding, whatever the genres, so a model of a person's own taxonomy still knows what is
    not music. It is fitted by tools/music_detector_study.py, on data that `train` does not see."""
    card_path = DEFAULT_MODEL_DIR / CARD_JSON
    if not card_path.is_file():
        return None
    entry = json.loads(card_path.read_text()).get("music_detector")
    if entry is None:
        return None
    return entry, (DEFAULT_MODEL_DIR / entry["file"]).read_bytes()


def model_card(
    files: list[LabelledFile], figures: dict, model_path: Path, output_dir: Path, data_description: str, repeats: int
) -> dict:
    scored = [file for file in files if file.scored]
    return {
        "model_id": f"genresort-{datetime.now(UTC):%Y%m%d}",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "genres": sorted({file.genre for file in files}),
        "feature_set": SHIPPED_FEATURE_SET.value,
        "window_plan": asdict(WindowPlan()),
        "model_file": {"name": MODEL_FILE, "sha256": sha256_file(model_path)},
        "networks": [
            {"name": path.stem, "file": str(path.relative_to(output_dir)), "sha256": sha256_file(path)}
            for path in network_files(output_dir)
        ],
        "threshold": figures["threshold"],
        "data": {
            "source": data_description,
            "scored_clips": len(scored),
            "training_only_clips": len(files) - len(scored),
            "artist_groups": len({file.group for file in files}),
            "clips_per_genre": {
                genre: sum(file.genre == genre for file in scored) for genre in sorted({f.genre for f in files})
            },
        },
        "protocol": (
            f"5-fold cross-validation stratified by genre and grouped by artist, repeated {repeats} times with "
            "different shuffles (probabilities averaged); fragments only ever train, and never with an artist of "
            "the test fold"
        ),
        "figures": {key: figures[key] for key in (*HEADLINE_FIGURES, "per_genre", "confusion")},
        "versions": {
            "genresort": version("genresort"),
            "python": platform.python_version(),
            **{
                package: version(package)
                for package in ("scikit-learn", "numpy", "librosa", "onnxruntime", "soundfile")
            },
        },
    }


def model_card_markdown(card: dict, figures: dict, comparison_table: str) -> str:
    threshold = card["threshold"]
    lines = [
        f"# Model card: {card['model_id']}",
        "",
        "Genre classifier used by genresort by default. The machine-readable twin of this card is "
        f"`{CARD_JSON}`; genresort refuses to load `{MODEL_FILE}` unless its sha256 matches the one recorded there.",
        "",
        "## Data",
        f"- Source: `{card['data']['source']}` — {card['data']['scored_clips']} scored clips, "
        f"{card['data']['training_only_clips']} training-only fragments, "
        f"{card['data']['artist_groups']} artist groups.",
        "- Clips per genre: "
        + ", ".join(f"{genre} {count}" for genre, count in card["data"]["clips_per_genre"].items()),
        "",
        "## Model",
        f"- Features: `{card['feature_set']}` — summaries of the musicnn networks' outputs "
        f"({', '.join(network['name'] for network in card['networks'])}) over 3 s patches.",
        f"- Listening: clips up to {card['window_plan']['whole_clip_seconds']:.0f} s whole; longer tracks in "
        f"{card['window_plan']['window_count']} windows of {card['window_plan']['window_seconds']:.0f} s "
        "between 10% and 90% of their length.",
        "- Classifier: standard scaling, class-weighted logistic regression, temperature calibration on artist-grouped "
        "folds. It learns from each clip whole and from windows of it (as a long track is heard), at half weight.",
        f"- Model file: `{card['model_file']['name']}`, sha256 `{card['model_file']['sha256']}`: plain numbers in "
        "JSON (genres, scaler mean and scale, logistic weights and intercepts, the calibration's inverse "
        "temperature), read without scikit-learn; loading it cannot run code.",
        *training_set_markdown(card["training_set"]),
        "",
        "## Protocol",
        card["protocol"] + ".",
        "",
        "## Figures (artist-grouped cross-validation)",
        f"- accuracy {figures['accuracy']:.3f}, balanced accuracy {figures['balanced_accuracy']:.3f}, "
        f"macro-F1 {figures['macro_f1']:.3f}, expected calibration error {figures['expected_calibration_error']:.3f}",
        f"- Decision threshold {threshold['value']:.3f}: at or above it a file is sorted; below it, it goes to the "
        f"'unsure' folder. It sorts {threshold['coverage']:.1%} of files, of which "
        f"{threshold['precision']:.1%} are right "
        f"(target {threshold['target_precision']:.0%}).",
        "",
        *placement_check_markdown(card.get("placement_check")),
        *familiarity_markdown(card.get("familiarity")),
        *music_detector_markdown(card.get("music_detector")),
        *open_world_markdown(card.get("open_world")),
        *first_look_markdown(card),
        format_scores(figures),
        "",
        "## Feature sets compared (same protocol)",
        "",
        "`handcrafted`: the tutorial's features (zero-crossing rate, spectral centroid, roll-off, MFCC, chroma) and "
        "bandwidth, flatness, RMS, contrast, tempo; `embedding`: the musicnn summaries; `combined`: both.",
        "",
        comparison_table,
        "",
        "## Versions",
        ", ".join(f"{package} {number}" for package, number in card["versions"].items()),
        "",
    ]
    return "\n".join(lines)


def training_set_markdown(entry: dict) -> list[str]:
    return [
        f"- Training set: `{entry['file']}`, sha256 `{entry['sha256']}`: the {entry['rows']} rows the classifier "
        f"was fitted on ({entry['clips']} training clips and {entry['real_songs']} real songs, whole and in windows), "
        "as float32 arrays with their labels, artists and content hashes; `genresort retrain` refits the classifier "
        "on them and a person's examples.",
    ]


def placement_check_markdown(entry: dict | None) -> list[str]:
    if entry is None:
        return []
    figures = entry["figures"]
    low, high = figures["precision_range"]
    return [
        "## Placement check (calibrated on real recordings)",
        "",
        f"A genre is placed when `{entry['file']}` (sha256 `{entry['sha256']}`) gives a probability of at least "
        f"{entry['threshold']:.3f} that the top genre is right, from the evidence "
        f"{', '.join(entry['evidence'][: len(EVIDENCE)])} and the top genre itself; otherwise the file is unsure. "
        "It replaces the confidence threshold above, which was chosen on GTZAN clips and protects nothing outside "
        f"them. The classifier also learnt the real songs of `{figures['data']}` under pseudo-labels (of each song's "
        "compatible genres, the one a GTZAN-only model found likeliest).",
        "",
        f"- Real songs of held-out artists ({figures['protocol']}): {figures['coverage']:.1%} placed, "
        f"{figures['precision']:.1%} of them in a compatible genre ({low:.1%}-{high:.1%} over the repeats; "
        f"target {entry['target_precision']:.0%}).",
        "- Expected calibration error (held out by artist): "
        + "; ".join(f"{name} {error:.3f}" for name, error in figures["expected_calibration_error"].items())
        + ".",
        f"- Reliability diagram (`{RELIABILITY}`): the top genre's probability against how often it is right, on GTZAN "
        "clips and on real songs, and the placement check's probability on real songs, all held out by artist.",
        "",
    ]


def familiarity_markdown(entry: dict | None) -> list[str]:
    if entry is None:
        return []
    return [
        "## Familiarity (songs of none of these genres)",
        "",
        f"`{entry['file']}` (sha256 `{entry['sha256']}`) keeps the training clips on 32 principal axes of the "
        "embedding. A file whose mean distance to its nearest clips is beyond the threshold (which keeps 98% of clips "
        "of artists held out while fitting) is unlike the music the model learnt, and goes to `unsure` however sure "
        "the genre looks: a model of a few genres would otherwise put every other song in one of them.",
        "",
    ]


def open_world_markdown(figures: dict | None) -> list[str]:
    if figures is None:
        return []
    return [
        "## The open world: sounds that are not music",
        "",
        "Each file decided as the daemon decides, with the music detector held out by speaker, source or artist "
        "(grouped cross-validation) in place of the shipped one.",
        "",
        *nonmusic_markdown(figures),
        "",
    ]


def music_detector_markdown(entry: dict | None) -> list[str]:
    if entry is None:
        return []
    return [
        "## Music or not",
        "",
        f"Before a genre is chosen, `{entry['file']}` (sha256 `{entry['sha256']}`) gives the probability that the "
        f"sound is music, from the same embedding. Below {entry['threshold']:.3f} a file is not music (`not-music/`); "
        f"below {entry['sure']:.3f} it is not sure to be music and goes to `unsure`, never to a genre.",
        "",
        *entry.get("figures", []),
        "",
    ]
