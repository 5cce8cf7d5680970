"""The audiogram as a moviepy clip, for people who edit with moviepy.

``audiogram_clip("episode.mp3", style="wave", title="Episode 12")`` is a moviepy 2.x
``VideoClip`` with its audio: put it in a ``CompositeVideoClip``, between an intro
and an outro with ``concatenate_videoclips``, through effects, and write it with
``write_videofile``. It takes the options ``python -m render`` takes (a
``RenderSpec``, or the same names as keywords) and files instead of storage keys.

Its frames are the engine's frames: the clip is decoded once into the engine's
compact features (render.analysis) and each frame moviepy asks for is drawn on
demand by the same ``Scene`` ``render_video`` draws with, in YUV, then turned into
RGB for moviepy. Nothing holds more than one frame, so an hour iterates in the
memory of a minute. A frame asked out of order is still the video's frame: the
styles step their smoothing forward through skipped frames, and replay it from the
start for an earlier one (render.styles.Levels).

Its audio is the clip window the engine muxes (the same ffmpeg input arguments,
render.encoder.audio_input), decoded once by our ffmpeg to a temporary WAV that
moviepy reads. moviepy's own reader is never pointed at the user's file: it opens
files without the protocol and demuxer allow-lists every ffmpeg run on an upload
gets here (render.audio.untrusted_input). ``clip.close()`` (or ``with``) removes
the WAV; otherwise it goes when the last copy of the clip's audio is collected.

The service does not render through here: moviepy hands ffmpeg RGB frames, which
costs more than the encode itself (render.canvas; bench/render.py measures the
difference), so the engine keeps its raw YUV pipe.
"""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any

import numpy as np
from moviepy import AudioFileClip, VideoClip

from render.audio import ffmpeg_exe, ffmpeg_input, path_aliases, reap, start_ffmpeg
from render.canvas import Planes
from render.encoder import AUDIO_ARGS, CONTAINER_ARGS, PRESET, audio_input, video_args
from render.engine import PREPARED_RATE, Scene
from render.errors import InvalidAudio, RenderFailed, StderrTail, StrPath, blames_input
from render.spec import Assets, RenderSpec

#: A time that should fall on a frame's start can arrive a hair early: ``k / fps * fps``
#: is below ``k`` for about one frame in twenty at 25 fps (moviepy's own frame times),
#: and a timeline subtracts the clip's start. Within this fraction of a frame, a time
#: counts as that frame's.
FRAME_TOLERANCE = 1e-6
#: The temporary WAV: what moviepy reads (44.1 kHz 16-bit, mono or stereo as the input).
WAV_FILTER = f"aformat=sample_fmts=s16:sample_rates={PREPARED_RATE}:channel_layouts=mono|stereo"
#: Decoding the window to the WAV gets this long before it counts as hung.
DECODE_TIMEOUT = 1800
#: Options of render.encoder.video_args that write_videofile sets from its own keywords.
MOVIEPY_SETS = ("-c:v", "-preset")
#: moviepy's RGB frames come untagged, and ffmpeg then drops the output's primaries and
#: transfer tags (the BT.709 matrix and range stay): this tags the frames themselves.
TAG_FILTER = "setparams=color_primaries=bt709:color_trc=bt709"
#: Keywords that name files here, and the spec field each stands for (a storage key
#: in the API).
FILE_OPTIONS = {"background_image": "background_key", "artwork": "artwork_key",
                "captions": "captions_key"}


def frame_index(t: float, fps: int, frames: int) -> int:
    """The frame shown at ``t`` seconds: ``int(t * fps)``, with a time a hair before a
    frame's start counted as that frame, clamped to the clip's frames."""
    return min(max(math.floor(t * fps + FRAME_TOLERANCE), 0), frames - 1)


class Frames:
    """moviepy's ``frame_function``: the engine's frame at ``t`` as (H, W, 3) uint8 RGB.

    Draws into one reused YUV frame; keeps the last frame it drew, so a frame asked
    twice (moviepy does, and a timeline faster than the clip's fps) is drawn once.
    A lock keeps the scene's smoothing state whole if frames are asked from threads.
    """

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        spec = scene.spec
        self._planes = Planes.empty(spec.width, spec.height)
        self._lock = threading.Lock()
        self._index = -1
        self._rgb = np.zeros((spec.height, spec.width, 3), np.uint8)

    def __call__(self, t: float) -> np.ndarray:
        index = frame_index(float(t), self.scene.spec.fps, self.scene.frames)
        with self._lock:
            if index != self._index:
                self.scene.draw(self._planes, index)
                self._rgb, self._index = self._planes.to_rgb(), index
            return self._rgb.copy()  # the caller may paint on it; the kept one stays


class AudiogramClip(VideoClip):
    """A ``VideoClip`` of an audiogram with its audio, and ``spec``, what it draws.
    ``close()`` closes the audio and removes its temporary WAV, as moviepy's file
    clips close their readers (so, as there, the clip's copies lose their audio)."""

    def __init__(self, frames: Frames, duration: float, sound: WindowAudio) -> None:
        super().__init__(frames, duration=duration)
        self.spec = frames.scene.spec
        self.fps = self.spec.fps
        self.audio = sound.clip.with_duration(duration)
        self._remove_wav = sound.remove

    def close(self) -> None:
        if self.audio is not None:
            self.audio.close()
            self.audio = None
        self._remove_wav()


