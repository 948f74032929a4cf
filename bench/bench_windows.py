"""What more or fewer analysis windows cost or buy in accuracy.

A long track is heard in a few windows of 6 s (2 musicnn patches each). The GTZAN clips are 30 s (10 patches),
so hearing a clip through k windows of 2 patches stands in for hearing a long track through k windows.
Artist-grouped cross-validation as in `genresort evaluate`; the model is trained as the shipped one.

    .venv/bin/python bench/bench_windows.py --manifest ../shared/data/MANIFEST.tsv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from genresort.analysis.features.clip import feature_vector, window_patches
from genresort.training.dataset import read_manifest, training_set
from genresort.training.evaluation import cross_validate, scores
from genresort.training.fit import NETWORK_NAMES, SHIPPED_FEATURE_SET, prepare

WINDOW_COUNTS = (1, 2, 3, 4, 5)
PATCHES_PER_WINDOW = 2  # a 6 s window


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=Path("../shared/data/MANIFEST.tsv"))
    parser.add_argument("--cache", type=Path, default=Path(".cache/features"))
    arguments = parser.parse_args()

    kept, clips = prepare(read_manifest(arguments.manifest), arguments.cache)
    names = list(NETWORK_NAMES)
    rows = training_set(clips, SHIPPED_FEATURE_SET, names)
    print("| heard through | accuracy | balanced accuracy | sorted at >=90% right |")
    print("|---|---|---|---|")
    for count in (None, *WINDOW_COUNTS):
        test_vectors = np.stack(
            [
                feature_vector(
                    clip, SHIPPED_FEATURE_SET, names, window_patches(patch_count(clip), count, PATCHES_PER_WINDOW)
                )
                if count
                else feature_vector(clip, SHIPPED_FEATURE_SET, names)
                for clip in clips
            ]
        )
        figures = scores(cross_validate(kept, rows, test_vectors=test_vectors))
        label = f"{count} x 6 s windows" if count else "the whole 30 s clip"
        print(
            f"| {label} | {figures['accuracy']:.3f} | {figures['balanced_accuracy']:.3f} "
            f"| {figures['threshold']['coverage']:.0%} |",
            flush=True,
        )


def patch_count(clip) -> int:
    return len(clip.network_outputs[NETWORK_NAMES[0]]["taggram"])


if __name__ == "__main__":
    main()
