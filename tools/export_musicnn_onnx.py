#!/usr/bin/env python3
"""Export musicnn's pretrained MSD_musicnn and MTT_musicnn taggers to ONNX.

genresort runs these networks with onnxruntime only. TensorFlow is needed just
once, here, to read the TF1 checkpoints shipped inside the musicnn 0.1.0 wheel
(ISC licence, Jordi Pons / MTG-UPF). Run it from a throwaway venv outside the
project, never from the project's own environment:

    python3 -m venv /tmp/musicnn-export-venv
    /tmp/musicnn-export-venv/bin/pip install --no-deps musicnn==0.1.0
    /tmp/musicnn-export-venv/bin/pip install tensorflow-cpu==2.21.0 'tf-keras==2.21.*' \\
        tf2onnx==1.17.0 onnx onnxruntime librosa soundfile
    /tmp/musicnn-export-venv/bin/python tools/export_musicnn_onnx.py

(--no-deps because musicnn 0.1.0 pins numpy<1.17, which does not exist for
Python 3.11; only its checkpoints and graph-building code are used.)

Writes into models/musicnn/: msd_musicnn.onnx, mtt_musicnn.onnx, tags_msd.txt,
tags_mtt.txt and LICENSE-musicnn.txt. Each ONNX file takes one float32 input
`patches` [batch, 187, 96] of log-mel patches and returns `taggram` [batch, 50]
(sigmoid tag probabilities), `penultimate` [batch, 200], `max_pool` and
`mean_pool` [batch, 753].

It then checks the export: on one real clip per genre folder of --audio-dir it
compares onnxruntime against musicnn's graph as musicnn's own extractor builds
it (restored in TensorFlow), prints the largest absolute difference per output
and the top tags per clip, and times single-threaded onnxruntime inference.
Exits non-zero if any difference exceeds --tolerance.
"""

import argparse
import importlib.metadata
import os
import statistics
import sys
import time
from pathlib import Path

import librosa
import numpy as np
import onnx
import onnxruntime as ort

# tf.compat.v1.layers is Keras-2 code; TF >= 2.16 defaults to Keras 3 unless told before import.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import musicnn  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf2onnx  # noqa: E402
from musicnn import configuration, models  # noqa: E402

# musicnn's models are TF1 graphs (placeholders, sessions, Saver checkpoints).
tf.compat.v1.disable_eager_execution()
tf.get_logger().setLevel("ERROR")

# musicnn's signal-processing setup (configuration.py); genresort must compute patches the same way.
SAMPLE_RATE = 16000
N_FFT = 512
HOP_LENGTH = 256
N_MELS = 96
# 3 s of frames: the patch length both models were trained on (config.json "n_frames").
N_FRAMES = 187

# ONNX file name and tag list (in output order) per musicnn model name.
MODELS = {
    "MSD_musicnn": ("msd_musicnn.onnx", "tags_msd.txt", configuration.MSD_LABELS),
    "MTT_musicnn": ("mtt_musicnn.onnx", "tags_mtt.txt", configuration.MTT_LABELS),
}
INPUT = "patches"
OUTPUTS = ("taggram", "penultimate", "max_pool", "mean_pool")

DEFAULT_OUT_DIR = Path(__file__).resolve().parents[1] / "models" / "musicnn"
DEFAULT_AUDIO_DIR = Path("/work/shared/data/gtzan")


def build_graph(model_name, training_placeholder):
    """Build musicnn's graph in a fresh tf.Graph.

    With training_placeholder, is_training is a bool placeholder exactly as in
    musicnn's extractor.py (the reference to verify against). Without it,
    is_training is the Python constant False, so batch norm is built on its
    moving statistics and dropout as identity with no tf.cond in the graph:
    that is the graph worth exporting.

    Returns (graph, patches placeholder, is_training placeholder or None,
    {output name: tensor}).
    """
    graph = tf.Graph()
    with graph.as_default():
        patches = tf.compat.v1.placeholder(tf.float32, [None, N_FRAMES, N_MELS], name=INPUT)
        is_training = tf.compat.v1.placeholder(tf.bool, name="is_training") if training_placeholder else None
        num_classes = len(MODELS[model_name][2])
        logits, _, _, _, _, _, mean_pool, max_pool, penultimate = models.define_model(
            patches, False if is_training is None else is_training, model_name, num_classes
        )
        # Named identities give the frozen graph stable output names whatever musicnn calls its ops.
        outputs = {
            "taggram": tf.identity(tf.nn.sigmoid(logits), name="taggram"),
            "penultimate": tf.identity(penultimate, name="penultimate"),
            "max_pool": tf.identity(max_pool, name="max_pool"),
            "mean_pool": tf.identity(mean_pool, name="mean_pool"),
        }
    return graph, patches, is_training, outputs


def restore(graph, model_name):
    """Open a session on graph with the checkpoint weights shipped in the wheel."""
    # The checkpoints were saved with a directory as prefix, so the files are
    # literally named ".index" / ".data-00000-of-00001" and the prefix is "<dir>/".
    prefix = os.path.join(os.path.dirname(musicnn.__file__), model_name) + os.sep
    sess = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        # Saver fails on any graph variable missing from the checkpoint, so a
        # successful restore proves the rebuilt graph matches the trained one.
        tf.compat.v1.train.Saver().restore(sess, prefix)
    return sess


