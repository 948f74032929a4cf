"""What a person gets from `pip install .`: the model inside the package, only the run-time dependencies, default
folders outside any checkout; and a run-time path that never imports what only training needs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from email.parser import Parser
from pathlib import Path

import pytest

from conftest import write_mp3
from genresort.paths import CHECKOUT_DIR, DEFAULT_MODEL_DIR

TRAINING_ONLY = ("librosa", "matplotlib", "numba", "sklearn", "joblib")
MODEL_ID = json.loads((DEFAULT_MODEL_DIR / "model_card.json").read_text())["model_id"]


def clean_environment(home: Path, **variables: str) -> dict[str, str]:
    """The runner's environment without GENRESORT_* settings and with a home of the test's own, so nothing an
    installed copy derives from the home folder can reach a real one."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("GENRESORT_", "XDG_"))}
    return environment | {"HOME": str(home)} | variables


def run(*command: str | Path, **options) -> subprocess.CompletedProcess:
    return subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=120, **options)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the working tree (the checkout stays free of build/), installed without
    dependencies into a folder of its own: they come from the test's interpreter, so no network is needed."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(CHECKOUT_DIR / "src", source / "src", symlinks=True, ignore=ignore)  # models stays a link
    shutil.copytree(CHECKOUT_DIR / "models", source / "models")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(CHECKOUT_DIR / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = run(*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", source, "-w", root / "wheels")
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (root / "wheels").glob("genresort-*.whl")
    target = root / "target"
    done = run(*pip, "install", "--no-deps", "--no-index", "--target", target, wheel)
    assert done.returncode == 0, done.stdout + done.stderr
    return target


def test_the_installed_copy_classifies_with_the_model_it_carries(installed: Path, tmp_path: Path) -> None:
    song = write_mp3(tmp_path / "song.mp3", seconds=8)
    environment = clean_environment(tmp_path / "home", PYTHONPATH=str(installed))
    result = run(installed / "bin" / "genresort", "classify", "--json", song, env=environment, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert line["path"] == str(song) and line["model"].startswith(MODEL_ID)

    where = run(
        sys.executable,
        "-c",
        "import genresort.paths as p; print(p.__file__); print(p.IS_CHECKOUT); print(p.DEFAULT_MODEL_DIR)",
        env=environment,
        cwd=tmp_path,
    )
    module, is_checkout, model_dir = where.stdout.splitlines()
    assert Path(module).is_relative_to(installed) and is_checkout == "False"
    assert model_dir == str(installed / "genresort" / "models")
    assert not Path(model_dir).is_symlink() and (Path(model_dir) / "musicnn" / "LICENSE-musicnn.txt").is_file()


def test_the_installed_copy_keeps_its_folders_and_configuration_in_the_xdg_folders(
    installed: Path, tmp_path: Path
) -> None:
    environment = clean_environment(tmp_path / "home", PYTHONPATH=str(installed), XDG_DATA_HOME=str(tmp_path / "data"))
    code = "from genresort.config import load_settings; s = load_settings(); print(s.inbox); print(s.state_dir)"
    result = run(sys.executable, "-c", code, env=environment, cwd=tmp_path)
    assert result.stdout.splitlines() == [
        str(tmp_path / "data/genresort/inbox"),
        str(tmp_path / "data/genresort/state"),
    ]

    config = tmp_path / "home" / ".config" / "genresort" / "genresort.toml"
    config.parent.mkdir(parents=True)
    config.write_text('inbox = "/srv/music/inbox"\n')
    result = run(sys.executable, "-c", code, env=environment, cwd=tmp_path)
    assert result.stdout.splitlines()[0] == "/srv/music/inbox", result.stderr


def test_the_wheel_asks_for_librosa_and_matplotlib_only_with_the_train_extra(installed: Path) -> None:
    (metadata,) = installed.glob("genresort-*.dist-info/METADATA")
    requirements = Parser().parsestr(metadata.read_text()).get_all("Requires-Dist")
    for name in ("librosa", "matplotlib"):
        (requirement,) = [line for line in requirements if line.startswith(name)]
        assert 'extra == "train"' in requirement
    assert any(line.startswith("onnxruntime") and "extra" not in line for line in requirements)


def test_the_run_time_path_never_imports_what_only_training_needs(tmp_path: Path) -> None:
    """Every module outside training/ (but the handcrafted features, which only models trained with them use),
    and a whole classification, in a fresh interpreter."""
    song = write_mp3(tmp_path / "song.mp3", seconds=8)
    code = f"""
import importlib, json, pkgutil, sys
import genresort
from genresort.cli import main
skipped = ("genresort.training", "genresort.analysis.features.handcrafted")
for module in pkgutil.walk_packages(genresort.__path__, "genresort."):
    if not module.name.startswith(skipped):
        importlib.import_module(module.name)
assert main(["classify", {str(song)!r}]) == 0
print(json.dumps([name for name in {TRAINING_ONLY!r} if name in sys.modules]))
"""
    result = run(sys.executable, "-c", code, env=clean_environment(tmp_path / "home"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []
