"""The command line: watch, sort, assign, undo, report, classify, train, evaluate.

Nothing heavy is imported before a command runs (numpy, onnxruntime: the analysis side), so `--version` and
`--help` answer at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from datetime import datetime
from importlib import metadata
from pathlib import Path

from genresort.config import ConfigError, check_genre_names, load_settings
from genresort.logs import path_text
from genresort.paths import CARD_JSON, DEFAULT_MODEL_DIR

EXIT_FAILED_FILES = 1
EXIT_BAD_SETUP = 2


def version_text(model_dir: Path = DEFAULT_MODEL_DIR) -> str:
    """`genresort <version>`, then the model's id as GenreModel.model_id gives it, read from the card alone."""
    try:
        version = metadata.version("genresort")
    except metadata.PackageNotFoundError:
        version = "(not installed)"
    card_path = model_dir / CARD_JSON
    try:
        card = json.loads(card_path.read_text())
        model = f"model {card['model_id']} sha256:{card['model_file']['sha256'][:12]}"
    except FileNotFoundError:
        model = f"no model: {card_path} is missing (train one with: genresort train)"
    except (OSError, ValueError, KeyError, TypeError) as error:
        model = f"no usable model: {card_path} cannot be read ({type(error).__name__}: {error})"
    return f"genresort {version}\n{model}"


