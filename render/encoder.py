"""The ffmpeg encoder at the end of the pipe: raw yuv420p frames in, MP4 out.

Settings are module constants so the benchmark's encode floor uses exactly the
same ones. Exactly ceil(duration x fps) frames are written and ``-shortest`` is
not used: with it ffmpeg queues raw frames waiting for the audio (+440 MiB at
720p, measured: docs/architecture.md). ffmpeg's stderr is drained on a thread, so a chatty ffmpeg
never blocks and a failure surfaces as RenderFailed with ffmpeg's own words.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import TracebackType

from render.audio import ffmpeg_exe, ffmpeg_input, path_aliases, start_ffmpeg, untrusted_input
from render.errors import RenderFailed, StderrTail

PRESET = "veryfast"
#: How frames are drawn (render.canvas): BT.709, limited range. Given on the raw
#: input as well as the output: tagged only on the output, ffmpeg inserts a scaler
#: to "convert" untagged input, which cost 40 % more ffmpeg CPU (measured at 720p).
COLOR_ARGS = [
    "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
    "-color_range", "tv",
]  # fmt: skip
#: H.264 for every browser and social app.
VIDEO_ARGS = ["-c:v", "libx264", "-preset", PRESET, "-pix_fmt", "yuv420p", *COLOR_ARGS]
#: AAC for the sound; the whole soundtrack of a composed video is encoded with these.
AUDIO_CODEC_ARGS = ["-c:a", "aac", "-b:a", "160k"]
AUDIO_ARGS = [*AUDIO_CODEC_ARGS, "-af", "aformat=channel_layouts=mono|stereo"]
#: The index at the front, so browsers start playing before the download ends.
CONTAINER_ARGS = ["-movflags", "+faststart"]
#: A keyframe (IDR) every this many seconds of video, at fixed frames: the windows of a
#: split render (render.split) are whole GOPs, so a split video has its keyframes
#: where the unsplit one has them, and each window starts on one.
KEYFRAME_SECONDS = 5


def video_args(quality: int, fps: int) -> list[str]:
    return [*VIDEO_ARGS, "-crf", str(quality), "-g", str(KEYFRAME_SECONDS * fps)]


def audio_input(audio: Path, start: float, duration: float) -> list[str]:
    """The clip's window of ``audio`` as an ffmpeg input: the same for the audio muxed
    by an unsplit render and the one encoded once for a split render's join."""
    window = ["-ss", f"{start:.6f}"] if start > 0 else []
    return [*window, "-t", f"{duration:.6f}", *untrusted_input(audio)]


class Encoder:
    """``with Encoder(...) as enc: enc.write(frame_bytes)``; the file is complete on exit.

    On any exception the ffmpeg child is killed and the partial file removed.
    """

    def __init__(
        self,
        out_path: Path,
        *,
        width: int,
        height: int,
        fps: int,
        quality: int,
        audio: Path | None,
        audio_start: float = 0.0,
        audio_duration: float = 0.0,
    ) -> None:
        """``audio`` None: video only (a window of a split render, joined later)."""
        self.out_path = Path(out_path)
        if audio is None:
            self._aliases = path_aliases(out_path)
            sound_in: list[str] = []
            sound_out = ["-an"]
        else:
            self._aliases = path_aliases(audio, out_path)
            sound_in = audio_input(audio, audio_start, audio_duration)
            sound_out = ["-map", "1:a:0", *AUDIO_ARGS]
        self.command = [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-v", "error",
            "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{width}x{height}",
            "-framerate", str(fps), *COLOR_ARGS, "-i", "pipe:0", *sound_in,
            "-map", "0:v:0", *video_args(quality, fps), *sound_out, *CONTAINER_ARGS,
            "-y", ffmpeg_input(out_path),
        ]  # fmt: skip
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: StderrTail | None = None

    def __enter__(self) -> Encoder:
        self._process = start_ffmpeg(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
        )
        assert self._process.stderr is not None
        self._stderr = StderrTail(self._process.stderr)
        return self

    def write(self, frame: memoryview | bytes | object) -> None:
        assert self._process is not None and self._process.stdin is not None
        try:
            self._process.stdin.write(frame)  # type: ignore[arg-type]
        except BrokenPipeError:  # ffmpeg died; its stderr says why
            self._fail()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process = self._process
        assert process is not None and process.stdin is not None
        finished = False
        try:
            if exc_type is None:
                try:
                    process.stdin.close()
                except BrokenPipeError:
                    self._fail()
                if process.wait() != 0:
                    self._fail()
                finished = True
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            if not process.stdin.closed:
                try:
                    process.stdin.close()
                except BrokenPipeError:
                    pass
            if not finished:
                self.out_path.unlink(missing_ok=True)

    def _fail(self) -> None:
        assert self._stderr is not None and self._process is not None
        self._process.wait()
        raise RenderFailed.from_ffmpeg("Encoding the video", self._stderr.lines(), self._aliases)


def extract_frame(video: Path, seconds: float, out_path: Path, *, quality: int = 3) -> None:
    """One frame of ``video`` as a JPEG (preview thumbnails)."""
    command = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error",
        "-ss", f"{max(seconds, 0.0):.3f}", "-i", ffmpeg_input(video),
        "-frames:v", "1", "-q:v", str(quality), "-y", ffmpeg_input(out_path),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, timeout=120, check=False)  # noqa: S603
    if result.returncode != 0 or not Path(out_path).exists():
        lines = result.stderr.decode("utf-8", "replace").splitlines()
        raise RenderFailed.from_ffmpeg("Extracting the thumbnail", lines, path_aliases(video))