def audiogram_clip(
    audio: StrPath,
    spec: RenderSpec | None = None,
    *,
    artwork: StrPath | None = None,
    background_image: StrPath | None = None,
    captions: StrPath | None = None,
    max_seconds: float | None = None,
    **options: Any,
) -> AudiogramClip:
    """The audiogram of ``audio`` as a moviepy clip with its audio.

    Give a ``RenderSpec`` or its options as keywords (``style="wave"``, ``width=1080``,
    ``title=...``, ``start=30``, ``end=90``; ``size=(w, h)`` for width and height), not
    both; ``artwork``, ``background_image`` and ``captions`` are files, and
    ``max_seconds`` cuts the clip, as ``python -m render``'s flags do. The clip has the
    spec's size and fps; its duration is the audio of the clip window, as
    ``render_video`` reports it. Bad options raise pydantic's ``ValidationError``
    naming the field; unusable files raise what ``render_video`` raises
    (InvalidAudio, InvalidImage, InvalidCaptions).
    """
    spec = _spec_of(spec, options)
    keys = [name for name, key in FILE_OPTIONS.items() if getattr(spec, key) is not None]
    if keys:
        raise ValueError(f"the spec names storage keys; give the files instead: {keys}")
    assets = Assets(background=_path(background_image), artwork=_path(artwork),
                    captions=_path(captions))
    scene = Scene(Path(audio), spec, assets, max_seconds)
    duration = scene.analysis.duration
    return AudiogramClip(Frames(scene), duration, WindowAudio(Path(audio), spec.start, duration))


def write_options(spec: RenderSpec) -> dict[str, Any]:
    """Keywords for moviepy's ``write_videofile`` that encode as the engine does: x264
    at the spec's preset, quality and keyframe interval, BT.709, AAC at the same rate,
    the index at the front (``edit.write_videofile("out.mp4", **write_options(spec))``)."""
    video = video_args(spec.quality, spec.fps)
    pairs = zip(video[::2], video[1::2], strict=True)
    params = [arg for flag, value in pairs if flag not in MOVIEPY_SETS for arg in (flag, value)]
    return {
        "fps": spec.fps,
        "codec": video[video.index("-c:v") + 1],
        "preset": PRESET,
        "audio_codec": AUDIO_ARGS[AUDIO_ARGS.index("-c:a") + 1],
        "audio_bitrate": AUDIO_ARGS[AUDIO_ARGS.index("-b:a") + 1],
        "ffmpeg_params": [*params, "-vf", TAG_FILTER, *CONTAINER_ARGS],
    }


def _spec_of(spec: RenderSpec | None, options: dict[str, Any]) -> RenderSpec:
    if spec is not None and options:
        raise TypeError("give a RenderSpec or options as keywords, not both")
    if spec is not None:
        return spec
    if "size" in options:
        options = dict(options)
        options["width"], options["height"] = options.pop("size")
    return RenderSpec(**options)


def _path(value: StrPath | None) -> Path | None:
    return None if value is None else Path(value)


class WindowAudio:
    """The clip window of an audio file as a moviepy clip (``clip``), read from a WAV
    our ffmpeg wrote; ``remove()`` deletes the WAV (called at the latest when the
    clip's reader, shared by all its copies, is collected, or at exit)."""

    def __init__(self, audio: Path, start: float, duration: float) -> None:
        handle, name = tempfile.mkstemp(prefix="audiogram-", suffix=".wav")
        os.close(handle)
        wav = Path(name)
        try:
            _decode_window(audio, start, duration, wav)
            self.clip = AudioFileClip(str(wav))
        except BaseException:
            wav.unlink(missing_ok=True)
            raise
        self.remove = weakref.finalize(self.clip.reader, wav.unlink, missing_ok=True)


def _decode_window(audio: Path, start: float, duration: float, out: Path) -> None:
    """Decode the window as the engine's encoder reads it, to a 16-bit WAV (RF64 past
    4 GiB: about 6.7 hours of stereo)."""
    command = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-v", "error",
        *audio_input(audio, start, duration), "-map", "0:a:0", "-vn", "-sn", "-dn",
        "-af", WAV_FILTER, "-c:a", "pcm_s16le", "-map_metadata", "-1", "-rf64", "auto",
        "-f", "wav", "-y", ffmpeg_input(out),
    ]  # fmt: skip
    process = start_ffmpeg(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        assert process.stderr is not None
        stderr = StderrTail(process.stderr)
        if process.wait(timeout=DECODE_TIMEOUT) != 0:
            lines, aliases = stderr.lines(), path_aliases(audio, out)
            if blames_input(lines):
                raise InvalidAudio.from_ffmpeg(lines, aliases)
            raise RenderFailed.from_ffmpeg("Decoding the audio", lines, aliases)
    finally:
        reap(process)
