"""Real recordings: reproduce every figure of the real-world study (issue 7, parts 2-4).

    .venv/bin/python tools/realworld_study.py [--data ../shared/data] [--repeats 5] [--target 0.9] [--json FILE]

What "right" means is the realworld README's compatibility table (training/realworld.py). Every rule is fitted on
the songs of some artists and scored on the others (5 artist folds, repeated with different shuffles); where a
genre model learns from real songs, the probabilities its placement check is fitted on are themselves out-of-fold.
Features come from .cache/features (the first run extracts what is missing: a few minutes). The repeats of the
rules whose genre model learns from real songs refit it 30 times each: about 2 minutes per repeat.
"""

from __future__ import annotations

import argparse
import json
import timeit
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from genresort.analysis.decision import decide
from genresort.analysis.features.clip import ClipFeatures, FeatureSet, feature_vector, taggram_mean_columns
from genresort.analysis.model import GenreModel
from genresort.analysis.placement_check import EVIDENCE, evidence
from genresort.digest import sha256_file
from genresort.paths import DEFAULT_MODEL_DIR
from genresort.training.calibration import RealSongs, SongLearner
from genresort.training.classifier import fit_classifier
from genresort.training.dataset import TrainingSet, read_manifest, training_set
from genresort.training.evaluation import choose_threshold, cross_validate, scores
from genresort.training.fit import NETWORK_NAMES, prepare
from genresort.training.openworld import features_of, read_realworld
from genresort.training.realworld import (
    MSD_GENRE_TAGS,
    TAGGER,
    UNSURE,
    HeldOut,
    Rows,
    Scores,
    artist_folds,
    by_published_genre,
    cross_validate_rule,
    fit_check_on,
    fit_placement_rule,
    is_right,
    pseudo_labels,
    read_tag_names,
    score,
    tag_agreement,
)

NETWORKS = list(NETWORK_NAMES)
#: A GTZAN genre read as the AllMusic genres it would be published under, to judge GTZAN by the README's table too.
AS_PUBLISHED = {
    "Blues": ("Blues",),
    "Classical": ("Classical",),
    "Country": ("Country",),
    "Disco": ("Pop/Rock", "R&B"),
    "Hip-Hop": ("Rap",),
    "Jazz": ("Jazz",),
    "Metal": ("Pop/Rock",),
    "Pop": ("Pop/Rock",),
    "Reggae": ("Reggae",),
    "Rock": ("Pop/Rock",),
}
#: The rule the study recommends (its breakdown per published genre is printed, and what it does to GTZAN).
CHOSEN = "(f) learns real songs: confidence, margin, agreement, per top genre"
WIDER_GENRES = ("Electronic", "Folk", "R&B", "Latin")


@dataclass(frozen=True)
class Study:
    """Everything the rules are computed from."""

    published: list[tuple[str, ...]]
    groups: list[str]
    clips: list[ClipFeatures]  # the real songs' features
    vectors: np.ndarray  # (songs, features) embedding vectors of the real songs
    song_rows: TrainingSet  # the real songs' classifier rows (whole clip and windows), as GTZAN's
    gtzan_rows: TrainingSet
    gtzan: Rows  # GTZAN's rows with their genres and groups, as fit_classifier takes them
    gtzan_files: list


def load(data: Path, cache: Path) -> Study:
    songs, clips = features_of(read_realworld(data / "realworld" / "MANIFEST.tsv"), cache)
    gtzan_files, gtzan_clips = prepare(read_manifest(data / "MANIFEST.tsv"), cache)
    rows = training_set(gtzan_clips, FeatureSet.EMBEDDING, NETWORKS)
    return Study(
        published=[song.published_genres for song in songs],
        groups=[song.group for song in songs],
        clips=clips,
        vectors=np.stack([feature_vector(clip, FeatureSet.EMBEDDING, NETWORKS) for clip in clips]),
        song_rows=training_set(clips, FeatureSet.EMBEDDING, NETWORKS),
        gtzan_rows=rows,
        gtzan=Rows(
            rows.vectors,
            np.array([file.genre for file in gtzan_files])[rows.clip_of_row],
            np.array([file.group for file in gtzan_files])[rows.clip_of_row],
            rows.weights,
        ),
        gtzan_files=gtzan_files,
    )


# --- 1. the shipped model -------------------------------------------------------------------------------------------


