"""`genresort retrain`: the classifier refitted on the data it was trained on and the person's examples (every genre
a person gave a file, kept by the journal), and installed only when it is not worse.

What it learns from: the model in `model_dir` (the shipped one unless the person set another) carries what its
classifier was fitted on (training_set.npz: GTZAN's clips and the real songs, whole and in windows), so no shared
data is needed. Each example whose file is still there is heard through that model's networks, as `train` hears a
clip; an example that is gone or cannot be read is named and left out. The person's genre names are the folder names
they chose: one that `genre_names` gives a genre of the model teaches that genre (of several merged under one name,
the likeliest); any other name is a genre of the person's own, which the classifier gains, once it has
MIN_NEW_GENRE_EXAMPLES examples. An example of content the training set holds (a GTZAN clip the person relabelled)
replaces that clip.

Cross-validation, before and after: 5 folds of the training set's scored clips and the person's examples together,
grouped by artist (the examples by their album artist or artist tag, else each on its own), one split for both. In
each fold "before" is fitted on the training set alone and "after" on it and the person's examples of the other
folds; both are measured on the same held-out clips (accuracy and balanced accuracy) and the same held-out examples.

"Not worse": the balanced accuracy of "after" on the training set's held-out clips is at least that of "before" less
NOT_WORSE_MARGIN (one point). One clip of the smallest genre (14 clips) moves balanced accuracy by 0.7 point, so a
stricter margin would refuse a model for a single borderline clip; a model that a person's examples pull away from
the data by more than that is refused, with the figures, and the current model stays.

A genre of the person's own and the placement check: the check was calibrated on real songs under GTZAN's genres, and
no real song says how often a "Synthwave" on top is right. The check is kept for the genres it knows and is not
applied when the top genre is a new one: there the top genre's probability alone decides, against the model card's
confidence threshold (chosen, as `train` does, as the lowest at which 90% of the held-out clips and examples it
places are right).

Where the model goes: the shipped model is inside the installed package, read-only under systemd, so the new model is
written to `<state_dir>/models/<model id>/`, loaded once to prove it whole, and made current by swapping the link
`<state_dir>/model` (library/model_store.py). genresort uses it (effective_model_dir) in place of the model it was
retrained from; the daemon picks it up without a restart.
"""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from genresort.analysis.audio import AudioError
from genresort.analysis.features.clip import ClipFeatures
from genresort.analysis.model import CARD_MARKDOWN, MODEL_FILE, NETWORK_FOLDER, GenreModel
from genresort.analysis.model_file import LinearClassifier, ModelError
from genresort.config import ConfigError, Settings, bad_name
from genresort.digest import sha256_file
from genresort.library.journal import Example, Journal, JournalError
from genresort.library.model_store import CURRENT_MODEL, effective_model_dir, install_model, new_model_folder
from genresort.logs import path_text
from genresort.paths import CARD_JSON
from genresort.progress import progress
from genresort.training.classifier import export_classifier, fit_learnt, grouped_splits
from genresort.training.dataset import TRAINING_SET_FILE, LabelledFile, LearntSet, training_set
from genresort.training.evaluation import choose_threshold
from genresort.training.fit import FAMILIARITY_FILE, TARGET_PRECISION, familiarity_of

NOTHING_TO_LEARN = "nothing to learn from: assign or correct some files first"
FOLDS = 5
#: How far below "before" the balanced accuracy of "after" on the training set's held-out clips may fall.
NOT_WORSE_MARGIN = 0.01
MARGIN_POINTS = NOT_WORSE_MARGIN * 100
#: A genre of the person's own is learnt from this many examples on.
MIN_NEW_GENRE_EXAMPLES = 3
EXIT_NOT_INSTALLED = 1


@dataclass(frozen=True)
class Taught:
    """One example heard: the genre it teaches, its artist group and what the networks heard."""

    example: Example
    genre: str
    group: str
    clip: ClipFeatures


@dataclass(frozen=True)
class Heard:
    """The person's examples as the classifier learns them (None: not one could be used), and the others."""

    learnt: LearntSet | None
    left_out: list[str]  # "<path>: <why>", one per example left out
    new_genres: list[str]  # genres of the person's own, which the base model does not have


@dataclass(frozen=True)
class Figures:
    """One side of the cross-validation: its figures on the training set's held-out clips and on the person's
    held-out examples."""

    accuracy: float
    balanced_accuracy: float
    clips: int
    examples_right: int
    examples: int


@dataclass(frozen=True)
class Comparison:
    before: Figures
    after: Figures
    threshold: dict  # the confidence threshold chosen on "after"'s held-out clips and examples (choose_threshold)

    @property
    def not_worse(self) -> bool:
        return self.after.balanced_accuracy >= self.before.balanced_accuracy - NOT_WORSE_MARGIN


def artist_group(path: Path, sha256: str) -> str:
    """An example's artist for the folds: its album artist, else its artist (named as read_genre_folders and the
    real songs name theirs, so that one artist is one group), else the file alone."""
    from mutagen import File as read_tags

    try:
        tags = read_tags(path, easy=True) or {}
        names = [name for key in ("albumartist", "artist") for name in (tags.get(key) or []) if name.strip()]
    except Exception:  # a file whose tags mutagen cannot parse is still an example
        names = []
    return f"artist-{names[0].strip().lower()}" if names else f"file-{sha256}"


def model_genres_named(name: str, genre_names: Mapping[str, str], genres: list[str]) -> list[str]:
    """The model's genres a folder name stands for: the genres shown under it (genre_names renames or merges them),
    or the genre of that name; case aside (on FAT or SMB two names that differ only in case are one folder)."""
    wanted = name.casefold()
    return [genre for genre in genres if wanted in (genre.casefold(), genre_names.get(genre, genre).casefold())]


def hear_examples(
    examples: list[Example], model: GenreModel, genre_names: Mapping[str, str], learnt: LearntSet
) -> Heard:
    """Each example's file heard through `model`'s networks, as `train` hears a clip, under the genre it teaches:
    the model's genre shown under its name (of several merged under it, the likeliest), else a genre of the
    person's own. An example of a clip `learnt` holds goes in that clip's artist group."""
    taught, left_out = [], []
    group_of_content = dict(zip(learnt.sha256, learnt.groups, strict=True))
    for example in progress(examples, len(examples), "examples"):
        problem = bad_name(example.genre)
        if problem is not None:
            left_out.append(f"{path_text(example.path)}: {example.genre!r} is not a genre: {problem}")
            continue
        try:
            clip, _ = model.listen(example.path)
        except FileNotFoundError:
            left_out.append(f"{path_text(example.path)}: it is no longer there (moved or removed since)")
            continue
        except (AudioError, OSError) as error:
            reason = error.reason if isinstance(error, AudioError) else error.strerror
            left_out.append(f"{path_text(example.path)}: {reason}")
            continue
        genre = example.genre
        candidates = model_genres_named(genre, genre_names, model.genres)
        if candidates:
            ranking = dict(model.predict_clip(clip).ranking)
            genre = max(candidates, key=ranking.__getitem__)
        group = group_of_content.get(example.sha256) or artist_group(example.path, example.sha256)
        taught.append(Taught(example, genre, group, clip))
    taught, too_few = own_genres(taught, model.genres)
    left_out += too_few
    new_genres = sorted({one.genre for one in taught} - set(model.genres))
    if not taught:
        return Heard(None, left_out, new_genres)
    rows = training_set([one.clip for one in taught], model.feature_set, model.network_names)
    files = [LabelledFile(one.example.path, one.genre, one.group, scored=True) for one in taught]
    return Heard(LearntSet.of(files, rows, hashes=[one.example.sha256 for one in taught]), left_out, new_genres)


def own_genres(taught: list[Taught], genres: list[str]) -> tuple[list[Taught], list[str]]:
    """The examples of genres of the person's own settled: names that differ only in case are one genre, spelt as
    the latest example spells it; a genre with fewer than MIN_NEW_GENRE_EXAMPLES examples is left out (with why)."""
    spelling = {one.genre.casefold(): one.genre for one in taught if one.genre not in genres}
    taught = [one if one.genre in genres else replace(one, genre=spelling[one.genre.casefold()]) for one in taught]
    counts = Counter(one.genre for one in taught if one.genre not in genres)
    too_few = {genre for genre, count in counts.items() if count < MIN_NEW_GENRE_EXAMPLES}
    left_out = [
        f"{path_text(one.example.path)}: {one.genre} is not a genre of the model, and {counts[one.genre]} "
        f"example(s) are too few to learn a genre from (at least {MIN_NEW_GENRE_EXAMPLES})"
        for one in taught
        if one.genre in too_few
    ]
    return [one for one in taught if one.genre not in too_few], left_out


