"""Intros, outros and fades: a video in parts, one soundtrack, joined without re-encoding.

A render with an intro or outro (``introKey``/``outroKey``) or a fade (``fadeIn``/
``fadeOut``) is written in parts and joined:

- the body (the audiogram, possibly an hour) is drawn by the engine as always, video
  only. A fade with no bookend on its side is painted on the engine's YUV frames
  (`BodyFades`) as a function of the frame index and the clip's frame count alone, so
  the windows of a split render draw exactly the frames an unsplit render draws;
- each bookend (seconds) is composed with moviepy (`compose_bookend`): the upload's
  picture, decoded at the spec's frame rate and at the size it is shown (`shown_size`:
  covering or fitting the canvas), cropped to the canvas (cover) or centred on the
  background colour (fit), with moviepy's FadeIn/FadeOut when the fade falls on it,
  written by ``write_videofile`` with the body's encoder settings (render.encoder
  `video_args`; RGB to BT.709 limited range, `RGB_TO_YUV`). Same codec, settings,
  size, rate and tags give the same SPS and PPS, so the concat demuxer copies every
  part's packets: the body is never re-encoded. The decoding ffmpeg scales rather
  than moviepy's ``resized`` (PIL): measured on a 4K intro, 80 ms of Python per frame
  in moviepy against 6 ms in all with ffmpeg's scaler, and a 4K frame (25 MB of RGB)
  never crosses the pipe;
- the soundtrack is encoded once (`encode_soundtrack`): the intro's sound (silence if
  it has none), the clip window of the audio, the outro's sound, each padded or cut to
  its part's exact frame length, faded, concatenated sample-exact and encoded to AAC
  in one ffmpeg. AAC files joined by the concat demuxer click at every seam (each
  starts with encoder priming) and drift by up to a packet per part;
- `join` concatenates the parts (concat demuxer, stream copy), muxes the soundtrack
  and moves the index to the front. A split render (render.split) joins its windows,
  and its bookends, with the same function.

Reading the uploads: moviepy's VideoFileClip runs ffmpeg on the file with every
protocol, demuxer and decoder, so it never sees an upload. `UploadFrames` decodes
with render.video's whitelist (`untrusted_video_input`), after `probe_video` checked
the header (length, size, frame rate, codec), and hands moviepy the frames; a decode
error is InvalidVideo with no local path in its message.

The audio fades are ffmpeg's ``afade`` in the soundtrack's one command rather than
moviepy's AudioFadeIn/AudioFadeOut: the soundtrack never passes through Python, so the
bookends' sound would have to be decoded into numpy and written back only to be faded;
``afade``'s default curve is the same linear ramp as moviepy's.
"""

from __future__ import annotations

import math
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from moviepy import CompositeVideoClip, VideoClip, vfx

from render.audio import ffmpeg_exe, ffmpeg_input, path_aliases, reap, start_ffmpeg
from render.canvas import Planes
from render.encoder import (
    AUDIO_ARGS,
    AUDIO_CODEC_ARGS,
    COLOR_ARGS,
    CONTAINER_ARGS,
    PRESET,
    audio_input,
    video_args,
)
from render.errors import (
    InvalidVideo,
    RenderCanceled,
    RenderFailed,
    StderrTail,
    blames_input,
    clean_lines,
    last_reason,
)
from render.spec import Assets, RenderSpec
from render.video import (
    MAX_BOOKEND_SECONDS,
    VIDEO_ROLES,
    VideoInfo,
    probe_video,
    untrusted_video_input,
)

#: ffmpeg steps here (soundtrack, join) get this long before they count as hung.
STEP_TIMEOUT = 1800
#: How often a running step asks whether the job was canceled, seconds.
STOP_POLL_SECONDS = 0.25
#: A bookend's decoder has this long to exit once its picture has ended (it has closed
#: its output: only its last words to stderr are left), seconds.
DECODER_EXIT_SECONDS = 60
#: The soundtrack of a composed video: one rate and layout, so its parts concatenate.
SOUND_RATE = 48000
SOUND_LAYOUT = "stereo"
#: moviepy's RGB frames to the body's YUV: BT.709, limited range (render.canvas), as
#: a filter on the bookend's encoder (only the tags would leave ffmpeg's BT.601 matrix).
RGB_TO_YUV = (
    "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,"
    "setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709"
)


