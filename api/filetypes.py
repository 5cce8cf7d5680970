"""What an upload's first bytes say it is, so POST /v1/uploads can refuse a file
whose content is not what its name says (a PNG named .mp3) before storing it.

A small signature table rather than a library: the formats are the few the
service reads, each signature is a line here that tests pin, and what counts
is the role (audio, image, captions), not the exact format. A real audio file
under another audio name (an M4A saved as .mp3) is accepted, because the worker
decodes by content and such files render. Only decoding can tell whether the
rest of the file is sound (``invalid_audio``, ``invalid_image``,
``invalid_captions`` from the worker); this looks at the start only.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from jobs.constants import ROLE_AUDIO, ROLE_CAPTIONS, ROLE_IMAGE, ROLE_VIDEO

#: Bytes read from the start of an upload before anything is stored: enough for
#: every signature, and for a fair look at whether captions are text.
PEEK_BYTES = 4096

#: What each role's files may be, as the messages list them.
ROLE_FORMATS = {
    ROLE_AUDIO: "WAV, MP3, M4A/MP4, AAC, Ogg/Opus, FLAC, AIFF, WebM or WMA",
    ROLE_IMAGE: "PNG, JPEG or WebP",
    ROLE_CAPTIONS: "SRT, WebVTT or Whisper JSON text",
    ROLE_VIDEO: "MP4, QuickTime (MOV) or WebM video",
}

#: How each role is used in a job, for the advice in messages.
ROLE_USE = {
    ROLE_AUDIO: "the audio (audioKey)",
    ROLE_IMAGE: "artwork or a background (options.artworkKey, options.backgroundKey)",
    ROLE_CAPTIONS: "captions (options.captionsKey)",
    ROLE_VIDEO: "an intro, an outro or a video background (options.introKey, "
                "options.outroKey, options.backgroundVideoKey)",
}

#: The ASF header object's GUID (WMA).
_ASF = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
#: Box types an MP4/QuickTime file starts with at offset 4 (old QuickTime has no ftyp).
_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")
# C0 controls that never occur in a text file (tab, LF, FF and CR do): as
# render/captions.py refuses them.
_BINARY = re.compile(r"[\x00-\x08\x0b\x0e-\x1f]")


@dataclass(frozen=True)
class Format:
    """A file format recognised by its first bytes."""

    name: str  # as a message names it: "a PNG image"
    role: str
    #: The Content-Type the file is stored (and served) with.
    media_type: str
    #: Containers that also carry video (MP4/QuickTime, WebM): the Content-Type of such
    #: a file stored as a video; None for formats that hold no picture.
    video_type: str | None = None

    def fits(self, role: str) -> bool:
        return role == self.role or (role == ROLE_VIDEO and self.video_type is not None)


WAV = Format("WAV audio", ROLE_AUDIO, "audio/wav")
AIFF = Format("AIFF audio", ROLE_AUDIO, "audio/aiff")
FLAC = Format("FLAC audio", ROLE_AUDIO, "audio/flac")
OGG = Format("Ogg audio", ROLE_AUDIO, "audio/ogg")
MP4 = Format("an MP4/M4A file", ROLE_AUDIO, "audio/mp4", video_type="video/mp4")
MATROSKA = Format("a WebM/Matroska file", ROLE_AUDIO, "audio/webm", video_type="video/webm")
ASF = Format("WMA (ASF) audio", ROLE_AUDIO, "audio/x-ms-wma")
ID3 = Format("ID3-tagged audio", ROLE_AUDIO, "audio/mpeg")
ADTS = Format("AAC (ADTS) audio", ROLE_AUDIO, "audio/aac")
ADIF = Format("AAC (ADIF) audio", ROLE_AUDIO, "audio/aac")
MPEG_AUDIO = Format("MPEG audio (MP3)", ROLE_AUDIO, "audio/mpeg")
PNG = Format("a PNG image", ROLE_IMAGE, "image/png")
JPEG = Format("a JPEG image", ROLE_IMAGE, "image/jpeg")
WEBP = Format("a WebP image", ROLE_IMAGE, "image/webp")

#: Captions are text, not media: the stores serve them as attachments (a browser saves
#: them rather than opens them; `storage.objects.disposition`).
CAPTION_TYPES = {".srt": "application/x-subrip", ".vtt": "text/vtt", ".json": "application/json"}
#: Caption endings whose files must be UTF-8 and start as a JSON object, as a transcript
#: does (JSON is UTF-8 by its standard, RFC 8259), and what to upload instead.
JSON_CAPTIONS = ".json"
JSON_FORMAT = "a Whisper-style JSON transcript in UTF-8"


def identify(head: bytes) -> Format | None:
    """The format the first bytes of a file show, or None if none of ours."""
    magic, brand = head[:4], head[8:12]
    if magic in (b"RIFF", b"RF64", b"BW64") and brand == b"WAVE":
        return WAV
    if magic == b"RIFF" and brand == b"WEBP":
        return WEBP
    if magic == b"FORM" and brand in (b"AIFF", b"AIFC"):
        return AIFF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if magic == b"fLaC":
        return FLAC
    if magic == b"OggS":
        return OGG
    if head[4:8] in _MP4_BOXES:
        return MP4
    if magic == b"\x1a\x45\xdf\xa3":
        return MATROSKA
    if head.startswith(_ASF):
        return ASF
    if magic == b"ADIF":
        return ADIF
    if head.startswith(b"ID3"):
        return _after_id3(head)
    return _frame_sync(head)


def _after_id3(head: bytes) -> Format:
    """What follows an ID3v2 tag (MP3, AAC or FLAC), when the tag ends within ``head``;
    else the tag itself (a tag with cover art can be longer than any peek)."""
    size = head[6:10]
    if len(size) == 4 and not any(b & 0x80 for b in size):
        end = 10 + (size[0] << 21 | size[1] << 14 | size[2] << 7 | size[3])
        end += 10 if len(head) > 5 and head[5] & 0x10 else 0  # a footer
        found = identify(head[end:]) if end < len(head) else None
        if found is not None and found.role == ROLE_AUDIO:
            return found
    return ID3


def _frame_sync(head: bytes) -> Format | None:
    """An MPEG audio frame header or an ADTS header (raw MP3 or AAC, no tag)."""
    if len(head) < 3 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    if layer == 0:  # MPEG audio reserves layer 0; ADTS writes it
        return ADTS if head[1] & 0xF0 == 0xF0 and (head[2] >> 2) & 0xF < 13 else None
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 3
    if version == 1 or bitrate == 0xF or rate == 3:  # reserved values: not a frame
        return None
    return MPEG_AUDIO


def is_text(head: bytes, *, whole: bool, utf8: bool = False) -> bool:
    """Whether ``head`` reads as captions text the way render/captions.py reads it:
    UTF-16 with a BOM, else UTF-8 (BOM or not), else cp1252 (``utf8``: UTF-8 only, as
    JSON); no binary control bytes. ``whole``: ``head`` is the entire file (else a
    character may be cut at its end)."""
    if utf8:
        encodings = ["utf-8-sig"]
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encodings = ["utf-16"]
    else:
        encodings = ["utf-8-sig", "cp1252"]
    for encoding in encodings:
        try:
            text = codecs.getincrementaldecoder(encoding)().decode(head, final=whole)
        except UnicodeDecodeError:
            continue
        return not _BINARY.search(text.removeprefix("\ufeff"))
    return False


def mismatch(role: str, extension: str, head: bytes, *, whole: bool) -> str | None:
    """Why the first bytes of a file named ``*{extension}`` (of ``role``) are not what
    the name says, as a message that says what to do; None when they agree."""
    if role == ROLE_CAPTIONS and extension == JSON_CAPTIONS:
        return _json_mismatch(head, whole=whole)
    if role == ROLE_CAPTIONS and is_text(head, whole=whole):
        return None  # (before identify: a UTF-16 BOM also looks like an MPEG frame)
    found = identify(head)
    if role == ROLE_CAPTIONS:
        shown = found.name if found else "not text"
    else:
        if found is not None and found.fits(role):
            return None
        shown = found.name if found else f"not {ROLE_FORMATS[role]}"
    advice = f"Upload {ROLE_FORMATS[role]} under a name ending {extension}"
    if found is not None and not found.fits(role):
        advice += (f"; to use {found.name} as {ROLE_USE[found.role]}, upload it under a name "
                   f"that says so")
    return f"The file is named *{extension}, but its first bytes are {shown}. {advice}."


def _json_mismatch(head: bytes, *, whole: bool) -> str | None:
    """Why a captions file named ``*.json`` is not a JSON transcript by its first bytes:
    not UTF-8 text, or not a JSON object (a transcript is one); None when it may be."""
    found = identify(head)
    start = head.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n")[:1]
    if not is_text(head, whole=whole, utf8=True):
        # (text first: a UTF-16 BOM also looks like an MPEG frame)
        shown = "text, but not UTF-8" if is_text(head, whole=whole) else \
            found.name if found else "not text"
    elif start != b"{" and (start or whole):  # spaces only so far: the rest may be one
        shown = "not a JSON object"
    else:
        return None
    return (f"The file is named *{JSON_CAPTIONS}, but its first bytes are {shown}. "
            f"Upload {JSON_FORMAT} under a name ending {JSON_CAPTIONS}.")


def stored_type(role: str, extension: str, head: bytes) -> str:
    """The Content-Type an upload is stored with: from what `mismatch` checked (its
    first bytes, or for captions its name), never from the client's Content-Type
    header, which could make a stored file a web page."""
    if role == ROLE_CAPTIONS:
        return CAPTION_TYPES[extension]
    found = identify(head)
    if found is None or not found.fits(role):  # mismatch has refused such a file
        return "application/octet-stream"
    if role == ROLE_VIDEO and found.video_type is not None:
        return "video/quicktime" if extension == ".mov" else found.video_type
    return found.media_type