def shipped_decisions(model_dir: Path, study: Study) -> tuple[list[str], str]:
    """The shipped model's decisions on the real songs, as `genresort classify` makes them."""
    card = json.loads((model_dir / "model_card.json").read_text())
    if card["model_file"]["name"].endswith(".joblib"):
        # The model released before issue 7: a scikit-learn pickle, which genresort no longer loads. It is the
        # repository's own file, checked against its card's sha256 before loading; its classify path was
        # predict_proba of the embedding vector and the card's confidence threshold.
        import joblib

        path = model_dir / card["model_file"]["name"]
        assert sha256_file(path) == card["model_file"]["sha256"], f"{path} is not the file its card describes"
        pipeline = joblib.load(path)
        probabilities = pipeline.predict_proba(study.vectors)
        threshold = card["threshold"]["value"]
        decisions = [
            str(pipeline.classes_[row.argmax()]) if row.max() >= threshold else UNSURE for row in probabilities
        ]
        return decisions, f"{card['model_id']} (pickle), threshold {threshold}"
    model = GenreModel.load(model_dir)
    return [decide(model.predict_clip(clip), model.thresholds).label for clip in study.clips], model.model_id


# --- 2 and 3. holding back, calibrated on real songs ----------------------------------------------------------------


def gtzan_only_probabilities(study: Study) -> tuple[list[str], np.ndarray]:
    model = SongLearner(study.gtzan, study_songs(study), []).model(np.arange(0))
    return [str(genre) for genre in model.classes_], model.predict_proba(study.vectors)


def study_songs(study: Study) -> RealSongs:
    """The study's real songs as calibration.SongLearner takes them."""
    return RealSongs(study.published, study.groups, study.clips, study.vectors, study.song_rows)


def distance_to_gtzan(study: Study, components: int = 32, neighbours: int = 5) -> np.ndarray:
    """Mean distance of each real song to its nearest GTZAN clips, in the first principal components of the
    standardised embedding (GTZAN's own clips define the scaling and the components)."""
    reference = study.gtzan_rows.vectors[study.gtzan_rows.own_row]
    scaler = StandardScaler().fit(reference)
    pca = PCA(components, random_state=0).fit(scaler.transform(reference))
    songs, clips = pca.transform(scaler.transform(study.vectors)), pca.transform(scaler.transform(reference))
    distances = np.linalg.norm(songs[:, np.newaxis, :] - clips[np.newaxis, :, :], axis=2)
    return np.sort(distances, axis=1)[:, :neighbours].mean(axis=1)


@dataclass(frozen=True)
class Rule:
    name: str
    genre_model: str  # "gtzan" or "gtzan+songs"
    columns: tuple[str, ...]  # evidence columns the placement check reads


def compare_rules(study: Study, target: float, repeats: int) -> tuple[dict[str, HeldOut], dict]:
    genres, gtzan_only = gtzan_only_probabilities(study)
    labels = pseudo_labels(study.published, gtzan_only, genres)
    agreement = tag_agreement(
        genres, study.clips[0], NETWORKS, read_tag_names(DEFAULT_MODEL_DIR / "musicnn" / "tags_msd.txt")
    )
    distance = distance_to_gtzan(study)
    probabilities_for = {
        "gtzan": lambda songs: gtzan_only,
        "gtzan+songs": SongLearner(study.gtzan, study_songs(study), labels).probabilities_for,
    }
    genre_block = "top genre"  # the evidence's one column per genre

    def evidence_of(columns: tuple[str, ...]) -> Callable[[np.ndarray], np.ndarray]:
        def of(probabilities: np.ndarray) -> np.ndarray:
            rows = evidence(probabilities, study.vectors, agreement)
            parts = {name: rows[:, [index]] for index, name in enumerate(EVIDENCE)}
            parts[genre_block] = rows[:, len(EVIDENCE) :]
            parts["distance"] = distance[:, np.newaxis]
            return np.column_stack([parts[column] for column in columns])

        return of

    checked = (*EVIDENCE, genre_block)
    rules = [
        Rule("(a) confidence", "gtzan", ("confidence",)),
        Rule("(a) confidence, per top genre", "gtzan", ("confidence", genre_block)),
        Rule("(b) distance to GTZAN (kNN, 32 PCs)", "gtzan", ("distance",)),
        Rule("(b) confidence and distance", "gtzan", ("confidence", "distance")),
        Rule("(c) MSD tag agreement", "gtzan", ("tag_agreement",)),
        Rule("(c) MSD tag agreement, per top genre", "gtzan", ("tag_agreement", genre_block)),
        Rule("(d) confidence, margin, agreement", "gtzan", EVIDENCE),
        Rule("(d) confidence, margin, agreement, per top genre", "gtzan", checked),
        Rule("(e) (d) per top genre + distance", "gtzan", (*checked, "distance")),
        Rule("(f) learns real songs: confidence", "gtzan+songs", ("confidence",)),
        Rule("(f) learns real songs: confidence, margin, agreement", "gtzan+songs", EVIDENCE),
        Rule(CHOSEN, "gtzan+songs", checked),
        Rule("(f) ... per top genre + distance", "gtzan+songs", (*checked, "distance")),
    ]
    results = {}
    for rule in rules:
        fit = fit_placement_rule(
            probabilities_for[rule.genre_model],
            evidence_of(rule.columns),
            study.groups,
            study.published,
            genres,
            target,
            agreement,
        )
        results[rule.name] = cross_validate_rule(study.published, study.groups, fit, repeats=repeats)
        print(f"  {rule.name}: {describe(results[rule.name])}", flush=True)
    context = {
        "genres": genres,
        "labels": labels,
        "agreement": agreement,
        "probabilities_for": probabilities_for,
        "evidence_of": evidence_of(checked),
        "gtzan_only": gtzan_only,
    }
    return results, context