def compare(learnt: LearntSet, person: LearntSet, folds: int = FOLDS, seed: int = 0) -> Comparison:
    """Artist-grouped cross-validation of the classifier before and after it learns the person's examples, on the
    same folds: "before" trains on `learnt` alone, "after" also on the examples of the training folds; both are
    tested on the same held-out clips (`learnt`'s scored ones) and examples. Rows of a held-out artist (fragments,
    real songs) never train."""
    everything = learnt.joined(person)
    is_example = np.arange(len(everything.genres)) >= len(learnt.genres)
    scored = np.flatnonzero(everything.scored)
    truth = everything.genres[scored]
    with warnings.catch_warnings():  # a genre of a few examples has fewer than `folds` of them: some folds lack it
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        splits = grouped_splits(truth, everything.groups[scored], folds, seed)
    predicted = {side: np.empty(len(scored), dtype=object) for side in ("before", "after")}
    confidence = np.zeros(len(scored))
    for _, test in progress(splits, len(splits), "cross-validation"):
        training = ~np.isin(everything.groups, everything.groups[scored[test]])
        held_out = everything.vectors[everything.own_row[scored[test]]]
        for side, clips in (("before", training & ~is_example), ("after", training)):
            model = fit_learnt(everything.select(clips), seed)
            probabilities = model.predict_proba(held_out)
            predicted[side][test] = model.classes_[probabilities.argmax(axis=1)]
            if side == "after":
                confidence[test] = probabilities.max(axis=1)
    examples = is_example[scored]

    def figures(side: str) -> Figures:
        right = predicted[side] == truth
        recalls = [right[~examples & (truth == genre)].mean() for genre in np.unique(truth[~examples])]
        return Figures(
            float(right[~examples].mean()),
            float(np.mean(recalls)),
            int((~examples).sum()),
            int(right[examples].sum()),
            int(examples.sum()),
        )

    threshold = choose_threshold(predicted["after"] == truth, confidence, TARGET_PRECISION)
    return Comparison(figures("before"), figures("after"), threshold)


def comparison_text(comparison: Comparison, heard: Heard) -> str:
    """The two cross-validations side by side, for a person to read."""
    before, after = comparison.before, comparison.after
    lines = [
        f"cross-validation: {FOLDS} folds grouped by artist, the same folds before and after: {before.clips} clips of "
        f"the training set and your {before.examples} example(s), each held out once",
        f"  {'':36}{'before':>8}{'after':>8}",
        f"  {'training clips: accuracy':36}{before.accuracy:8.3f}{after.accuracy:8.3f}",
        f"  {'training clips: balanced accuracy':36}{before.balanced_accuracy:8.3f}{after.balanced_accuracy:8.3f}",
        f"  {'your examples: right':36}{before.examples_right:>5}/{before.examples:<2}{after.examples_right:>5}/"
        f"{after.examples:<2}",
    ]
    person = heard.learnt
    for genre in heard.new_genres:
        if len(set(person.groups[person.genres == genre])) == 1:
            lines.append(
                f"  ({genre}: every example is by one artist, so no fold learnt it before testing on it; the model "
                "learns it from all of them)"
            )
    return "\n".join(lines)


def verdict_text(comparison: Comparison) -> str:
    """Whether the new model is not worse, and why, by NOT_WORSE_MARGIN."""
    before, after = comparison.before.balanced_accuracy, comparison.after.balanced_accuracy
    if comparison.not_worse:
        return f"not worse: balanced accuracy {before:.3f} -> {after:.3f} (it may fall by {MARGIN_POINTS:g} point)"
    return (
        f"worse: balanced accuracy on the training clips would fall from {before:.3f} to {after:.3f}, more than the "
        f"{MARGIN_POINTS:g} point allowed: your examples pull the model away from the data it was trained on"
    )


def retrained_card(
    model_id: str, base: GenreModel, classifier: LinearClassifier, folder: Path, comparison: Comparison, heard: Heard
) -> dict:
    """The card of the retrained model: what GenreModel.load reads (its genres, files and their sha256, the base
    model's networks, detector and check), the retrain's figures and examples, and the base model's card."""
    person = heard.learnt
    card = {
        "model_id": model_id,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "genres": list(classifier.classes),
        "feature_set": base.card["feature_set"],
        "window_plan": base.card["window_plan"],
        "model_file": {"name": MODEL_FILE, "sha256": sha256_file(folder / MODEL_FILE)},
        "networks": base.card["networks"],
        "threshold": comparison.threshold,
        "retrain": {
            "examples": len(person.genres),
            "examples_per_genre": dict(sorted(Counter(str(genre) for genre in person.genres).items())),
            "new_genres": heard.new_genres,
            "left_out": heard.left_out,
            "protocol": f"{FOLDS} folds of the training set's scored clips and the examples, grouped by artist, the "
            "same folds before (the training set alone) and after (and the examples of the training folds)",
            "before": asdict(comparison.before),
            "after": asdict(comparison.after),
            "rule": "installed when the balanced accuracy after, on the training set's held-out clips, is at least "
            f"the balanced accuracy before less {MARGIN_POINTS:g} point ({NOT_WORSE_MARGIN})",
        },
        "base_model": {
            "model_id": base.card["model_id"],
            "model_file": base.card["model_file"],
            "card_sha256": sha256_file(base.model_dir / CARD_JSON),
            "card": base.card,
        },
    }
    for key in ("music_detector", "placement_check"):
        if key in base.card:
            card[key] = dict(base.card[key])
    if "placement_check" in card and heard.new_genres:
        card["placement_check"]["genres"] = base.card["placement_check"].get("genres", base.genres)
    return card


def retrained_markdown(card: dict, base_markdown: str) -> str:
    """The retrained model's card for a person: what was learnt, the figures, then the base model's card."""
    retrain, base = card["retrain"], card["base_model"]
    before, after = retrain["before"], retrain["after"]
    examples = ", ".join(f"{genre} {count}" for genre, count in retrain["examples_per_genre"].items())
    new = retrain["new_genres"]
    lines = [
        f"# Model card: {card['model_id']}",
        "",
        f"Retrained by `genresort retrain` from `{base['model_id']}` (model file sha256 "
        f"`{base['model_file']['sha256']}`) with {retrain['examples']} examples a person gave: {examples}. The "
        f"classifier `{card['model_file']['name']}` (sha256 `{card['model_file']['sha256']}`) learnt them and the "
        "base model's training set; the networks, the music detector and the placement check are the base model's.",
        "",
    ]
    if new:
        lines += [
            f"Genres of the person's own: {', '.join(new)}. The placement check knows only the base model's genres: "
            f"a file whose top genre is one of these is placed when its probability reaches the confidence threshold "
            f"{card['threshold']['value']:.3f} (at which {card['threshold']['precision']:.0%} of the held-out clips "
            "and examples placed were right).",
            "",
        ]
    lines += [
        "## Cross-validation before and after",
        "",
        retrain["protocol"] + ".",
        "",
        "| held out | before | after |",
        "|---|---|---|",
        f"| training clips ({before['clips']}): accuracy | {before['accuracy']:.3f} | {after['accuracy']:.3f} |",
        f"| training clips: balanced accuracy | {before['balanced_accuracy']:.3f} | {after['balanced_accuracy']:.3f} |",
        f"| the person's examples: right | {before['examples_right']}/{before['examples']} | "
        f"{after['examples_right']}/{after['examples']} |",
        "",
        retrain["rule"].capitalize() + ".",
        "",
    ]
    if retrain["left_out"]:
        lines += ["## Examples left out", "", *(f"- {line}" for line in retrain["left_out"]), ""]
    base_lines = base_markdown.splitlines()
    if base_lines and base_lines[0].startswith("# "):  # its title: the heading below says it
        base_lines = base_lines[1:]
    demoted = [f"#{line}" if line.startswith("#") else line for line in base_lines]
    return "\n".join([*lines, f"## The base model: {base['model_id']}", *demoted, ""])