def export(model_name, out_path, opset):
    graph, _, _, _ = build_graph(model_name, training_placeholder=False)
    tf_inputs = [f"{INPUT}:0"]
    tf_outputs = [f"{name}:0" for name in OUTPUTS]
    with restore(graph, model_name) as sess:
        frozen = tf2onnx.tf_loader.freeze_session(sess, input_names=tf_inputs, output_names=tf_outputs)
    model, _ = tf2onnx.convert.from_graph_def(
        frozen,
        name=model_name,
        input_names=tf_inputs,
        output_names=tf_outputs,
        opset=opset,
        # Drop TF's ":0" suffixes so callers use the plain names.
        tensors_to_rename={f"{name}:0": name for name in (INPUT, *OUTPUTS)},
    )
    # tf2onnx leaves the dynamic batch dimension with a generated name ("unk__123");
    # one shared name documents that every output has the input's batch size.
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    model.doc_string = (
        f"musicnn {model_name} (musicnn 0.1.0, ISC licence, Jordi Pons / MTG-UPF), "
        f"exported by tools/export_musicnn_onnx.py. Input {INPUT}: float32 [batch, {N_FRAMES}, {N_MELS}] "
        "log10(10000 * mel + 1) patches at 16 kHz, n_fft 512, hop 256, 96 mels."
    )
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(out_path))


def log_mel_patches(path):
    """Non-overlapping [n, 187, 96] float32 log-mel patches of an audio file (remainder dropped)."""
    audio, _ = librosa.load(path, sr=SAMPLE_RATE, mono=True)
    mel = librosa.feature.melspectrogram(
        y=audio, sr=SAMPLE_RATE, hop_length=HOP_LENGTH, n_fft=N_FFT, n_mels=N_MELS
    ).T.astype(np.float32)
    # musicnn casts to float16 first; under numpy 2 (NEP 50) 10000 * mel then stays float16,
    # overflows to inf on loud bins, and the network answers NaN for every tag of every clip.
    log_mel = np.log10(10000 * mel + 1)
    n_patches = len(log_mel) // N_FRAMES
    return log_mel[: n_patches * N_FRAMES].reshape(n_patches, N_FRAMES, N_MELS)


def reference_outputs(model_name, batch):
    """Run musicnn's graph, built as its extractor builds it, in TensorFlow."""
    graph, patches, is_training, outputs = build_graph(model_name, training_placeholder=True)
    with restore(graph, model_name) as sess:
        return sess.run(outputs, feed_dict={patches: batch, is_training: False})


def median_inference_seconds(onnx_path, batch, runs):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    sess.run(None, {INPUT: batch})  # the first run allocates buffers; keep it out of the figures
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, {INPUT: batch})
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def pick_clips(audio_dir):
    """The first clip (by name) of each genre folder: different music should get different tags."""
    clips = [min(folder.glob("*.mp3")) for folder in sorted(audio_dir.iterdir()) if any(folder.glob("*.mp3"))]
    if not clips:
        raise SystemExit(f"no *.mp3 clips in the subfolders of {audio_dir}")
    return clips


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="default: %(default)s")
    parser.add_argument(
        "--audio-dir",
        type=Path,
        default=DEFAULT_AUDIO_DIR,
        help="folder of per-genre folders of clips used only to verify (never copied); default: %(default)s",
    )
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset; default: %(default)s")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-3,
        help="largest absolute TF-vs-ONNX difference accepted on any output; default: %(default)s",
    )
    parser.add_argument("--timing-runs", type=int, default=30, help="default: %(default)s")
    return parser.parse_args()


def main():
    args = parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)

    licence = importlib.metadata.distribution("musicnn").read_text("LICENSE.md")
    (args.out_dir / "LICENSE-musicnn.txt").write_text(licence.rstrip("\n") + "\n")

    clips = pick_clips(args.audio_dir)
    clip_patches = [log_mel_patches(clip) for clip in clips]
    batch = np.concatenate(clip_patches)
    bounds = np.cumsum([0] + [len(p) for p in clip_patches])
    print(f"verifying on {len(clips)} clips, {len(batch)} patches of {N_FRAMES}x{N_MELS}")

    failed = False
    timing_batch = batch[:10]
    for model_name, (onnx_name, tags_name, labels) in MODELS.items():
        onnx_path = args.out_dir / onnx_name
        export(model_name, onnx_path, args.opset)
        (args.out_dir / tags_name).write_text("".join(f"{tag}\n" for tag in labels))

        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        got = dict(zip(OUTPUTS, sess.run(list(OUTPUTS), {INPUT: batch}), strict=True))
        expected = reference_outputs(model_name, batch)

        print(f"\n{model_name} -> {onnx_path} ({onnx_path.stat().st_size / 1e6:.2f} MB, opset {args.opset})")
        for name in OUTPUTS:
            diff = float(np.max(np.abs(got[name] - expected[name])))
            failed |= diff > args.tolerance
            # The scale puts the difference in context: pooled features reach ~100, tags stay in [0, 1].
            scale = float(np.max(np.abs(expected[name])))
            print(f"  {name:<12} shape {list(got[name].shape)}  max |onnx - tf| = {diff:.2e}  (max |tf| = {scale:.3g})")

        print("  top-3 tags (taggram averaged over each clip's patches):")
        for clip, start, stop in zip(clips, bounds[:-1], bounds[1:], strict=True):
            mean_tags = got["taggram"][start:stop].mean(axis=0)
            top = ", ".join(f"{labels[i]} {mean_tags[i]:.2f}" for i in np.argsort(mean_tags)[::-1][:3])
            print(f"    {clip.parent.name + '/' + clip.name:<34} {top}")

        seconds = median_inference_seconds(onnx_path, timing_batch, args.timing_runs)
        print(
            f"  onnxruntime, 1 thread, batch of {len(timing_batch)}: "
            f"median {seconds * 1e3:.1f} ms over {args.timing_runs} runs"
        )

    if failed:
        sys.exit(f"FAILED: a difference exceeds --tolerance {args.tolerance}")
    print("\nOK: all outputs within tolerance")


if __name__ == "__main__":
    main()
