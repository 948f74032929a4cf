"""What the analysis says when it cannot answer: a file that gives no sound to analyse, a model that cannot be used.

Apart from the decoders and the model, so that the daemon's parent process, which only catches these errors and
passes their reasons on, imports no numpy, onnxruntime or decoder: those live in its analysis workers.
"""

from __future__ import annotations

from pathlib import Path

NOT_AUDIO = "not an audio file: its content is none of MP3, FLAC, Ogg Vorbis, Opus, M4A/AAC/ALAC, AIFF, WAV or WMA"


class ModelError(Exception):
    """The model cannot be used; the message says what to do."""


class AudioError(Exception):
    """The file cannot give us sound to analyse; the message says why in plain words."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple:
        """Pickled as itself, so that an analysis worker (a process, or a Dask worker) can send it back: its
        arguments are not its message."""
        return type(self), (self.path, self.reason)


class EmptyFileError(AudioError):
    pass


class NotAudioError(AudioError):
    pass


class TruncatedAudioError(AudioError):
    pass


class TooShortError(AudioError):
    pass


class SilentAudioError(AudioError):
    pass


class DamagedAudioError(AudioError):
    """A file of a known audio format whose header or stream the decoder cannot read."""


class ProtectedAudioError(AudioError):
    """Audio encrypted by DRM: only a licensed player can hear it."""