class VersionAction(argparse.Action):
    """--version, whose text is only worked out when asked for."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and the model's id, then exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(version_text())
        parser.exit()


def _watch(arguments: argparse.Namespace) -> int:
    from genresort.logs import configure_logging, get_logger

    settings = load_settings(arguments.config)
    configure_logging(settings.log_file)  # a bad setting is refused before the daemon's modules are imported
    if settings.cluster is not None:  # a setting shared with `sort` in one file: said, never silently dropped
        get_logger().warning(
            "cluster.ignored",
            cluster=settings.cluster,
            reason="the cluster setting applies to `genresort sort` only: the daemon analyses on this machine",
        )
    from genresort.service.daemon import run_daemon

    return run_daemon(settings, get_logger())


def _sort(arguments: argparse.Namespace) -> int:
    from genresort.logs import configure_logging, get_logger

    settings = load_settings(arguments.config)
    if arguments.cluster is not None:
        settings = settings.model_copy(update={"cluster": arguments.cluster})
    configure_logging(settings.log_file)
    from genresort.service.oneshot import run_once

    return run_once(settings, get_logger(), arguments.paths or None, arguments.dry_run)


def since_time(command: str, since: str | None) -> float | None:
    """--since WHEN as a Unix time (None if not given); ConfigError (exit status 2) if it is no date or time."""
    if since is None:
        return None
    try:
        return datetime.fromisoformat(since).timestamp()
    except ValueError:
        raise ConfigError(f"{command} --since {since!r} is not a date or time like 2026-11-29T14:00") from None


def _undo(arguments: argparse.Namespace) -> int:
    from genresort.logs import configure_logging, get_logger
    from genresort.service.moves import run_undo

    if not (arguments.files or arguments.last or arguments.since):
        print("genresort undo: say what to undo: FILE..., --last N or --since WHEN", file=sys.stderr)
        return EXIT_BAD_SETUP
    since = since_time("undo", arguments.since)
    settings = load_settings(arguments.config)
    configure_logging(settings.log_file)
    return run_undo(settings, get_logger(), arguments.files, arguments.last, since, arguments.to, arguments.dry_run)


def _assign(arguments: argparse.Namespace) -> int:
    from genresort.logs import configure_logging, get_logger
    from genresort.service.moves import run_assign

    settings = load_settings(arguments.config)
    configure_logging(settings.log_file)
    return run_assign(settings, get_logger(), arguments.files, arguments.genre)


def _report(arguments: argparse.Namespace) -> int:
    from genresort.logs import configure_logging, get_logger
    from genresort.service.report import run_report

    since = since_time("report", arguments.since)
    settings = load_settings(arguments.config)
    configure_logging(settings.log_file, stream=sys.stderr)  # stdout is the report's
    return run_report(settings, get_logger(), since, arguments.html)


def _web(arguments: argparse.Namespace) -> int:
    from genresort.logs import configure_logging, get_logger

    settings = load_settings(arguments.config)
    configure_logging(settings.log_file)
    from genresort.service.web import run_web

    return run_web(settings, get_logger())


def _classify(arguments: argparse.Namespace) -> int:
    from threadpoolctl import threadpool_limits

    from genresort.analysis.audio import AudioError
    from genresort.analysis.decision import DecisionKind, decide, decision_fields, unsure_reason
    from genresort.analysis.model import GenreModel
    from genresort.analysis.naming import named, named_explanation
    from genresort.library.model_store import effective_model_dir
    from genresort.progress import ProgressBar

    settings = load_settings(arguments.config)
    model = GenreModel.load(arguments.model or effective_model_dir(settings))
    check_genre_names(settings.genre_names, model.genres)
    threadpool_limits(limits=1)  # a second BLAS thread spins after each small product: 25% more CPU, no gain
    thresholds = model.thresholds
    if arguments.threshold is not None:
        thresholds = replace(thresholds, confidence=arguments.threshold, placement=None)
    files, empty_folders = files_to_classify(arguments.files)
    for folder in empty_folders:
        print(f"genresort: {path_text(folder)}: no audio files in this folder", file=sys.stderr)
    failures = len(empty_folders)
    bar = ProgressBar(len(files), "classify")
    for done, path in enumerate(files, start=1):
        try:
            if arguments.explain:
                prediction, explanation = model.explain(path)
                explanation = named_explanation(explanation, settings.genre_names)
            else:
                prediction, explanation = model.analyse(path), None
            decision = named(decide(prediction, thresholds), settings.genre_names)
        except (AudioError, OSError) as error:
            failures += 1
            reason = error.reason if isinstance(error, AudioError) else error.strerror
            bar.clear()
            print(f"genresort: {path_text(path)}: {reason}", file=sys.stderr)
            bar.draw(done)
            continue
        bar.clear()
        if arguments.json:
            fields = {"path": path_text(path), **decision_fields(decision)}
            if explanation is not None:
                fields["explanation"] = explanation.as_fields()
            print(json.dumps(fields), flush=True)
        else:
            prediction = decision.prediction
            top = ", ".join(f"{genre} {probability:.0%}" for genre, probability in prediction.top)
            verdict = ""
            if decision.kind is DecisionKind.UNSURE:
                verdict = f"  -> unsure ({unsure_reason(decision)})"
            elif decision.kind is DecisionKind.NOT_MUSIC:
                verdict = f"  -> not music (music {prediction.music_probability:.0%})"
            print(
                f"{path_text(path)}: {prediction.genre} ({prediction.confidence:.0%}; top: {top}){verdict}", flush=True
            )
            if explanation is not None:
                windows = ", ".join(f"{verdict.genre} {verdict.probability:.0%}" for verdict in explanation.windows)
                tags = ", ".join(f"{tag} {probability:.0%}" for tag, probability in explanation.tags)
                print(f"  heard, window by window: {windows}\n  strongest tags: {tags}", flush=True)
        bar.draw(done)
    bar.finish()
    return EXIT_FAILED_FILES if failures else 0


def files_to_classify(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """The files to classify: each path given that is not a folder as it is (a missing one fails when read), and
    for a folder every audio file below it, by content, leaving out hidden files and folders; and the folders that
    hold no audio file."""
    files: list[Path] = []
    empty_folders: list[Path] = []
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        found = audio_files_below(path)
        files.extend(found)
        if not found:
            empty_folders.append(path)
    return files, empty_folders


def audio_files_below(folder: Path) -> list[Path]:
    """Every file below `folder` whose content is audio genresort reads (one it cannot read is kept: classify says
    why), sorted, without hidden files or hidden folders (nor symbolic links to folders: a link loop must not hang
    the walk)."""
    from genresort.library.formats import format_of

    def is_audio(path: Path) -> bool:
        try:
            return format_of(path) is not None
        except OSError:
            return True

    found = []
    for parent, folders, names in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(".")]
        found += [Path(parent) / name for name in names if not name.startswith(".") and is_audio(Path(parent) / name)]
    return sorted(found)


def _retrain(arguments: argparse.Namespace) -> int:
    from genresort.service.startup import JOURNAL_NAME

    try:
        from genresort.training.retrain import run_retrain
    except ImportError as error:  # a daemon-only install: no scikit-learn
        raise ConfigError(
            f"retrain needs the train extra ({error.name} is missing): pip install 'genresort[train]'"
        ) from None
    settings = load_settings(arguments.config)
    return run_retrain(settings, settings.state_dir / JOURNAL_NAME, arguments.dry_run)


def _data_source(arguments: argparse.Namespace):
    from genresort.training.dataset import read_genre_folders, read_manifest

    if arguments.manifest:
        return read_manifest(arguments.manifest)
    return read_genre_folders(arguments.folders)


def _realworld(arguments: argparse.Namespace) -> Path | None:
    """The real-world development set to calibrate on: --realworld, else realworld/ beside the manifest if there;
    a person's own genre folders are never calibrated on it (its table knows GTZAN's genres only)."""
    if arguments.realworld is not None:
        if not (arguments.realworld / "MANIFEST.tsv").is_file():
            raise ConfigError(f"--realworld {arguments.realworld}: it holds no MANIFEST.tsv")
        return arguments.realworld
    if arguments.manifest is not None and (arguments.manifest.parent / "realworld" / "MANIFEST.tsv").is_file():
        return arguments.manifest.parent / "realworld"
    return None


def _open_world_data(arguments: argparse.Namespace) -> Path | None:
    """The shared data folder (GTZAN, realworld/ and nonmusic/) the open-world figures are measured on, if the
    manifest is in one."""
    if arguments.manifest is not None and (arguments.manifest.parent / "nonmusic" / "MANIFEST.tsv").is_file():
        return arguments.manifest.parent
    return None


def _train(arguments: argparse.Namespace) -> int:
    from genresort.training.fit import train

    card = train(
        _data_source(arguments),
        arguments.output,
        arguments.cache,
        data_description=str(arguments.manifest or arguments.folders),
        realworld=_realworld(arguments),
        open_world_data=_open_world_data(arguments),
    )
    figures = card["figures"]
    summary = (
        f"model written to {arguments.output}: grouped-CV accuracy {figures['accuracy']:.3f}, "
        f"balanced accuracy {figures['balanced_accuracy']:.3f}"
    )
    if "placement_check" in card:
        real = card["placement_check"]["figures"]
        summary += f"; real songs of held-out artists: {real['coverage']:.0%} placed, {real['precision']:.0%} right"
    else:
        summary += (
            f", threshold {card['threshold']['value']:.2f} sorts {card['threshold']['coverage']:.0%} of files at "
            f"{card['threshold']['precision']:.0%} right"
        )
    print(summary + f"; the model card is {arguments.output / 'MODEL_CARD.md'}")
    return 0


def _evaluate(arguments: argparse.Namespace) -> int:
    from genresort.training.fit import evaluate

    print(
        evaluate(
            _data_source(arguments),
            arguments.report,
            arguments.cache,
            realworld=_realworld(arguments),
            open_world_data=_open_world_data(arguments),
        )
    )
    return 0


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", type=Path, help="a MANIFEST.tsv (file, genre, split, artist_group, quality)")
    source.add_argument("--folders", type=Path, help="a folder with one subfolder of audio files per genre")
    parser.add_argument("--cache", type=Path, default=Path(".cache/features"), help="feature cache folder")
    parser.add_argument(
        "--realworld",
        type=Path,
        help="real songs with published genres to calibrate on (default: realworld/ beside --manifest, if there)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genresort", description="Sort music files into genre folders by their sound."
    )
    parser.add_argument("--version", action=VersionAction)
    commands = parser.add_subparsers(dest="command", required=True)

    watch = commands.add_parser("watch", help="run the daemon: watch the inbox and sort what arrives")
    watch.add_argument("--config", type=Path, help="configuration file (default: config/genresort.toml)")
    watch.set_defaults(handler=_watch)

    sort = commands.add_parser("sort", help="sort the inbox (or the given files) once, then exit")
    sort.add_argument("paths", nargs="*", type=Path, help="files or folders inside the inbox (default: all of it)")
    sort.add_argument("--dry-run", action="store_true", help="print what would happen; touch nothing")
    sort.add_argument("--config", type=Path, help="configuration file (default: config/genresort.toml)")
    sort.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="analyse on this Dask scheduler's workers (tcp://host:8786; needs the cluster extra); default: the "
        "cluster setting, else this machine",
    )
    sort.set_defaults(handler=_sort)

    assign = commands.add_parser("assign", help="give placed files the genre a person decided")
    assign.add_argument("files", nargs="+", type=Path, metavar="FILE", help="files in unsure/, not-music/ or a genre")
    assign.add_argument("genre", help="the genre (its folder and tag name)")
    assign.add_argument("--config", type=Path, help="configuration file (default: config/genresort.toml)")
    assign.set_defaults(handler=_assign)

    undo = commands.add_parser("undo", help="give sorted files back into the inbox as they arrived, byte for byte")
    undo.add_argument("files", nargs="*", type=Path, help="sorted files to give back (in the library, unsure/ ...)")
    undo.add_argument("--last", type=int, help="the last N files sorted")
    undo.add_argument("--since", help="every file sorted since this local date or time (e.g. 2026-11-29T14:00)")
    undo.add_argument("--to", type=Path, help="give them back into this folder instead of the inbox")
    undo.add_argument("--dry-run", action="store_true", help="print what would be given back; change nothing")
    undo.add_argument("--config", type=Path, help="configuration file (default: config/genresort.toml)")
    undo.set_defaults(handler=_undo)

    report = commands.add_parser("report", help="what was sorted: per genre and decision, corrections, busiest hours")
    report.add_argument("--since", help="only files last changed since this local date or time (e.g. 2026-11-29)")
    report.add_argument("--html", type=Path, metavar="FILE", help="also write the report as one HTML page, with charts")
    report.add_argument("--config", type=Path, help="configuration file (default: config/genresort.toml)")
    report.set_defaults(handler=_report)

    web = commands.add_parser(
        "web", help="the review page: decide unsure files, undo sorts, see why (on web_listen, 127.0.0.1:8765)"
    )
    web.add_argument("--config", type=Path, help="configuration file (default: config/genresort.toml)")
    web.set_defaults(handler=_web)

    classify = commands.add_parser("classify", help="print the genre of files; moves nothing")
    classify.add_argument(
        "files", nargs="+", type=Path, metavar="FILE", help="audio files, or folders: every audio file below them"
    )
    classify.add_argument("--json", action="store_true", help="one JSON object per line")
    classify.add_argument(
        "--explain", action="store_true", help="also what each analysis window heard and the strongest tags"
    )
    classify.add_argument("--model", type=Path, help="model folder (default: the configuration's model_dir)")
    classify.add_argument("--threshold", type=float, help="confidence below which the decision is 'unsure'")
    classify.add_argument("--config", type=Path, help="configuration file, for genre_names and model_dir")
    classify.set_defaults(handler=_classify)

    train = commands.add_parser("train", help="train a model and write it with its model card")
    _add_data_arguments(train)
    train.add_argument("--output", type=Path, default=DEFAULT_MODEL_DIR, help="model folder to write")
    train.set_defaults(handler=_train)

    retrain = commands.add_parser(
        "retrain",
        help="learn the genres a person gave files (assign, the review page, moves between genre folders); install "
        "the new model only if it is not worse",
    )
    retrain.add_argument(
        "--dry-run", action="store_true", help="measure before and after, say whether it would install; write nothing"
    )
    retrain.add_argument("--config", type=Path, help="configuration file (default: config/genresort.toml)")
    retrain.set_defaults(handler=_retrain)

    evaluate = commands.add_parser(
        "evaluate", help="every figure of a model card (GTZAN, real songs, non-music) for a model not installed"
    )
    _add_data_arguments(evaluate)
    evaluate.add_argument("--report", type=Path, default=Path("reports"), help="folder for the report and PNGs")
    evaluate.set_defaults(handler=_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    from genresort.analysis.errors import ModelError

    try:
        return arguments.handler(arguments)
    except (ConfigError, ModelError) as error:  # DataSetError is a ConfigError
        print(f"genresort: {error}", file=sys.stderr)
        return EXIT_BAD_SETUP
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
