"""Which audio container a file holds, told by its first bytes, never by its name.

An MP3 named `.m4a`, a FLAC named `.mp3` or a file staged as `/proc/<pid>/fd/<n>` are known by their content:
the decoder, the inbox and the tagger all ask `format_of(path)`. Everything here is a pure function of bytes but
`read_head`, `format_of` and `read_asf_header`, which read a bounded piece of the file.

What each container is taken as:
- MP3: MPEG audio (layer III, and the rarer layers I and II, which the same decoders read) found by its frame
  sync: the first frame at most a few KB in (after any ID3v2 tag), followed by consecutive frames of the same
  version, layer and rate (three in all), which random data or text almost never gives.
- AAC: a raw ADTS stream (the usual `.aac` file), by two consecutive ADTS frame headers.
- FLAC: `fLaC` (after any ID3v2 tag, which some taggers put in front).
- Ogg: by the codec id of its first page: Vorbis -> OGG_VORBIS, `OpusHead` -> OPUS. An Ogg holding anything
  else (FLAC in Ogg, Speex, Theora video) is None: not one of the formats genresort takes.
- MP4: any ISO media file with an `ftyp` box (M4A, M4B, MP4, 3GP, QuickTime with `ftyp`), AAC or ALAC inside;
  a video without an audio track is the decoder's to refuse, with that reason.
- AIFF: `FORM` ... `AIFF` or `AIFC`. WAV: `RIFF`, `RF64` or `BW64` ... `WAVE`. ASF: its header object's GUID
  (WMA, and WMV, whose audio can be heard).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import BinaryIO
from uuid import UUID


class AudioFormat(StrEnum):
    MP3 = "mp3"
    AAC = "aac"  # raw ADTS; AAC in an MP4 container is MP4
    FLAC = "flac"
    OGG_VORBIS = "ogg-vorbis"
    OPUS = "opus"
    MP4 = "mp4"
    AIFF = "aiff"
    WAV = "wav"
    ASF = "asf"


#: Extensions that name audio files, for the callers that pick files by name (the decoder itself reads content).
AUDIO_EXTENSIONS = frozenset(
    {
        *(".mp3", ".wav", ".flac", ".ogg", ".oga", ".opus"),
        *(".m4a", ".mp4", ".aac", ".alac"),
        *(".aif", ".aiff", ".aifc", ".wma", ".asf"),
    }
)
#: How much `read_head` reads past the ID3v2 tags: enough for three MP3 frames at any rate (at most 2881 bytes
#: each) found within the first few KB, and for an Ogg first page's codec id.
HEAD_BYTES = 16 * 1024
#: How far in the first MPEG frame may be found (past the ID3v2 tags): encoders and taggers leave a little padding.
MP3_SEARCH_BYTES = 4 * 1024
#: How many consecutive MPEG frames make an MP3 (fewer if the file ends first).
MP3_FRAMES = 3

ID3V2_HEADER = 10
OGG_CODECS = {b"\x01vorbis": AudioFormat.OGG_VORBIS, b"OpusHead": AudioFormat.OPUS}
#: ASF's GUIDs as its specification spells them; a file stores them little-endian (`bytes_le`).
ASF_HEADER_GUID = UUID("75B22630-668E-11CF-A6D9-00AA0062CE6C").bytes_le
#: The ASF objects that carry Windows Media DRM: Content Encryption (WMDRM 7), Extended Content Encryption
#: (WMDRM 7 and later), Advanced Content Encryption (PlayReady, inside the Header Extension object).
ASF_DRM_GUIDS = tuple(
    UUID(guid).bytes_le
    for guid in (
        "2211B3FB-BD23-11D2-B4B7-00A0C955FC6E",
        "298AE614-2622-4C17-B935-DAE07EE9289C",
        "43058533-6981-49E6-9B74-AD12CB86D58C",
    )
)
#: An ASF header object larger than this is not read for DRM (covers live in it; 64 MB is far beyond any).
ASF_HEADER_LIMIT = 64 << 20

MPEG_BITRATES_KBPS = {  # (version is MPEG-1, layer) -> kbps by the header's bitrate index 1..14
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}  # by version bits


def id3v2_size(head: bytes) -> int:
    """The length of the ID3v2 tag `head` starts with, header and footer included; 0 if it starts with none."""
    if len(head) < ID3V2_HEADER or head[:3] != b"ID3" or any(byte & 0x80 for byte in head[6:10]):
        return 0
    size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]  # "syncsafe": 7 bits a byte
    footer = ID3V2_HEADER if head[5] & 0x10 else 0
    return ID3V2_HEADER + size + footer


def read_head(path: Path, size: int = HEAD_BYTES) -> bytes:
    """The first `size` bytes of a file's content after its ID3v2 tags (however large their covers)."""
    with open(path, "rb") as stream:
        return head_of(stream, size)


def head_of(stream: BinaryIO, size: int = HEAD_BYTES) -> bytes:
    """read_head of a file already open (read from its start; the position is left after the bytes read)."""
    offset = 0
    stream.seek(0)
    while (tag_size := id3v2_size(stream.read(ID3V2_HEADER))) > 0:
        offset += tag_size
        stream.seek(offset)
    stream.seek(offset)
    return stream.read(size)


