"""Uploaded videos (intros, outros, video backgrounds): what they are, before decoding.

A video is as hostile as any upload. `probe_video` reads only the container header,
with the bundled ffmpeg limited to the ``file`` protocol, the demuxers of the formats
we take (MP4/QuickTime, WebM/Matroska) and the decoders of the codecs such files
carry, and refuses anything over the limits (length, picture size, frame rate)
before a single frame is decoded. Everything that reads the frames later passes the
same `untrusted_video_input` arguments, so a file cannot switch demuxer or codec
between the check and the decode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from render.audio import ffmpeg_input, header_seconds, read_header
from render.errors import InvalidVideo, StrPath, clean_lines, last_reason

#: Demuxers an uploaded video may be opened with: MP4/QuickTime and WebM/Matroska.
VIDEO_FORMATS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm"
#: Decoders it may use: the video codecs of those containers, and their audio.
VIDEO_CODECS = (
    "h264,hevc,vp8,vp9,av1,libdav1d,mpeg4,prores,mjpeg,"
    "aac,mp3,mp3float,opus,libopus,vorbis,libvorbis,flac,alac,ac3,eac3,"
    "pcm_s16le,pcm_s16be,pcm_s24le,pcm_s24be,pcm_s32le,pcm_s32be,pcm_f32le,pcm_f32be"
)
#: Sound codecs a header may name: those decoders' (checked before decoding, so a
#: video whose sound we would not decode is refused plainly, not mid-render).
HEADER_SOUND_CODECS = frozenset({
    "aac", "mp3", "opus", "vorbis", "flac", "alac", "ac3", "eac3", "pcm_s16le",
    "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_s32le", "pcm_s32be", "pcm_f32le",
    "pcm_f32be",
})
#: Video codecs a header may name (as ffmpeg prints them), checked before decoding.
HEADER_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "prores", "mjpeg"})
#: Largest picture: 4K UHD in either orientation; longest side and pixel count.
MAX_VIDEO_SIDE = 3840
MAX_VIDEO_PIXELS = 3840 * 2160
#: Highest frame rate we decode.
MAX_VIDEO_FPS = 120.0
#: Longest intro or outro, seconds.
MAX_BOOKEND_SECONDS = 60.0
#: Longest video background (it loops; a longer file only costs download and disk).
MAX_BACKGROUND_SECONDS = 600.0
#: What the messages call each use of a video.
VIDEO_ROLES = {"intro": "intro", "outro": "outro", "backgroundVideo": "background video"}
SUPPORTED_VIDEO = "an MP4, MOV or WebM video (H.264, HEVC, VP8, VP9 or AV1)"


@dataclass(frozen=True)
class VideoInfo:
    """What a video's header says: its picture (as decoded, rotation applied), its
    frame rate, its length and whether it has sound."""

    width: int
    height: int
    fps: float
    duration: float
    has_audio: bool


def untrusted_video_input(path: StrPath) -> list[str]:
    """``-i`` for a video a user sent: the ``file`` protocol, video demuxers, known codecs."""
    return [
        "-protocol_whitelist", "file", "-format_whitelist", VIDEO_FORMATS,
        "-codec_whitelist", VIDEO_CODECS, "-i", ffmpeg_input(path),
    ]  # fmt: skip


_VIDEO_STREAM = re.compile(r"Stream #0:\d+[^:]*: Video: (?P<rest>.*)")
_SIZE = re.compile(r"(?<![\dx])(\d{1,6})x(\d{1,6})(?![\dx])")
_FPS = re.compile(r"(\d+(?:\.\d+)?)(k?) (?:fps|tbr)")
_ROTATION = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees")
_AUDIO_STREAM = re.compile(r"Stream #0:\d+[^:]*: Audio: (?P<codec>[\w-]+)")


def probe_video(path: Path, role: str, *, max_seconds: float) -> VideoInfo:
    """The header of an uploaded video, or InvalidVideo saying what is wrong with it.

    ``role`` is how messages name it (``intro``, ``outro``, ``backgroundVideo``).
    """
    what = VIDEO_ROLES.get(role, role)
    if not Path(path).is_file() or Path(path).stat().st_size == 0:
        raise InvalidVideo(f"The {what} is empty. Upload {SUPPORTED_VIDEO}.")
    header = read_header(untrusted_video_input(path), InvalidVideo)
    stream = _VIDEO_STREAM.search(header)
    if stream is None:
        lines = clean_lines(header.splitlines(), [ffmpeg_input(path), path])
        opened = "Input #0" in header
        reason = "it has no video stream" if opened else (
            f"ffmpeg: {last_reason(lines) or 'not a video'}")
        raise InvalidVideo(f"The {what} could not be read as a video ({reason}). "
                           f"Upload {SUPPORTED_VIDEO}.")
    info = _stream_info(stream.group("rest"), header, what)
    if info.width * info.height > MAX_VIDEO_PIXELS or max(info.width, info.height) > MAX_VIDEO_SIDE:
        raise InvalidVideo(f"The {what} is {info.width}x{info.height}: larger than 4K "
                           "(3840x2160). Upload a smaller video.")
    if info.fps > MAX_VIDEO_FPS:
        raise InvalidVideo(f"The {what} runs at {info.fps:g} fps, over the limit of "
                           f"{MAX_VIDEO_FPS:g}. Upload a video of at most {MAX_VIDEO_FPS:g} fps.")
    if not info.duration > 0:
        raise InvalidVideo(f"The {what} has no length in its header. Upload {SUPPORTED_VIDEO}.")
    if info.duration > max_seconds + 0.05:
        raise InvalidVideo(f"The {what} is {info.duration:.1f} s long, over the limit of "
                           f"{max_seconds:g} s. Upload a shorter video.")
    return info


def _stream_info(rest: str, header: str, what: str) -> VideoInfo:
    codec = rest.split(",", 1)[0].split(" ", 1)[0].strip()
    if codec not in HEADER_CODECS:
        raise InvalidVideo(f"The {what} is encoded as {codec or 'an unknown codec'}, which "
                           f"is not supported. Upload {SUPPORTED_VIDEO}.")
    size = _SIZE.search(rest)
    if size is None:
        raise InvalidVideo(f"The {what} has no picture size in its header. "
                           f"Upload {SUPPORTED_VIDEO}.")
    width, height = int(size.group(1)), int(size.group(2))
    if not (width and height):
        raise InvalidVideo(f"The {what} has an empty picture ({width}x{height}). "
                           f"Upload {SUPPORTED_VIDEO}.")
    rotation = _ROTATION.search(header)
    if rotation is not None and round(abs(float(rotation.group(1)))) % 180 == 90:
        width, height = height, width  # ffmpeg turns the picture upright when decoding
    fps = 0.0
    if rate := _FPS.search(rest):
        fps = float(rate.group(1)) * (1000 if rate.group(2) else 1)
    if not fps > 0:
        raise InvalidVideo(f"The {what} has no frame rate in its header. "
                           f"Upload {SUPPORTED_VIDEO}.")
    sound = _AUDIO_STREAM.search(header)
    if sound is not None and sound.group("codec") not in HEADER_SOUND_CODECS:
        raise InvalidVideo(f"The {what}'s sound is encoded as {sound.group('codec')}, which "
                           "is not supported. Upload a video with AAC, MP3, Opus, Vorbis, "
                           "FLAC, AC-3 or PCM sound, or none.")
    duration = header_seconds(header) or 0.0
    return VideoInfo(width=width, height=height, fps=fps, duration=duration,
                     has_audio=sound is not None)
