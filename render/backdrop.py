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
is number ``i mod loop_frames`` of it. A pass of the reader starts at any number
``k`` of that sequence by seeking to the keyframe before ``k / fps`` (never after
it, so the frame on show at ``k / fps`` is decoded) and dropping the frames before
``k``: it gives exactly the frames a pass from the start gives there. So a window of
a split render, or any single frame, is the frame the unsplit render shows, and the
loop is played by starting a new pass at 0 when one reaches the end.

The blur is the image background's (a Gaussian of standard deviation ``blur x
min(w, h) / 1080`` canvas pixels, half that on the half-size chroma planes), and
the darkening multiplies RGB by ``1 - darken``, which in limited-range YUV is
``Y = 16 + (Y - 16)(1 - d)``, ``U, V = 128 + (U, V - 128)(1 - d)``. A reader that
fails or ends early is ``invalid_video``; closing it (the render's end, an error or
a cancel) kills its ffmpeg, which also dies with the process that started it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from render.audio import ffmpeg_exe, path_aliases, start_ffmpeg
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
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _stderr: StderrTail | None = field(default=None, repr=False)
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

    def filters(self, first: int) -> str:
        """The ``-vf`` graph of a pass starting at frame ``first`` of the loop."""
        w, h = self.width, self.height
        chain = [
            # frame n is the video at n / fps: anchored at the video's own 0 (the
            # input's timestamps are shifted by the seek, hence the negative start)
            f"fps={self.fps}:start_time={-first / self.fps:.6f}",
            "tpad=stop=-1:stop_mode=clone",  # a picture shorter than the header: hold it
            f"trim=start_frame={first}",
            f"scale={w}:{h}:force_original_aspect_ratio=increase:force_divisible_by=2"
            ":out_color_matrix=bt709:out_range=tv",
            f"crop={w}:{h}",
        ]
        if self.blur > 0:
            sigma = self.blur * min(w, h) / BLUR_REFERENCE_SIDE
            chain += [f"gblur=sigma={sigma:.4f}:planes=1",
                      f"gblur=sigma={sigma / 2:.4f}:planes=6"]
        if self.darken > 0:
            keep = f"{1 - self.darken:.6f}"
            chain.append(f"lutyuv=y='16+(val-16)*{keep}':u='128+(val-128)*{keep}'"
                         f":v='128+(val-128)*{keep}'")
        chain.append("format=yuv420p")
        return ",".join(chain)

    def command(self, first: int, count: int) -> list[str]:
        """ffmpeg writing ``count`` raw frames of the loop from frame ``first``."""
        seek = ["-noaccurate_seek", "-ss", f"{first / self.fps:.6f}"] if first else []
        return [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-v", "error",
            *seek, *untrusted_video_input(self.path),
            "-map", "0:v:0", "-an", "-sn", "-dn", "-vf", self.filters(first),
            "-fps_mode", "passthrough", "-frames:v", str(count),
            "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1",
        ]  # fmt: skip

    def read_into(self, planes: Planes, index: int) -> None:
        """Body frame ``index``'s background into ``planes`` (the whole frame)."""
        if self._process is None or index != self._next or self._left == 0:
            self._start(index)
        assert self._process is not None and self._process.stdout is not None
        view = memoryview(planes.buffer).cast("B")
        filled = 0
        while filled < len(view):
            got = self._process.stdout.readinto(view[filled:])
            if not got:
                self._fail()
            filled += got
        self._next, self._left = index + 1, self._left - 1

    def _start(self, index: int) -> None:
        self.close()
        first = index % self.loop_frames
        count = self.loop_frames - first
        self._process = start_ffmpeg(self.command(first, count),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        assert self._process.stderr is not None
        self._stderr = StderrTail(self._process.stderr)
        self._next, self._left = index, count

    def _fail(self) -> None:
        assert self._process is not None and self._stderr is not None
        self._process.wait()
        lines = clean_lines(self._stderr.lines(), path_aliases(self.path))
        self.close()
        reason = last_reason(lines) or "it has no picture"
        raise InvalidVideo(f"The background video could not be decoded (ffmpeg: {reason}). "
                           f"Upload {SUPPORTED_VIDEO}.")

    def close(self) -> None:
        """Stop the reader, if one runs; safe to call again."""
        process, self._process, self._stderr = self._process, None, None
        self._next, self._left = -1, 0
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