def describe(held_out: HeldOut) -> str:
    low, high = held_out.precision_range
    return f"coverage {held_out.coverage:.3f}, precision {held_out.precision:.3f} ({low:.3f}-{high:.3f})"


def pooled_breakdown(held_out: HeldOut, published: Sequence[Sequence[str]]) -> dict[str, dict]:
    """Per published genre, summed over the repeats."""
    total: dict[str, dict] = {}
    for decisions in held_out.decisions:
        for genre, part in by_published_genre(decisions, published).items():
            entry = total.setdefault(genre, {"files": part.scores.files, "placed": 0, "right": 0, "wrong": Counter()})
            entry["placed"] += part.scores.placed
            entry["right"] += part.scores.right
            entry["wrong"].update(part.wrong)
    repeats = len(held_out.decisions)
    return {
        genre: {
            "files": entry["files"],
            "placed": entry["placed"] / repeats,
            "right": entry["right"] / repeats,
            "wrong": {placed: count / repeats for placed, count in entry["wrong"].most_common()},
        }
        for genre, entry in total.items()
    }


# --- what the chosen rule does on GTZAN -----------------------------------------------------------------------------


def gtzan_side(study: Study, context: dict, target: float) -> dict:
    """GTZAN artist-grouped cross-validation of the genre model with and without the real songs, and what the
    placement check (fitted on all real songs) places of GTZAN's held-out clips."""
    songs = np.arange(len(study.groups))

    def fit_with_songs(vectors, genres, groups, weights, seed):
        return SongLearner(Rows(vectors, genres, groups, weights), study_songs(study), context["labels"]).model(
            songs, seed
        )

    scored = [index for index, file in enumerate(study.gtzan_files) if file.scored]
    vectors = study.gtzan_rows.vectors[study.gtzan_rows.own_row][scored]
    figures = {}
    for name, fit, model in (
        ("gtzan", fit_classifier, "gtzan"),
        ("gtzan+songs", fit_with_songs, "gtzan+songs"),
    ):
        result = cross_validate(study.gtzan_files, study.gtzan_rows, repeats=1, fit=fit)
        check = fit_check_on(
            songs,
            context["probabilities_for"][model],
            context["evidence_of"],
            study.groups,
            study.published,
            context["genres"],
            target,
            context["agreement"],
        )
        rows = evidence(result.probabilities, vectors, context["agreement"])
        placed = check.places(rows)
        top = np.array(result.genres)[result.probabilities.argmax(axis=1)]
        correct = top == result.true_genres
        compatible = np.array(
            [is_right(genre, AS_PUBLISHED[true]) for genre, true in zip(top, result.true_genres, strict=True)]
        )
        figures[name] = {
            "accuracy": scores(result)["accuracy"],
            "balanced_accuracy": scores(result)["balanced_accuracy"],
            "check_coverage": float(placed.mean()),
            "check_precision": float(correct[placed].mean()),
            "check_precision_as_published": float(compatible[placed].mean()),
            "check_coverage_per_genre": {
                str(genre): float(placed[result.true_genres == genre].mean()) for genre in result.genres
            },
            "check": {
                "inputs": [*EVIDENCE, *(f"top is {genre}" for genre in context["genres"])],
                "weights": check.classifier.weights.ravel().tolist(),
                "scaler_mean": check.classifier.scaler_mean.tolist(),
                "scaler_scale": check.classifier.scaler_scale.tolist(),
                "intercept": float(check.classifier.intercept[0]),
                "threshold": check.threshold,
            },
        }
    return figures


# --- 4. a wider taxonomy ----------------------------------------------------------------------------------------------