def composes(spec: RenderSpec) -> bool:
    """Whether a render of ``spec`` is written in parts and joined (vs. one ffmpeg)."""
    return bool(spec.intro_key or spec.outro_key or spec.fade_in or spec.fade_out)


@dataclass(frozen=True)
class BodyFades:
    """The body's fades from and to black, drawn on its YUV frames: fadeIn when there
    is no intro, fadeOut when there is no outro (a bookend takes the fade on its side).

    The level of frame ``i`` is moviepy's: ``i / (fps x fadeIn)`` going in and
    ``(frames - i) / (fps x fadeOut)`` going out, capped at 1.
    """

    fade_in: float  # frames of fade (fps x seconds); 0: none
    fade_out: float
    frames: int  # of the whole clip, whatever window draws it

    @classmethod
    def of(cls, spec: RenderSpec, frames: int) -> BodyFades:
        """A fade longer than the body spans the body (as its sound's does)."""
        fade_in = 0.0 if spec.intro_key else min(spec.fade_in * spec.fps, frames)
        fade_out = 0.0 if spec.outro_key else min(spec.fade_out * spec.fps, frames)
        return cls(fade_in, fade_out, frames)

    def level(self, index: int) -> float:
        level = 1.0
        if self.fade_in > 0:
            level = min(level, index / self.fade_in)
        if self.fade_out > 0:
            level = min(level, (self.frames - index) / self.fade_out)
        return max(level, 0.0)

    def apply(self, planes: Planes, index: int) -> None:
        """Fade frame ``index`` in place: Y toward 16 (black), U and V toward 128."""
        level = self.level(index)
        if level >= 1.0:
            return
        for plane, floor in ((planes.y, 16.0), (planes.u, 128.0), (planes.v, 128.0)):
            faded = (plane.astype(np.float32) - floor) * level + floor
            np.rint(faded, out=faded)
            plane[:] = faded


@dataclass(frozen=True)
class Bookend:
    """An intro or outro: its upload, what its header says, and its length in frames of
    the spec's rate (the picture's last frame stays, or the rest is cut, to fill it)."""

    role: str  # "intro" | "outro"
    path: Path
    info: VideoInfo
    frames: int

    @property
    def what(self) -> str:
        return VIDEO_ROLES.get(self.role, self.role)


@dataclass(frozen=True)
class Bookends:
    """The intro and outro of a spec (either may be absent), checked from their headers."""

    intro: Bookend | None = None
    outro: Bookend | None = None

    @classmethod
    def of(cls, spec: RenderSpec, assets: Assets) -> Bookends:
        """Probe the intro and outro ``spec`` names (InvalidVideo for a bad one) before
        anything is decoded."""
        found: dict[str, Bookend] = {}
        for role, key, path in (("intro", spec.intro_key, assets.intro),
                                ("outro", spec.outro_key, assets.outro)):
            if key is None:
                continue
            if path is None:
                raise ValueError(f"the spec names an {role} ({key}) but no file was given")
            info = probe_video(Path(path), role, max_seconds=MAX_BOOKEND_SECONDS)
            frames = max(1, round(min(info.duration, MAX_BOOKEND_SECONDS) * spec.fps))
            found[role] = Bookend(role, Path(path), info, frames)
        return cls(**found)

    def __iter__(self) -> Iterator[Bookend]:
        return iter([part for part in (self.intro, self.outro) if part is not None])

    @property
    def lead_frames(self) -> int:
        """Frames before the body."""
        return self.intro.frames if self.intro else 0

    @property
    def frames(self) -> int:
        return sum(part.frames for part in self)


def shown_size(info: VideoInfo, spec: RenderSpec) -> tuple[int, int]:
    """The size a bookend's picture is shown at: scaled to cover the canvas (the
    overflow cropped after) or to fit inside it, aspect kept."""
    width, height = spec.width, spec.height
    if spec.intro_fit == "cover":
        scale = max(width / info.width, height / info.height)
        return max(width, round(info.width * scale)), max(height, round(info.height * scale))
    scale = min(width / info.width, height / info.height)
    return (min(width, max(2, round(info.width * scale))),
            min(height, max(2, round(info.height * scale))))


