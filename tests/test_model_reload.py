"""The daemon picks up a new model without a restart (issue 9, part 4): `genresort retrain` installs a model by
swapping a symlink to its folder; the daemon loads it (`model.loaded`) and sorts the next files with it, its id in
their log lines and GENRESORT_MODEL tags. A model that cannot be loaded, or that genre_names no longer fits, is
refused (`model.refused`) and the model in use sorts on."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from conftest import make_mp3
from daemon_harness import Daemon, Folders, analysis_workers, drop
from genresort.analysis.model import MODEL_FILE
from genresort.library.tags import read_fields
from genresort.paths import CARD_JSON, DEFAULT_MODEL_DIR

SHIPPED = json.loads((DEFAULT_MODEL_DIR / CARD_JSON).read_text())
SHIPPED_ID = f"{SHIPPED['model_id']} sha256:{SHIPPED['model_file']['sha256'][:12]}"


def model_like_the_shipped(folder: Path, model_id: str, change: Callable[[dict, Path], None]) -> Path:
    """A copy of the shipped model under another id, with `change(card, folder)` made to it (the card written
    after)."""
    shutil.copytree(DEFAULT_MODEL_DIR, folder)
    card = json.loads((folder / CARD_JSON).read_text())
    card["model_id"] = model_id
    change(card, folder)
    (folder / CARD_JSON).write_text(json.dumps(card))
    return folder


def install(model: Path, link: Path) -> None:
    """As `genresort retrain` installs a model: a new symlink renamed over the old one, in one step."""
    fresh = link.with_name(link.name + ".new")
    fresh.symlink_to(model)
    os.replace(fresh, link)


def sort_one(daemon: Daemon, seed: int) -> dict:
    song = drop(make_mp3(daemon.folders.root / f"song {seed}.mp3", seed), daemon.folders.inbox / f"song {seed}.mp3")
    return daemon.wait_outcome(song)


def places_everything(card: dict, folder: Path) -> None:
    """A different model, honestly: its placement check lets every top genre through."""
    card["placement_check"]["threshold"] = 0.0


def broken(card: dict, folder: Path) -> None:
    """Its classifier's file changed after its card was written: refused by its sha256."""
    with open(folder / MODEL_FILE, "a") as model_file:
        model_file.write(" ")


def without_hip_hop(card: dict, folder: Path) -> None:
    """A model whose genres (classifier and card alike) call Hip-Hop "Rap": genre_names' "Hip-Hop" fits it no more."""
    document = json.loads((folder / MODEL_FILE).read_text())
    document["classes"] = ["Rap" if genre == "Hip-Hop" else genre for genre in document["classes"]]
    (folder / MODEL_FILE).write_text(json.dumps(document))
    card["genres"] = document["classes"]
    card["model_file"]["sha256"] = hashlib.sha256((folder / MODEL_FILE).read_bytes()).hexdigest()


def test_a_new_model_is_loaded_without_a_restart_and_one_that_cannot_be_is_refused(tmp_path: Path) -> None:
    folders = Folders(tmp_path / "music")
    link = tmp_path / "model"
    link.symlink_to(DEFAULT_MODEL_DIR)
    environment = folders.env(stability_seconds=0.5, model_dir=link, genre_names=json.dumps({"Hip-Hop": "Hip Hop"}))
    daemon = Daemon(folders, environment)
    try:
        assert daemon.wait_ready()["model"] == SHIPPED_ID
        assert sort_one(daemon, 1)["model"] == SHIPPED_ID

        new = model_like_the_shipped(tmp_path / "models" / "new", "genresort-new", places_everything)
        install(new, link)
        loaded = daemon.wait_for(lambda: daemon.logs("model.loaded"), "model.loaded")[0]
        new_id = loaded["model"]
        assert new_id.startswith("genresort-new sha256:") and loaded["previous_model"] == SHIPPED_ID
        assert loaded["genres"] == SHIPPED["genres"] and loaded["model_dir"] == str(new)
        line = sort_one(daemon, 2)
        assert line["model"] == new_id and line["placement_threshold"] == 0.0, line
        assert line["event"] == "file.sorted"  # its check places every top genre
        assert read_fields(Path(line["destination"]))["GENRESORT_MODEL"] == [new_id]
        daemon.wait_for(lambda: len(analysis_workers(daemon)) == 1, "the old model's worker stopped")

        for name, change, reason in [
            ("broken", broken, "sha256"),
            ("without Hip-Hop", without_hip_hop, "genre_names"),
        ]:
            refused_model = model_like_the_shipped(tmp_path / "models" / name, f"genresort-{name}", change)
            install(refused_model, link)
            refused = daemon.wait_for(
                lambda folder=refused_model: [
                    line for line in daemon.logs("model.refused") if line["model_dir"] == str(folder)
                ],
                f"model.refused for the {name} model",
            )[0]
            assert reason in refused["reason"] and refused["model"] == new_id, refused
            assert sort_one(daemon, 3 if name == "broken" else 4)["model"] == new_id  # the model in use sorts on
        assert len(daemon.logs("model.loaded")) == 1 and len(daemon.logs("model.refused")) == 2
        assert daemon.terminate() == 0
    finally:
        daemon.close()
