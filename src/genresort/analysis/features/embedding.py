"""The pretrained musicnn networks (trained on the Million Song Dataset and MagnaTagATune), run with onnxruntime.

The preprocessing is musicnn's own, rewritten here: 96 mel bands of the shared 16 kHz spectrogram,
log10(10000 * x + 1), cut into 3-second patches of 187 frames. It stays in float32: musicnn's float16 cast
overflows under numpy 2 and then every clip gets the same tags.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import onnxruntime

from genresort.analysis.features.spectrogram import mel_filters

PATCH_FRAMES = 187
MEL_BANDS = 96
OUTPUTS = ("taggram", "penultimate", "max_pool", "mean_pool")

_MEL_FILTERS = mel_filters(MEL_BANDS)


def log_mel_patches(power: np.ndarray) -> np.ndarray:
    """Power spectrogram (bins, frames) -> musicnn input patches, shape (patches, 187, 96).

    A window shorter than one patch is repeated to fill it, so a 1-3 s file still gets one patch.
    """
    log_mel = np.log10(10000.0 * (_MEL_FILTERS @ power) + 1.0).T.astype(np.float32)
    if len(log_mel) < PATCH_FRAMES:
        log_mel = np.tile(log_mel, (int(np.ceil(PATCH_FRAMES / len(log_mel))), 1))
    count = len(log_mel) // PATCH_FRAMES
    return log_mel[: count * PATCH_FRAMES].reshape(count, PATCH_FRAMES, MEL_BANDS)


@functools.cache
def _register_shared_arena() -> None:
    """One memory arena for every network in the process (onnxruntime's environment is process-wide):
    each session's own arena would hold about 40 MB that the other network could have reused."""
    memory = onnxruntime.OrtMemoryInfo(
        "Cpu", onnxruntime.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, onnxruntime.OrtMemType.DEFAULT
    )
    onnxruntime.create_and_register_allocator(memory, onnxruntime.OrtArenaCfg(0, -1, -1, -1))


class MusicnnNetwork:
    """One musicnn network loaded from its ONNX file; single-threaded so parallel workers do not fight."""

    def __init__(self, onnx_path: Path) -> None:
        _register_shared_arena()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.use_env_allocators", "1")
        self.name = Path(onnx_path).stem
        self._session = onnxruntime.InferenceSession(
            str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def run(self, patches: np.ndarray) -> dict[str, np.ndarray]:
        """Patches (n, 187, 96) -> each output of `OUTPUTS`, shape (n, width).

        One patch at a time: a batch of ten needs 400 MB of activations, a single patch 40 MB, at the same speed.
        """
        runs = [
            self._session.run(list(OUTPUTS), {"patches": patch[np.newaxis].astype(np.float32, copy=False)})
            for patch in patches
        ]
        return {name: np.concatenate([values[index] for values in runs]) for index, name in enumerate(OUTPUTS)}


def summarise_outputs(outputs: dict[str, np.ndarray]) -> np.ndarray:
    """Per-patch network outputs -> one clip vector.

    Mean and spread of the penultimate layer and of the tag probabilities, and the mean of the max-pooled
    backend features: the patch order carries no genre information, their distribution does.
    """
    return np.concatenate(
        [
            outputs["penultimate"].mean(axis=0),
            outputs["penultimate"].std(axis=0),
            outputs["max_pool"].mean(axis=0),
            outputs["taggram"].mean(axis=0),
            outputs["taggram"].std(axis=0),
        ]
    ).astype(np.float32)
