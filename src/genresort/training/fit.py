"""`genresort train` and `genresort evaluate`: cross-validate, fit on everything, write the model and its card."""

from __future__ import annotations

import json
import platform
import shutil
from dataclasses import asdict
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import numpy as np

from genresort.analysis.audio import WindowPlan
from genresort.analysis.features.clip import ClipFeatures, FeatureSet
from genresort.analysis.features.embedding import MusicnnNetwork
from genresort.analysis.model import CARD_JSON, CARD_MARKDOWN, MODEL_FILE, NETWORK_FOLDER
from genresort.digest import sha256_file
from genresort.paths import DEFAULT_MODEL_DIR
from genresort.training.classifier import export_classifier, fit_classifier
from genresort.training.dataset import DataSetError, FeatureCache, LabelledFile, extract_features, training_set
from genresort.training.evaluation import cross_validate, format_comparison, format_scores, plot_confusion, scores

NETWORK_NAMES = ("msd_musicnn", "mtt_musicnn")
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


def evaluate(files: list[LabelledFile], report_dir: Path, cache_dir: Path, repeats: int = 3) -> str:
    """Grouped cross-validation of each feature set; writes report.json, report.md and confusion PNGs."""
    results = compare_feature_sets(*prepare(files, cache_dir), repeats=repeats)
    report_dir.mkdir(parents=True, exist_ok=True)
    for name, figures in results.items():
        plot_confusion(figures, f"{name} (artist-grouped CV)", report_dir / f"confusion-{name}.png")
    report = comparison_report(results)
    (report_dir / "report.md").write_text(report + "\n")
    (report_dir / "report.json").write_text(json.dumps(results, indent=2) + "\n")
    return report


def train(
    files: list[LabelledFile], output_dir: Path, cache_dir: Path, data_description: str, repeats: int = 3
) -> dict:
    """Cross-validate (`repeats` times 5 folds), fit on everything, and write the model with its card."""
    detector = shipped_detector()  # read before output_dir, which may be the shipped model's folder, is rewritten
    kept, clips = prepare(files, cache_dir)
    comparison = compare_feature_sets(kept, clips, repeats)
    figures = comparison[SHIPPED_FEATURE_SET.value]
    rows = training_set(clips, SHIPPED_FEATURE_SET, list(NETWORK_NAMES))
    genres = np.array([file.genre for file in kept])[rows.clip_of_row]
    groups = np.array([file.group for file in kept])[rows.clip_of_row]
    classifier = export_classifier(fit_classifier(rows.vectors, genres, groups, rows.weights))

    output_dir.mkdir(parents=True, exist_ok=True)
    for source in network_files(DEFAULT_MODEL_DIR):
        target = output_dir / NETWORK_FOLDER / source.name
        if target.resolve() != source.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            shutil.copyfile(source.parent / "LICENSE-musicnn.txt", target.parent / "LICENSE-musicnn.txt")
    model_path = output_dir / MODEL_FILE
    model_path.write_text(classifier.to_json())
    plot_confusion(figures, "artist-grouped cross-validation", output_dir / "confusion.png")
    card = model_card(kept, figures, model_path, output_dir, data_description, repeats)
    card["comparison"] = {name: {key: results[key] for key in HEADLINE_FIGURES} for name, results in comparison.items()}
    if detector is not None:
        entry, content = detector
        (output_dir / entry["file"]).write_bytes(content)
        card["music_detector"] = entry
    (output_dir / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n")
    (output_dir / CARD_MARKDOWN).write_text(model_card_markdown(card, figures, format_comparison(comparison)))
    return card


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
        *music_detector_markdown(card.get("music_detector")),
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
