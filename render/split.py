"""One render as windows that workers draw apart, joined into one video.

A long render is cut into windows of whole GOPs. The clip is analysed once, for the
whole of it (``analyse``): its compact features (``Analysis.save``, about 10 MB an
hour) are what every window draws from; its audio is encoded once (``encode_sound``,
with the intro's and outro's sound and the fades when the spec has them), beside the
windows, for the join. Each window (``render_window``) draws its frames from those
features with the unsplit render's encoder settings, video only, starting on a
keyframe, faded as the unsplit render fades them; the join (``join``, render.compose's,
which also joins an unsplit render's intro, body and outro) concatenates the windows,
between the intro and outro when there are, with ffmpeg's concat demuxer without
re-encoding, muxes the audio and moves the index to the front.

Why the seams do not show: a scene built from the saved features draws exactly the
frames the unsplit scene draws (the smoothing replays from the clip's start), and
the audio is encoded in one piece, from the same window of the input with the same
arguments as an unsplit render, so it is the same stream with no gap or click.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from render.analysis import Analysis
from render.compose import Bookends, encode_soundtrack, join
from render.encoder import KEYFRAME_SECONDS, Encoder
from render.engine import ProgressCallback, ProgressSteps, RenderResult, Scene, draw_body
from render.spec import Assets, RenderSpec

__all__ = ["Window", "analyse", "encode_sound", "join", "plan_windows", "render_window"]


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


def encode_sound(audio: Path, spec: RenderSpec, duration: float, sound: Path,
                 bookends: Bookends | None = None,
                 should_stop: Callable[[], bool] | None = None) -> None:
    """The whole video's sound (render.compose `encode_soundtrack`): the clip's audio
    as an unsplit render encodes it, with the intro's and outro's sound and the fades
    when the spec has them, to ``sound`` (``.m4a``): one more unit of work, done
    beside the windows, off the render's critical path."""
    encode_soundtrack(audio, spec, duration, sound, bookends=bookends,
                      should_stop=should_stop)


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
    encoder = Encoder(out_path, width=spec.width, height=spec.height, fps=spec.fps,
                      quality=spec.quality, audio=None)
    draw_body(scene, encoder, spec, lambda count: report(min(count / window.frames, 0.99)),
              should_stop, range(window.first, window.stop))
    report(1.0)
