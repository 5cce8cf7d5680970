"""Video backgrounds: an uploaded video looped behind the audiogram, streamed as YUV frames.

The bundled ffmpeg reads the video with `untrusted_video_input` (the ``file`` protocol,
video demuxers, known codecs), and does all the picture work in one pass: the frame
rate of the render, cover-fit (scale and centre crop), the blur and darkening of
``backgroundBlur`` and ``backgroundDarken``, and yuv420p BT.709 limited range, the
pixel format every frame is drawn in (render.canvas). Its stdout is read one frame at
a time straight into the frame's `Planes`: nothing but a pipe's worth of frames is
ever in memory, however long the video or the render.

Why ffmpeg directly and not moviepy's ``FFMPEG_VideoReader`` (the issue allows it
"where the figures say so"): moviepy's reader cannot be given our input whitelist
arguments, so it would open a hostile upload with every protocol and demuxer ffmpeg
has; and it hands RGB frames. Measured on the 2-core machine (a 1280x720 H.264
source read at 1280x720, 30 fps): moviepy's reader gave 55 frames/s and converting
its RGB to our YUV in numpy cost 54 ms a frame more (14 frames/s together); ffmpeg
writing yuv420p gave 567 frames/s, 322 with the darkening, 172 with blur and
darkening, in a process of its own beside the encoder (a 30 fps render needs 30).

Which frame: body frame ``i`` shows the video at ``i / fps`` seconds, modulo its
length. The video is first turned into a fixed sequence of ``loop_frames`` frames at
the render's frame rate (ffmpeg's ``fps`` filter anchored at the video's time 0, the
last frame held if the picture ends before the header's length), and frame ``i``
is number ``i mod loop_frames`` of it. A short loop (its finished frames in
LOOP_BUFFER_BYTES) is kept by ffmpeg's ``loop`` filter and played by one process,
which drops the frames before the one asked for. A longer one is read by passes: a
pass starts at any number ``k`` of the sequence by seeking to the keyframe before
``k / fps`` (never after it, so the frame on show at ``k / fps`` is decoded) and
dropping the frames before ``k``, which gives exactly the frames a pass from the
start gives there; the next play is a new pass from 0, started a little before the
current one ends. Either way a window of a split render, or any single frame, is
the frame the unsplit render shows there, and memory stays bounded.

The blur is the image background's (a Gaussian of standard deviation ``blur x
min(w, h) / 1080`` canvas pixels, half that on the half-size chroma planes; a wide
one made at a reduced size, which costs less and looks the same), and
the darkening multiplies RGB by ``1 - darken``, which in limited-range YUV is
``Y = 16 + (Y - 16)(1 - d)``, ``U, V = 128 + (U, V - 128)(1 - d)``. A reader that
fails or ends early is ``invalid_video``; closing it (the render's end, an error or
a cancel) kills its ffmpeg, which also dies with the process that started it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from render.audio import ffmpeg_exe, path_aliases, reap, start_ffmpeg
from render.canvas import Planes
from render.errors import InvalidVideo, StderrTail, clean_lines, last_reason
from render.spec import RenderSpec
from render.video import (
    MAX_BACKGROUND_SECONDS,
    SUPPORTED_VIDEO,
    VideoInfo,
    probe_video,
    untrusted_video_input,
)

#: The upload role the messages name (render.video VIDEO_ROLES).
ROLE = "backgroundVideo"
#: Blur radii are given for a 1080-pixel short side (as for an image background).
BLUR_REFERENCE_SIDE = 1080
#: Steps of ffmpeg's recursive Gaussian: 3 comes within 3 levels (mean, on sharp
#: stripes) of Pillow's three box passes at the same sigma, where 1 was 5 to 7 levels
#: off (further than a sigma 1.5 times too large); it costs 2.6 ms a 720p frame
#: against 1.2 ms for 1 step (measured here).
BLUR_STEPS = 3
#: A wide blur is made at 1/2 or 1/4 of the canvas size (the upload cover-fitted
#: straight to that size, blurred and darkened there, enlarged bilinearly), the
#: smallest whose sigma stays at least BLUR_MIN_SIGMA pixels there: within a level or
#: two of Pillow's blur at full size, and the benchmark's blurred render over a 720p
#: video took 14.2 s instead of 16.2 s when it fitted at full size first.
BLUR_REDUCTIONS = (4, 2)
BLUR_MIN_SIGMA = 1.9
#: A loop whose finished frames fit in this many bytes is kept by ffmpeg's ``loop``
#: filter and played from one process (a 1.6 s loop at 720p, 30 fps); a longer one
#: is read again by a new pass for each play.
LOOP_BUFFER_BYTES = 64 << 20
#: The next play's pass starts this many frames before the current one ends, so the
#: new ffmpeg has opened the file and decoded its first frame by then.
PREFETCH_FRAMES = 15


@dataclass
class Backdrop:
    """The looping video behind every frame of one render, and its live reader.

    `open` checks the video's header (``invalid_video`` before anything is drawn);
    the reader starts at the first `read_into`. Always `close` it (``Scene`` does).
    """

    path: Path
    info: VideoInfo
    width: int
    height: int
    fps: int
    blur: float
    darken: float
    _pass: Pass | None = field(default=None, repr=False)
    _spare: Pass | None = field(default=None, repr=False)  # the next play, from frame 0
    _next: int = field(default=-1, repr=False)  # the body frame the open pass gives next
    _left: int = field(default=0, repr=False)  # frames the open pass still gives

    @classmethod
    def open(cls, path: Path, spec: RenderSpec) -> Backdrop:
        info = probe_video(Path(path), ROLE, max_seconds=MAX_BACKGROUND_SECONDS)
        return cls(Path(path), info, spec.width, spec.height, spec.fps,
                   spec.background_blur, spec.background_darken)

    @property
    def loop_frames(self) -> int:
        """Frames of one play of the video at the render's frame rate."""
        return max(1, round(self.info.duration * self.fps))

    @property
    def frame_bytes(self) -> int:
        return self.width * self.height * 3 // 2

    @property
    def loops_in_ffmpeg(self) -> bool:
        """Whether one ffmpeg keeps the finished loop and plays it again and again."""
        return self.loop_frames * self.frame_bytes <= LOOP_BUFFER_BYTES

    def filters(self, first: int) -> str:
        """The ``-vf`` graph of a pass starting at frame ``first`` of the loop."""
        w, h, loop = self.width, self.height, self.loop_frames
        seeks = first > 0 and not self.loops_in_ffmpeg
        chain = [
            # frame n is the video at n / fps: anchored at the video's own 0 (the
            # input's timestamps are shifted by the seek, hence the negative start)
            f"fps={self.fps}:start_time={-first / self.fps if seeks else 0:.6f}",
            "tpad=stop=-1:stop_mode=clone",  # a picture shorter than the header: hold it
        ]
        # a seeking pass drops the frames before its first; any other is one play
        chain.append(f"trim=start_frame={first}" if seeks else f"trim=end_frame={loop}")
        factor = self.blur_reduction if self.blur > 0 else 1
        # a wide blur's picture is cover-fitted straight to the reduced size it is
        # blurred at: one scale of the upload instead of two, within a level or two of
        # fitting at full size first (the blur hides the rest), and the reader's CPU is
        # what a render over a video waits on beside x264's
        fw, fh = (w // factor // 2 * 2, h // factor // 2 * 2) if factor > 1 else (w, h)
        chain += [
            f"scale={fw}:{fh}:force_original_aspect_ratio=increase:force_divisible_by=2"
            ":out_color_matrix=bt709:out_range=tv",
            f"crop={fw}:{fh}",
            "format=yuv420p",  # here: the blur takes the chroma planes to be half size
        ]
        if self.blur > 0:
            chain += self._blur()
        if self.darken > 0:
            keep = f"{1 - self.darken:.6f}"
            chain.append(f"lutyuv=y='16+(val-16)*{keep}':u='128+(val-128)*{keep}'"
                         f":v='128+(val-128)*{keep}'")
        if factor > 1:  # blurred and darkened small, then enlarged to the canvas
            chain.append(f"scale={w}:{h}:flags=bilinear")
        if self.loops_in_ffmpeg:
            # the finished frames of one play, kept and played again and again
            chain += [f"loop=loop=-1:size={loop}", f"trim=start_frame={first}"]
        return ",".join(chain)

    @property
    def blur_sigma(self) -> float:
        """The blur's standard deviation in canvas pixels (0: none)."""
        return self.blur * min(self.width, self.height) / BLUR_REFERENCE_SIDE

    def _blur(self) -> list[str]:
        """The blur's filters, at the size the picture was fitted to: sigma on the luma,
        half that on the half-size chroma (a wide one at a reduced size, `filters`
        enlarges it after)."""
        sigma = self.blur_sigma / self.blur_reduction
        return [f"gblur=sigma={sigma:.4f}:steps={BLUR_STEPS}:planes=1",
                f"gblur=sigma={sigma / 2:.4f}:steps={BLUR_STEPS}:planes=6"]

    @property
    def blur_reduction(self) -> int:
        """By how much the picture is shrunk to be blurred (1: blurred at full size)."""
        sigma, side = self.blur_sigma, min(self.width, self.height)
        return next((f for f in BLUR_REDUCTIONS
                     if sigma / f >= BLUR_MIN_SIGMA and side // f >= 16), 1)

    def command(self, first: int, count: int | None) -> list[str]:
        """ffmpeg writing ``count`` raw frames (None: for ever) of the loop from frame
        ``first``."""
        seeks = first > 0 and not self.loops_in_ffmpeg
        seek = ["-noaccurate_seek", "-ss", f"{first / self.fps:.6f}"] if seeks else []
        frames = [] if count is None else ["-frames:v", str(count)]
        return [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-v", "error",
            *seek, *untrusted_video_input(self.path),
            "-map", "0:v:0", "-an", "-sn", "-dn", "-vf", self.filters(first),
            "-fps_mode", "passthrough", *frames, "-f", "rawvideo", "-pix_fmt", "yuv420p",
            "pipe:1",
        ]  # fmt: skip

    def read_into(self, planes: Planes, index: int) -> None:
        """Body frame ``index``'s background into ``planes`` (the whole frame)."""
        if self._pass is None or index != self._next or self._left == 0:
            self._start(index)
        assert self._pass is not None
        if not self._pass.read_into(memoryview(planes.buffer).cast("B")):
            self._fail(self._pass)
        self._next, self._left = index + 1, self._left - 1
        if 0 <= self._left <= PREFETCH_FRAMES and self._spare is None:
            self._spare = self._open(0, self.loop_frames)  # the next play, warming up

    def _open(self, first: int, count: int | None) -> Pass:
        return Pass.start(self.command(first, count))

    def _start(self, index: int) -> None:
        spare, self._spare = self._spare, None
        self._stop(self._pass)
        first = index % self.loop_frames
        # one process plays a kept loop for ever; a pass ends with its play
        count = None if self.loops_in_ffmpeg else self.loop_frames - first
        if spare is not None and first == 0 and count is not None:
            self._pass, spare = spare, None
        else:
            self._pass = self._open(first, count)
        self._stop(spare)
        self._next, self._left = index, -1 if count is None else count

    def _fail(self, failed: Pass) -> None:
        lines = clean_lines(failed.stderr_lines(), path_aliases(self.path))
        self.close()
        reason = f"ffmpeg: {last_reason(lines) or 'it stopped'}"
        if failed.process.returncode == 0 or "received no packets" in reason:
            reason = "no frame of it is readable"  # ffmpeg ended, empty-handed
        raise InvalidVideo(f"The background video could not be decoded ({reason}). "
                           f"Upload {SUPPORTED_VIDEO}.")

    @staticmethod
    def _stop(running: Pass | None) -> None:
        if running is not None:
            running.stop()

    def close(self) -> None:
        """Stop every reader this backdrop runs; safe to call again."""
        for running in (self._pass, self._spare):
            self._stop(running)
        self._pass = self._spare = None
        self._next, self._left = -1, 0


@dataclass
class Pass:
    """One ffmpeg writing raw frames to its stdout, its stderr drained on a thread."""

    process: subprocess.Popen[bytes]
    stderr: StderrTail

    @classmethod
    def start(cls, command: list[str]) -> Pass:
        process = start_ffmpeg(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        assert process.stderr is not None
        return cls(process, StderrTail(process.stderr))

    def read_into(self, view: memoryview) -> bool:
        """Fill ``view`` with the next frame; False when the pass ended before it."""
        assert self.process.stdout is not None
        filled = 0
        while filled < len(view):
            got = self.process.stdout.readinto(view[filled:])
            if not got:
                return False
            filled += got
        return True

    def stderr_lines(self) -> list[str]:
        self.process.wait()
        return self.stderr.lines()

    def stop(self) -> None:
        reap(self.process)
