"""Features: the tutorial's descriptors and the musicnn networks on real music."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_clip
from genresort.analysis.audio import WindowPlan, decode_analysis_windows
from genresort.analysis.features.clip import (
    ClipFeatures,
    FeatureSet,
    FirstLookVectors,
    extract_clip_features,
    feature_vector,
    first_look_places,
    joined_outputs,
)
from genresort.analysis.features.embedding import PATCH_FRAMES, MusicnnNetwork, log_mel_patches
from genresort.analysis.features.spectrogram import SAMPLE_RATE, power_spectrogram
from genresort.analysis.model import NETWORK_FOLDER
from genresort.paths import DEFAULT_MODEL_DIR

NETWORKS = ("msd_musicnn", "mtt_musicnn")


@pytest.fixture(scope="module")
def networks() -> list[MusicnnNetwork]:
    return [MusicnnNetwork(DEFAULT_MODEL_DIR / NETWORK_FOLDER / f"{name}.onnx") for name in NETWORKS]


def clip_features(genre: str, networks: list[MusicnnNetwork]):
    windows = decode_analysis_windows(shared_clip(genre), SAMPLE_RATE, WindowPlan())
    return extract_clip_features(windows, networks)


def test_patches_follow_musicnn_preprocessing() -> None:
    audio = np.random.default_rng(0).standard_normal(SAMPLE_RATE * 7).astype(np.float32) * 0.1
    patches = log_mel_patches(power_spectrogram(audio))
    assert patches.shape == (2, PATCH_FRAMES, 96)
    assert patches.dtype == np.float32 and np.isfinite(patches).all() and patches.min() >= 0.0


def test_a_window_shorter_than_a_patch_is_repeated_to_fill_one() -> None:
    audio = np.random.default_rng(0).standard_normal(int(SAMPLE_RATE * 1.5)).astype(np.float32) * 0.1
    assert log_mel_patches(power_spectrogram(audio)).shape == (1, PATCH_FRAMES, 96)


def test_loud_music_does_not_overflow(networks: list[MusicnnNetwork]) -> None:
    """musicnn's own float16 cast overflows on loud input and then tags every clip alike; ours stays finite."""
    audio = np.clip(np.random.default_rng(0).standard_normal(SAMPLE_RATE * 3) * 4.0, -1, 1).astype(np.float32)
    outputs = networks[0].run(log_mel_patches(power_spectrogram(audio)))
    assert all(np.isfinite(values).all() for values in outputs.values())


def test_different_music_gives_finite_and_different_embeddings(networks: list[MusicnnNetwork]) -> None:
    clips = {genre: clip_features(genre, networks) for genre in ("classical", "metal", "hiphop")}
    vectors = {genre: feature_vector(clip, FeatureSet.EMBEDDING, list(NETWORKS)) for genre, clip in clips.items()}
    for vector in vectors.values():
        assert np.isfinite(vector).all()
    assert not np.allclose(vectors["classical"], vectors["metal"], rtol=0.05)
    assert not np.allclose(vectors["metal"], vectors["hiphop"], rtol=0.05)
    for network, genre, expected in (
        ("mtt_musicnn", "classical", "classical"),
        ("msd_musicnn", "metal", "metal"),
        ("msd_musicnn", "hiphop", "Hip-Hop"),
    ):
        tags = (DEFAULT_MODEL_DIR / NETWORK_FOLDER / f"tags_{network[:3]}.txt").read_text().splitlines()
        taggram = clips[genre].network_outputs[network]["taggram"].mean(axis=0)
        assert expected in [tags[index] for index in np.argsort(taggram)[::-1][:5]], genre


def test_handcrafted_features_are_finite_and_tell_genres_apart(networks: list[MusicnnNetwork]) -> None:
    classical = clip_features("classical", networks).handcrafted
    metal = clip_features("metal", networks).handcrafted
    assert classical.shape == metal.shape and np.isfinite(classical).all()
    # the tutorial's first two features: metal is noisier and brighter than classical
    zero_crossing_rate, centroid = 0, 1
    assert metal[zero_crossing_rate] > classical[zero_crossing_rate]
    assert metal[centroid] > classical[centroid]


def test_the_numpy_spectrogram_and_mel_filters_equal_librosas() -> None:
    import librosa

    from genresort.analysis.features.spectrogram import HOP_LENGTH, N_FFT, mel_filters

    audio = np.random.default_rng(3).standard_normal(SAMPLE_RATE * 2 + 123).astype(np.float32) * 0.2
    expected = np.abs(librosa.stft(audio, n_fft=N_FFT, hop_length=HOP_LENGTH, center=True)) ** 2
    np.testing.assert_allclose(power_spectrogram(audio), expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        mel_filters(96), librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=96), rtol=1e-5, atol=1e-8
    )


def test_a_quieter_copy_gives_the_same_features(networks: list[MusicnnNetwork]) -> None:
    """Real files come at every loudness; the networks' log compression is not gain-invariant, so clips are
    brought to one loudness first (a quiet copy at -20 dB changed half of the answers before)."""
    windows = decode_analysis_windows(shared_clip("country", 3), SAMPLE_RATE, WindowPlan())
    loud = extract_clip_features(windows, networks, with_handcrafted=False)
    quiet = extract_clip_features([window * 0.1 for window in windows], networks, with_handcrafted=False)
    for name in NETWORKS:
        np.testing.assert_allclose(
            loud.network_outputs[name]["taggram"], quiet.network_outputs[name]["taggram"], atol=1e-4
        )


def test_a_first_look_hears_two_places_of_two_patches_and_a_short_clip_whole() -> None:
    assert [place.tolist() for place in first_look_places(10)] == [[1, 2], [7, 8]]
    assert first_look_places(4) is None  # no less to hear
    rows = np.arange(20, dtype=np.float32).reshape(10, 2)
    outputs = {"net": {"taggram": rows, "penultimate": rows + 1, "max_pool": rows * 2}}
    long = ClipFeatures(np.zeros(0), outputs)
    short = ClipFeatures(np.zeros(0), {"net": {name: values[:3] for name, values in outputs["net"].items()}})
    looks = FirstLookVectors.of([long, short], FeatureSet.EMBEDDING, ["net"])
    assert looks.glance.shape[0] == 2 and len(looks.places) == 2
    assert np.array_equal(looks.glance[0], feature_vector(long, FeatureSet.EMBEDDING, ["net"], np.array([1, 2, 7, 8])))
    whole = feature_vector(short, FeatureSet.EMBEDDING, ["net"])
    assert all(np.array_equal(vectors[1], whole) for vectors in (looks.glance, *looks.places))


def test_a_clip_heard_in_two_parts_gives_the_outputs_of_hearing_it_at_once() -> None:
    outputs = {"net": {"taggram": np.arange(12, dtype=np.float32).reshape(6, 2)}}
    first = np.array([1, 4])
    rest = {"net": {"taggram": np.delete(outputs["net"]["taggram"], first, axis=0)}}
    joined = joined_outputs({"net": {"taggram": outputs["net"]["taggram"][first]}}, first, rest)
    assert np.array_equal(joined["net"]["taggram"], outputs["net"]["taggram"])