class UploadFrames:
    """An uploaded video's picture as moviepy's frame function: decoded in order by one
    whitelisted ffmpeg at ``fps`` (frame i is shown from i / fps), RGB at ``size``
    (ffmpeg scales it while decoding, so a 4K upload never crosses the pipe at 4K);
    past the end of the picture its last frame stays.

    ``on_frame(i)`` is called before frame ``i`` is decoded (progress, cancelation).
    """

    def __init__(self, bookend: Bookend, fps: int, size: tuple[int, int],
                 on_frame: Callable[[int], None]) -> None:
        self.bookend, self.fps, self.on_frame = bookend, fps, on_frame
        self.width, self.height = size
        self._size = self.width * self.height * 3
        self.command = [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-v", "error", "-xerror",
            *untrusted_video_input(bookend.path), "-map", "0:v:0", "-an", "-sn", "-dn",
            "-vf", f"fps={fps},scale={self.width}:{self.height}", "-frames:v",
            str(bookend.frames), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
        ]  # fmt: skip
        self._process = start_ffmpeg(self.command, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE)
        assert self._process.stderr is not None
        self._stderr = StderrTail(self._process.stderr)
        self._last: np.ndarray | None = None
        self._decoded = 0
        self._ended = False

    def __call__(self, t: float) -> np.ndarray:
        wanted = min(int(round(t * self.fps)), self.bookend.frames - 1)
        stdout = self._process.stdout
        assert stdout is not None
        while self._decoded <= wanted and not self._ended:
            self.on_frame(self._decoded)
            data = stdout.read(self._size)
            if len(data) < self._size:
                self._ended = True
                self._check()
                break
            self._last = np.frombuffer(data, np.uint8).reshape(self.height, self.width, 3)
            self._decoded += 1
        if self._last is None:
            self._check()
            raise InvalidVideo(f"The {self.bookend.what} has no picture that could be "
                               "decoded. Upload another video.")
        return self._last

    def _check(self) -> None:
        """At the end of the picture: ffmpeg's verdict, as InvalidVideo if it failed (or
        did not exit: a decoder that has closed its output and hangs is killed)."""
        try:
            code = self._process.wait(timeout=DECODER_EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            reap(self._process)
            raise InvalidVideo(f"The {self.bookend.what} could not be decoded (ffmpeg did "
                               "not exit after its last frame). Upload another video.") from None
        if code != 0:
            lines = clean_lines(self._stderr.lines(), path_aliases(self.bookend.path))
            reason = _CONTEXT.sub("", last_reason(lines)) or "no error message"
            raise InvalidVideo(f"The {self.bookend.what} could not be decoded (ffmpeg: "
                               f"{reason}). Upload another video.")

    def close(self) -> None:
        """Stop the decoder, whatever state it is in."""
        reap(self._process)


def bookend_clip(bookend: Bookend, spec: RenderSpec, frames: UploadFrames) -> VideoClip:
    """The bookend as moviepy composes it, from frames at their shown size: cropped to
    the canvas (cover) or centred on the background colour (fit), faded."""
    width, height = spec.width, spec.height
    clip: VideoClip = VideoClip(frames, duration=bookend.frames / spec.fps)
    if spec.intro_fit == "cover":
        clip = clip.cropped(x1=(frames.width - width) // 2, y1=(frames.height - height) // 2,
                            width=width, height=height)
    else:
        clip = CompositeVideoClip([clip.with_position("center")], size=(width, height),
                                  bg_color=spec.background_rgb)
    effects = []
    if bookend.role == "intro" and spec.fade_in:
        effects.append(vfx.FadeIn(min(spec.fade_in, clip.duration)))
    if bookend.role == "outro" and spec.fade_out:
        effects.append(vfx.FadeOut(min(spec.fade_out, clip.duration)))
    return clip.with_effects(effects) if effects else clip


def compose_bookend(
    bookend: Bookend,
    spec: RenderSpec,
    out_path: Path,
    *,
    progress: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> None:
    """Write ``bookend`` composed for ``spec``'s canvas to ``out_path`` (MP4, video
    only, the body's encoder settings). ``progress`` is told each frame's index;
    ``should_stop`` is asked per frame (RenderCanceled). Nothing is left behind on
    failure: no file, no ffmpeg."""

    def on_frame(index: int) -> None:
        if should_stop is not None and should_stop():
            raise RenderCanceled("The render was stopped: its job was canceled.")
        if progress is not None:
            progress(index)

    frames = UploadFrames(bookend, spec.fps, shown_size(bookend.info, spec), on_frame)
    finished = False
    try:
        clip = bookend_clip(bookend, spec, frames)
        # frames are asked at i / fps for i < int(duration x fps): half a frame more
        # keeps float rounding from dropping the last one
        clip = clip.with_duration((bookend.frames + 0.5) / spec.fps)
        clip.write_videofile(
            str(out_path), fps=spec.fps, codec="libx264", preset=PRESET, audio=False,
            logger=None, ffmpeg_params=[*video_args(spec.quality, spec.fps), "-vf", RGB_TO_YUV,
                                        *COLOR_ARGS, "-an"],
        )
        finished = True
    except OSError as exc:  # moviepy's writer: its ffmpeg failed
        # moviepy's message carries ffmpeg's stderr and the files' names
        lines = clean_lines(str(exc).splitlines(), path_aliases(out_path, bookend.path))
        reason = last_reason(lines) or type(exc).__name__
        raise RenderFailed(f"Encoding the {bookend.what} failed ({reason}).") from None
    finally:
        frames.close()
        if not finished:
            Path(out_path).unlink(missing_ok=True)


#: "[dec:h264 @ 0x55ab5df2b200] " inside a line (clean_lines drops the leading one).
_CONTEXT = re.compile(r"\[[^\]]*@ 0x[0-9a-f]+\]\s*")


def encode_soundtrack(
    audio: Path,
    spec: RenderSpec,
    duration: float,
    sound: Path,
    *,
    body_frames: int | None = None,
    bookends: Bookends | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> None:
    """The whole video's sound, encoded once to ``sound`` (``.m4a``).

    Without bookends or fades: the clip's window of ``audio`` (``duration`` seconds)
    encoded exactly as an unsplit plain render muxes it. Otherwise: the intro's sound,
    the clip window padded to ``body_frames``, the outro's sound, each cut or padded to
    its part's frames, faded, at SOUND_RATE. A bookend whose sound cannot be decoded is
    InvalidVideo; ``should_stop`` answering True kills ffmpeg (RenderCanceled).
    """
    bookends = bookends or Bookends()
    aliases = path_aliases(audio, sound, *(part.path for part in bookends))
    if not composes(spec):
        command = [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-v", "error",
            *audio_input(audio, spec.start, duration), "-map", "0:a:0", "-vn",
            *AUDIO_ARGS, "-f", "mp4", "-y", ffmpeg_input(sound),
        ]  # fmt: skip
        run_step(command, "Encoding the audio", aliases, should_stop)
        return
    frames = body_frames if body_frames is not None else frame_count(duration, spec.fps)
    inputs: list[str] = []
    chains: list[str] = []
    labels: list[str] = []
    for role, part in (("intro", bookends.intro), ("body", None), ("outro", bookends.outro)):
        if role != "body" and part is None:
            continue
        if part is None:  # the clip window of the audio
            source = f"[{_input_index(inputs)}:a:0]"
            inputs += audio_input(audio, spec.start, duration)
        elif part.info.has_audio:
            source = f"[{_input_index(inputs)}:a:0]"
            inputs += untrusted_video_input(part.path)
        else:
            source = None
        # the fade in on the first part, the fade out on the last
        first = role == "intro" or (role == "body" and bookends.intro is None)
        last = role == "outro" or (role == "body" and bookends.outro is None)
        fades = (spec.fade_in if first else 0.0, spec.fade_out if last else 0.0)
        samples = round((part.frames if part else frames) * SOUND_RATE / spec.fps)
        chains.append(f"{_sound_part(source, samples, *fades)}[{role}]")
        labels.append(f"[{role}]")
    graph = ";".join([*chains, f"{''.join(labels)}concat=n={len(labels)}:v=0:a=1[sound]"])
    command = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-v", "error", *inputs,
        "-filter_complex", graph, "-map", "[sound]", "-vn", *AUDIO_CODEC_ARGS,
        "-f", "mp4", "-y", ffmpeg_input(sound),
    ]  # fmt: skip
    code, lines = _run(command, "Encoding the audio", should_stop)
    if code != 0:
        if bookends.frames and blames_input(lines):
            reason = last_reason(clean_lines(lines, aliases)) or "no error message"
            raise InvalidVideo(f"The sound of the intro or outro could not be decoded "
                               f"(ffmpeg: {reason}). Upload another video.")
        raise RenderFailed.from_ffmpeg("Encoding the audio", lines, aliases)


def _sound_part(source: str | None, samples: int, fade_in: float, fade_out: float) -> str:
    """A filter chain for one part of the soundtrack: ``source`` (a stream label, None
    for silence) at SOUND_RATE in SOUND_LAYOUT, padded or cut to ``samples``, faded."""
    seconds = samples / SOUND_RATE
    chain = (f"anullsrc=r={SOUND_RATE}:cl={SOUND_LAYOUT}" if source is None else
             f"{source}aformat=sample_fmts=fltp:sample_rates={SOUND_RATE}:"
             f"channel_layouts={SOUND_LAYOUT},apad")
    chain += f",atrim=end_sample={samples}"
    if fade_in:
        chain += f",afade=t=in:st=0:d={min(fade_in, seconds):.6f}"
    if fade_out:
        length = min(fade_out, seconds)
        chain += f",afade=t=out:st={seconds - length:.6f}:d={length:.6f}"
    return chain


def _input_index(inputs: list[str]) -> int:
    """The number the next ``-i`` gets among ``inputs``."""
    return inputs.count("-i")


def frame_count(duration: float, fps: int) -> int:
    """Frames covering ``duration`` seconds: render.analysis's rule (a body of that much
    audio has this many frames)."""
    return max(0, math.ceil(duration * fps - 1e-3))


def join(parts: list[Path], sound: Path, out_path: Path,
         should_stop: Callable[[], bool] | None = None) -> None:
    """The video-only ``parts``, in order, and ``sound`` as one MP4, without re-encoding
    (the parts must share their stream parameters: the same encoder settings). A failed
    join leaves no ``out_path``."""
    listing = out_path.with_name(out_path.name + ".txt")
    # the concat demuxer's own quoting: a quote closes, \' is a quote, the rest is kept
    listing.write_text("".join(
        "file '{}'\n".format(str(path.resolve()).replace("'", "'\\''")) for path in parts
    ), encoding="utf-8")
    command = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-v", "error",
        "-f", "concat", "-safe", "0", "-i", ffmpeg_input(listing), "-i", ffmpeg_input(sound),
        "-map", "0:v:0", "-map", "1:a:0", "-c", "copy", *CONTAINER_ARGS,
        "-y", ffmpeg_input(out_path),
    ]  # fmt: skip
    finished = False
    try:
        run_step(command, "Joining the video", path_aliases(sound, out_path, *parts),
                 should_stop)
        finished = True
    finally:
        listing.unlink(missing_ok=True)
        if not finished:
            out_path.unlink(missing_ok=True)


def run_step(command: list[str], step: str, aliases: list[Any],
             should_stop: Callable[[], bool] | None = None) -> None:
    """Run one ffmpeg step to its end; RenderFailed with ffmpeg's words if it fails."""
    code, lines = _run(command, step, should_stop)
    if code != 0:
        raise RenderFailed.from_ffmpeg(step, lines, aliases)


def _run(command: list[str], step: str,
         should_stop: Callable[[], bool] | None) -> tuple[int, list[str]]:
    """Run ffmpeg to its end: its exit code and stderr's last lines. Asked ``should_stop``
    every STOP_POLL_SECONDS (RenderCanceled: ffmpeg is killed); past STEP_TIMEOUT it is
    killed as hung (RenderFailed)."""
    process = start_ffmpeg(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    assert process.stderr is not None
    stderr = StderrTail(process.stderr)
    deadline = time.monotonic() + STEP_TIMEOUT
    try:
        while True:
            try:
                code = process.wait(timeout=STOP_POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                if should_stop is not None and should_stop():
                    raise RenderCanceled("The render was stopped: its job was canceled.") \
                        from None
                if time.monotonic() > deadline:
                    raise RenderFailed(f"{step} took over {STEP_TIMEOUT} s.") from None
    finally:
        reap(process)
    return code, stderr.lines()
