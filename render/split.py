"""One render as windows that workers draw apart, joined into one video.

A long render is cut into windows of whole GOPs. The clip is analysed once, for the
whole of it (``analyse``): its compact features (``Analysis.save``, about 10 MB an
hour) are what every window draws from; its audio is encoded once (``encode_sound``),
beside the windows, for the join. Each
window (``render_window``) draws its frames from those features with the unsplit
render's encoder settings, video only, starting on a keyframe; the join
(``join``) concatenates the windows with ffmpeg's concat demuxer without
re-encoding, muxes the audio and moves the index to the front.

Why the seams do not show: a scene built from the saved features draws exactly the
frames the unsplit scene draws (the smoothing replays from the clip's start), and
the audio is encoded in one piece, from the same window of the input with the same
arguments as an unsplit render, so it is the same stream with no gap or click.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from render.analysis import Analysis
from render.audio import ffmpeg_exe, ffmpeg_input, path_aliases
from render.canvas import Planes
from render.encoder import AUDIO_ARGS, CONTAINER_ARGS, KEYFRAME_SECONDS, Encoder, audio_input
from render.engine import ProgressCallback, ProgressSteps, RenderResult, Scene, check_stop
from render.errors import RenderFailed
from render.spec import Assets, RenderSpec

#: ffmpeg steps of the split path get this long before they count as hung.
STEP_TIMEOUT = 1800


@dataclass(frozen=True)
class Window:
    """Frames ``first`` (a keyframe) up to, not including, ``stop``."""

    index: int
    first: int
    stop: int

    @property
    def frames(self) -> int:
        return self.stop - self.first


def plan_windows(frames: int, fps: int, seconds: float) -> list[Window]:
    """Windows of about ``seconds`` each, a whole number of GOPs (the last one takes
    what is left), covering frames ``0..frames``."""
    gop = KEYFRAME_SECONDS * fps
    size = max(1, round(seconds / KEYFRAME_SECONDS)) * gop
    return [Window(number, first, min(first + size, frames))
            for number, first in enumerate(range(0, frames, size))]


def analyse(
    audio: Path,
    spec: RenderSpec,
    features: Path,
    *,
    assets: Assets | None = None,
    should_stop: Callable[[], bool] | None = None,
    limit_seconds: float | None = None,
    measured: Callable[[float], None] | None = None,
) -> RenderResult:
    """Decode the clip once into its features, written to ``features`` (``.npz``). Bad
    input fails here, as it would in ``render_video``, before any window is drawn."""
    scene = Scene(audio, spec, assets, None, should_stop, limit_seconds, measured)
    analysis = scene.analysis
    analysis.save(features)
    return RenderResult(duration=analysis.duration, width=spec.width, height=spec.height,
                        fps=spec.fps, frames=analysis.frames,
                        loudest=analysis.loudest_frame / spec.fps)


def encode_sound(audio: Path, spec: RenderSpec, duration: float, sound: Path) -> None:
    """The clip's audio, encoded as an unsplit render encodes it (the same window of
    the input, the same arguments), to ``sound`` (``.m4a``): one more unit of work,
    done beside the windows, off the render's critical path."""
    command = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-v", "error",
        *audio_input(audio, spec.start, duration), "-map", "0:a:0", "-vn",
        *AUDIO_ARGS, "-f", "mp4", "-y", ffmpeg_input(sound),
    ]  # fmt: skip
    _run(command, "Encoding the audio", path_aliases(audio, sound))


def render_window(
    features: Path,
    spec: RenderSpec,
    window: Window,
    out_path: Path,
    *,
    assets: Assets | None = None,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> None:
    """Draw ``window``'s frames from the saved features and encode them, video only."""
    analysis = Analysis.load(features)
    if not 0 <= window.first < window.stop <= analysis.frames:
        raise ValueError(f"window {window} is outside the clip's {analysis.frames} frames")
    scene = Scene.from_analysis(analysis, spec, assets)
    report = ProgressSteps(progress)
    report(0.0)
    with scene, Encoder(out_path, width=spec.width, height=spec.height, fps=spec.fps,
                        quality=spec.quality, audio=None) as encoder:
        frame = Planes.empty(spec.width, spec.height)
        for index in range(window.first, window.stop):
            check_stop(should_stop)
            scene.draw(frame, index)
            encoder.write(frame.buffer)
            report(min((index + 1 - window.first) / window.frames, 0.99))
    report(1.0)


def join(windows: list[Path], sound: Path, out_path: Path) -> None:
    """The windows, in order, and the audio as one MP4, without re-encoding."""
    listing = out_path.with_name(out_path.name + ".txt")
    # the concat demuxer's own quoting: a quote closes, \' is a quote, the rest is kept
    listing.write_text("".join(
        "file '{}'\n".format(str(path.resolve()).replace("'", "'\\''")) for path in windows
    ), encoding="utf-8")
    command = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-v", "error",
        "-f", "concat", "-safe", "0", "-i", ffmpeg_input(listing), "-i", ffmpeg_input(sound),
        "-map", "0:v:0", "-map", "1:a:0", "-c", "copy", *CONTAINER_ARGS,
        "-y", ffmpeg_input(out_path),
    ]  # fmt: skip
    try:
        _run(command, "Joining the video", path_aliases(sound, out_path))
    finally:
        listing.unlink(missing_ok=True)



def _run(command: list[str], step: str, aliases: list[Any]) -> None:
    result = subprocess.run(command, capture_output=True, timeout=STEP_TIMEOUT,  # noqa: S603
                            check=False)
    if result.returncode != 0:
        lines = result.stderr.decode("utf-8", "replace").splitlines()
        raise RenderFailed.from_ffmpeg(step, lines, aliases)