def detect_format(head: bytes) -> AudioFormat | None:
    """The container the bytes `head` begin (ID3v2 tags skipped, if `head` holds them whole), or None."""
    while (tag_size := id3v2_size(head)) > 0:
        head = head[tag_size:]
    if head[:4] == b"fLaC":
        return AudioFormat.FLAC
    if head[:4] == b"OggS":
        return ogg_codec(head)
    if head[4:8] == b"ftyp":
        return AudioFormat.MP4
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return AudioFormat.AIFF
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return AudioFormat.WAV
    if head[:16] == ASF_HEADER_GUID:
        return AudioFormat.ASF
    if adts_frames(head):
        return AudioFormat.AAC
    if mpeg_frames(head):
        return AudioFormat.MP3
    return None


def format_of(path: Path) -> AudioFormat | None:
    """The container of the file at `path`, by its content (reads its ID3v2 tags' headers and 16 KB)."""
    return detect_format(read_head(path))


def ogg_codec(head: bytes) -> AudioFormat | None:
    """Vorbis or Opus by the first packet of an Ogg stream's first page (its 27-byte header and segment table)."""
    if len(head) < 27:
        return None
    packet = head[27 + head[26] :]
    return next((audio_format for codec, audio_format in OGG_CODECS.items() if packet.startswith(codec)), None)


def mpeg_frame_length(header: bytes) -> tuple[int, tuple[int, int, int]] | None:
    """The length in bytes of the MPEG audio frame whose 4-byte header is `header`, with its (version, layer, rate)
    to compare with the next frame's; None if these bytes are no valid frame header."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (header[1] >> 3) & 0x3, (header[1] >> 1) & 0x3
    bitrate_index, rate_index, padding = header[2] >> 4, (header[2] >> 2) & 0x3, (header[2] >> 1) & 0x1
    if version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None  # reserved values, or the free bitrate, whose frames cannot be measured
    layer = 4 - layer_bits
    kbps = MPEG_BITRATES_KBPS[(version == 3, layer)][bitrate_index - 1]
    rate = MPEG_RATES[version][rate_index]
    if layer == 1:
        length = (12_000 * kbps // rate + padding) * 4
    else:
        samples = 576 if layer == 3 and version != 3 else 1152
        length = samples // 8 * 1000 * kbps // rate + padding
    return length, (version, layer, rate)


def mpeg_frames(head: bytes) -> bool:
    """Whether `head` holds MPEG audio: a frame header within its first MP3_SEARCH_BYTES, followed by frames of
    the same kind back to back, MP3_FRAMES in all (or as many as `head` has room for, at least two)."""
    position = head.find(b"\xff")
    while 0 <= position < MP3_SEARCH_BYTES:
        if mpeg_run(head, position):
            return True
        position = head.find(b"\xff", position + 1)
    return False


def mpeg_run(head: bytes, position: int) -> bool:
    kind, frames = None, 0
    while frames < MP3_FRAMES and position + 4 <= len(head):
        frame = mpeg_frame_length(head[position : position + 4])
        if frame is None or (kind is not None and frame[1] != kind):
            return False
        kind, frames, position = frame[1], frames + 1, position + frame[0]
    return frames == MP3_FRAMES or (frames >= 2 and position + 4 > len(head))


def adts_frames(head: bytes) -> bool:
    """Whether `head` starts with two consecutive ADTS (raw AAC) frames of the same rate and channels."""
    first = adts_frame(head)
    if first is None:
        return False
    second = adts_frame(head[first[0] :])
    return second is not None and second[1] == first[1]


def adts_frame(head: bytes) -> tuple[int, bytes] | None:
    """(frame length, the bits that stay the same from frame to frame) of the ADTS header `head` starts with."""
    if len(head) < 7 or head[0] != 0xFF or head[1] & 0xF6 != 0xF0:  # 12-bit sync, layer 0
        return None
    if (head[2] >> 2) & 0xF >= 13:  # sampling frequency index: 13 and above are reserved
        return None
    length = ((head[3] & 0x3) << 11) | (head[4] << 3) | (head[5] >> 5)
    if length < 7:
        return None
    return length, bytes((head[1], head[2], head[3] & 0xF0))


def read_asf_header(path: Path) -> bytes:
    """The header object of an ASF file (WMA, WMV): every object about the file before its audio packets."""
    with open(path, "rb") as stream:
        start = stream.read(24)
        size = int.from_bytes(start[16:24], "little") if start[:16] == ASF_HEADER_GUID else 0
        return start + stream.read(max(0, min(size, ASF_HEADER_LIMIT) - len(start)))


def asf_protected(header: bytes) -> bool:
    """Whether an ASF header object declares Windows Media DRM: its audio is encrypted and only a licensed
    player can hear it. A 16-byte GUID found by chance in a cover inside the header is practically impossible."""
    return any(guid in header for guid in ASF_DRM_GUIDS)