def wider_genre_rules(study: Study, target: float, repeats: int) -> dict[str, dict]:
    """For each wider genre: (i) the share of the MSD tagger's genre-tag probability on the tags that name it,
    (ii) a logistic regression on the embedding trained on real songs (that genre or not), each with the threshold
    chosen on the training folds (for (ii) on their out-of-fold scores) to reach `target`."""
    tag_names = read_tag_names(DEFAULT_MODEL_DIR / "musicnn" / "tags_msd.txt")
    first = taggram_mean_columns(study.clips[0], NETWORKS, TAGGER)[0]
    genre_tags = np.array([first + tag_names.index(tag) for tag in MSD_GENRE_TAGS])
    mass = study.vectors[:, genre_tags]
    results = {}
    for genre in WIDER_GENRES:
        positive = np.array([is_right(genre, published) for published in study.published])
        tags = [index for index, published in enumerate(MSD_GENRE_TAGS.values()) if is_right(genre, [published])]
        share = mass[:, tags].sum(axis=1) / mass.sum(axis=1)
        rules = {"classifier on real songs": classifier_scores(study, positive)}
        if tags:
            rules["MSD tag share"] = lambda train, share=share: share
        results[genre] = {
            "songs": int(positive.sum()),
            **{
                name: summarise_wider(
                    cross_validate_rule(
                        study.published,
                        study.groups,
                        threshold_rule(scores_for, positive, genre, target),
                        repeats=repeats,
                    ),
                    ranked_precision(scores_for, positive, study.groups),
                )
                for name, scores_for in rules.items()
            },
        }
        print(f"  {genre}: {results[genre]}", flush=True)
    return results