def write_model(
    folder: Path,
    base: GenreModel,
    classifier: LinearClassifier,
    everything: LearntSet,
    comparison: Comparison,
    heard: Heard,
) -> None:
    """The retrained model's files in `folder`: its classifier, the base model's networks, detector and check
    (copied), its familiarity refitted where the base model has one, and its card; readable by all, writable by
    the owner alone."""
    (folder / MODEL_FILE).write_text(classifier.to_json())
    shutil.copytree(base.model_dir / NETWORK_FOLDER, folder / NETWORK_FOLDER)
    card = retrained_card(folder.name, base, classifier, folder, comparison, heard)
    for key in ("music_detector", "placement_check"):
        if key in card:
            shutil.copyfile(base.model_dir / card[key]["file"], folder / card[key]["file"])
    if "familiarity" in base.card:
        path = folder / FAMILIARITY_FILE
        path.write_text(familiarity_of(everything).to_json())
        card["familiarity"] = {"file": path.name, "sha256": sha256_file(path)}
    (folder / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n")
    base_markdown = (base.model_dir / CARD_MARKDOWN).read_text() if (base.model_dir / CARD_MARKDOWN).is_file() else ""
    (folder / CARD_MARKDOWN).write_text(retrained_markdown(card, base_markdown))
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def read_examples(journal_path: Path) -> list[Example]:
    if not journal_path.is_file():  # opening would create an empty one
        return []
    try:
        with Journal(journal_path) as journal:
            return journal.examples()
    except JournalError as error:
        raise ConfigError(str(error)) from error


def run_retrain(settings: Settings, journal_path: Path, dry_run: bool) -> int:
    """`genresort retrain`: 0 when the new model is installed (or, in a dry run, would be), EXIT_NOT_INSTALLED when
    there is nothing to learn from or the new model is worse; ModelError or ConfigError when it cannot start."""
    base = GenreModel.load(settings.model_dir)
    entry = base.card.get("training_set")
    if entry is None:
        raise ModelError(
            f"the model in {settings.model_dir} does not say what it was trained on (its card names no "
            f"{TRAINING_SET_FILE}): train it again with `genresort train` to be able to retrain it"
        )
    learnt = LearntSet.load(settings.model_dir / entry["file"], entry["sha256"])
    examples = read_examples(journal_path)
    heard = hear_examples(examples, base, settings.genre_names, learnt) if examples else Heard(None, [], [])
    for line in heard.left_out:
        print(f"left out: {line}")
    if heard.learnt is None:
        print(f"genresort retrain: {NOTHING_TO_LEARN}", file=sys.stderr)
        return EXIT_NOT_INSTALLED
    if heard.learnt.vectors.shape[1] != learnt.vectors.shape[1]:
        raise ModelError(f"the training set in {settings.model_dir} does not match its model's networks")
    person = heard.learnt
    learnt = learnt.select(~np.isin(learnt.sha256, person.sha256))  # the person's label replaces the data's
    per_genre = ", ".join(f"{genre} {count}" for genre, count in sorted(Counter(person.genres).items()))
    new = f" (new: {', '.join(heard.new_genres)})" if heard.new_genres else ""
    print(f"learning from {len(person.genres)} example(s): {per_genre}{new}")
    comparison = compare(learnt, person)
    print(comparison_text(comparison, heard))
    print(verdict_text(comparison))
    if not comparison.not_worse:
        print(f"not installed: genresort keeps the model in {path_text(effective_model_dir(settings))}")
        return EXIT_NOT_INSTALLED
    if dry_run:
        print("dry run: nothing written; without --dry-run the new model would be installed")
        return 0
    everything = learnt.joined(person)
    classifier = export_classifier(fit_learnt(everything))
    try:
        folder = new_model_folder(settings.state_dir, f"genresort-retrained-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
        write_model(folder, base, classifier, everything, comparison, heard)
        GenreModel.load(folder)  # whole and loadable before it is used
        install_model(folder, settings.state_dir)
    except OSError as error:
        raise ConfigError(f"cannot install the new model in the state folder {settings.state_dir}: {error}") from error
    print(
        f"installed {folder.name} in {path_text(folder)} ({path_text(settings.state_dir / CURRENT_MODEL)}); the "
        "daemon picks it up without a restart"
    )
    return 0