def classifier_scores(study: Study, positive: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Scores of every song from a classifier trained on the given songs; the training songs' own scores are
    out-of-fold (so the threshold chosen on them is honest)."""

    def fit_score(train: np.ndarray) -> np.ndarray:
        scaler = StandardScaler().fit(study.vectors[train])
        regression = LogisticRegression(C=0.1, class_weight="balanced", max_iter=5000)
        regression.fit(scaler.transform(study.vectors[train]), positive[train])
        return regression.predict_proba(scaler.transform(study.vectors))[:, 1]

    def scores_for(train: np.ndarray) -> np.ndarray:
        result = fit_score(train)
        for inner_train, inner_test in artist_folds(np.asarray(study.groups)[train], 5, 1):
            result[train[inner_test]] = fit_score(train[inner_train])[train[inner_test]]
        return result

    return scores_for


def threshold_rule(scores_for, positive: np.ndarray, genre: str, target: float):
    """Place a song in `genre` when its score reaches the lowest threshold at which the training songs placed are
    `genre` at least `target` of the time (1.0, so hardly anything, if none)."""

    def fit(train: np.ndarray):
        values = scores_for(train)
        threshold = choose_threshold(positive[train], values[train], target)["value"]
        return lambda test: [genre if values[index] >= threshold else UNSURE for index in test]

    return fit


def summarise_wider(held_out: HeldOut, ranked: dict[int, float]) -> dict:
    return {
        "precision": held_out.precision,
        "precision_range": held_out.precision_range,
        "placed_per_repeat": float(np.mean([scores.placed for scores in held_out.repeats])),
        "precision_of_the_top": ranked,
    }


def ranked_precision(scores_for, positive: np.ndarray, groups: Sequence[str]) -> dict[int, float]:
    """Whatever the threshold: the share of the genre among the 5, 10 and 20 songs scored highest on held-out
    artists (one artist-grouped pass)."""
    held_out = np.zeros(len(positive))
    for train, test in artist_folds(groups, 5, seed=0):
        held_out[test] = scores_for(train)[test]
    order = np.argsort(-held_out)
    return {count: float(positive[order[:count]].mean()) for count in (5, 10, 20)}


# --- cost ------------------------------------------------------------------------------------------------------------


def cost_microseconds(study: Study, context: dict, target: float) -> float:
    """CPU time of the evidence and the check for one file, given its probabilities and embedding vector."""
    check = fit_check_on(
        np.arange(len(study.groups)),
        context["probabilities_for"]["gtzan"],
        context["evidence_of"],
        study.groups,
        study.published,
        context["genres"],
        target,
    )
    probabilities, vector = context["gtzan_only"][:1], study.vectors[:1]
    seconds = min(
        timeit.repeat(
            lambda: check.places(evidence(probabilities, vector, context["agreement"])), number=1000, repeat=5
        )
    )
    return seconds / 1000 * 1e6


# --- the report -------------------------------------------------------------------------------------------------------


def scores_line(name: str, result: Scores) -> str:
    return f"| {name} | {result.files} | {result.coverage:.3f} | {result.precision:.3f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=Path(".cache/features"))
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR, help="the model of the baseline")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args()
    # evaluation.choose_threshold averages an empty selection where a rounded threshold lies above every score;
    # it moves on to the next threshold, and numpy's warning about it says nothing about the study.
    warnings.filterwarnings("ignore", "Mean of empty slice")
    warnings.filterwarnings("ignore", "invalid value encountered in scalar divide")
    study = load(arguments.data, arguments.cache)
    print(f"{len(study.groups)} real songs, {len(set(study.groups))} artists; {len(study.gtzan_files)} GTZAN files")

    decisions, model = shipped_decisions(arguments.model, study)
    baseline = score(decisions, study.published)
    print(f"\n## 1. The shipped model ({model})\n\n| model | files | coverage | precision |\n|---|---|---|---|")
    print(scores_line("shipped", baseline))
    print_breakdown({genre: part_of(part) for genre, part in by_published_genre(decisions, study.published).items()})

    print(f"\n## 2-3. Rules on held-out artists (5 folds x {arguments.repeats}, target {arguments.target})", flush=True)
    results, context = compare_rules(study, arguments.target, arguments.repeats)
    print("\n| rule | coverage | precision (mean) | precision (min-max over repeats) |\n|---|---|---|---|")
    for name, held_out in results.items():
        low, high = held_out.precision_range
        print(f"| {name} | {held_out.coverage:.3f} | {held_out.precision:.3f} | {low:.3f}-{high:.3f} |")
    breakdown = pooled_breakdown(results[CHOSEN], study.published)
    print(f"\nPer published genre, {CHOSEN} (mean per repeat):")
    print_breakdown(breakdown)

    print("\n## GTZAN with the chosen rule (artist-grouped CV; check fitted on all real songs)", flush=True)
    gtzan = gtzan_side(study, context, arguments.target)
    print(
        "\n| genre model | accuracy | balanced accuracy | placed by the check | right among placed "
        "| compatible among placed (README table) |\n|---|---|---|---|---|---|"
    )
    for name, figures in gtzan.items():
        print(
            f"| {name} | {figures['accuracy']:.3f} | {figures['balanced_accuracy']:.3f} | "
            f"{figures['check_coverage']:.3f} | {figures['check_precision']:.3f} | "
            f"{figures['check_precision_as_published']:.3f} |"
        )
    for name, figures in gtzan.items():
        print(f"  {name}: placed per genre {rounded(figures['check_coverage_per_genre'])}; check {figures['check']}")

    print(f"\n## 4. Wider genres (5 folds x {arguments.repeats})", flush=True)
    wider = wider_genre_rules(study, arguments.target, arguments.repeats)
    print(
        "\n| genre | songs | rule | precision (mean) | min-max | files placed per repeat "
        "| precision of the top 5 / 10 / 20 |\n|---|---|---|---|---|---|---|"
    )
    for genre, figures in wider.items():
        for name, rule in figures.items():
            if name != "songs":
                low, high = rule["precision_range"]
                top = " / ".join(f"{value:.2f}" for value in rule["precision_of_the_top"].values())
                print(
                    f"| {genre} | {figures['songs']} | {name} | {rule['precision']:.3f} | {low:.3f}-{high:.3f} | "
                    f"{rule['placed_per_repeat']:.1f} | {top} |"
                )

    cost = cost_microseconds(study, context, arguments.target)
    print(f"\nCost of the evidence and the check: {cost:.1f} microseconds per file")
    if arguments.json:
        report = {
            "baseline": {"model": model, "coverage": baseline.coverage, "precision": baseline.precision},
            "rules": {
                name: {"coverage": held.coverage, "precision": held.precision, "range": held.precision_range}
                for name, held in results.items()
            },
            "breakdown": breakdown,
            "gtzan": gtzan,
            "wider": wider,
            "cost_microseconds": cost,
        }
        arguments.json.write_text(json.dumps(report, indent=2) + "\n")


def part_of(part) -> dict:
    return {"files": part.scores.files, "placed": part.scores.placed, "right": part.scores.right, "wrong": part.wrong}


def rounded(values: dict) -> dict:
    return {key: round(value, 2) for key, value in values.items()}


def print_breakdown(breakdown: dict[str, dict]) -> None:
    print("\n| published | files | placed | right | wrong, placed in |\n|---|---|---|---|---|")
    for genre, entry in breakdown.items():
        wrong = ", ".join(f"{placed} {count:g}" for placed, count in dict(entry["wrong"]).items())
        print(f"| {genre} | {entry['files']} | {entry['placed']:g} | {entry['right']:g} | {wrong} |")


if __name__ == "__main__":
    main()
