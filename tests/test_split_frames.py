"""A render split into windows draws exactly the frames of an unsplit one.

The first step of splitting a long render across workers: the clip is analysed
once (``Analysis.save``), and a scene built from those features for any window
(``Scene.from_analysis``) draws, from the window's first frame on, the very pixels
the unsplit scene draws there, for every style and with paged captions. Compared
on the raw frames, before any encoder, so no encoding noise can hide a seam.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from render.analysis import Analysis
from render.canvas import Planes
from render.engine import Scene
from render.spec import Assets, RenderSpec
from render.styles import Levels
from tests.helpers.golden import CAPTIONS, synth_signal

#: Windows of 40 frames at 30 fps: seams at 1.33 s, 2.67 s (the 4 s golden signal).
WINDOW = 40
LOOKS = [
    {"style": "bars"}, {"style": "mirror", "rounded": False}, {"style": "circle"},
    {"style": "wave"}, {"style": "wave", "filled": False}, {"style": "progress"},
]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("split")
    srt = directory / "cue.srt"
    srt.write_text(CAPTIONS, encoding="utf-8")
    return synth_signal(directory), srt


def frames_of(scene: Scene, first: int, stop: int) -> list[np.ndarray]:
    planes = Planes.empty(scene.spec.width, scene.spec.height)
    out = []
    for index in range(first, stop):
        scene.draw(planes, index)
        out.append(planes.to_rgb())
    return out


@pytest.mark.parametrize("look", LOOKS, ids=[str(look) for look in LOOKS])
def test_every_window_draws_the_unsplit_frames(look: dict, clip: tuple[Path, Path],
                                               tmp_path: Path) -> None:
    wav, srt = clip
    spec = RenderSpec(width=360, height=360, fps=30, captionsKey="x/cue.srt", **look)
    assets = Assets(captions=srt)
    whole = Scene(wav, spec, assets)
    unsplit = frames_of(whole, 0, whole.frames)
    features = tmp_path / "features.npz"
    whole.analysis.save(features)
    for first in range(0, whole.frames, WINDOW):  # each window as its own worker would
        window = Scene.from_analysis(Analysis.load(features), spec, assets)
        stop = min(first + WINDOW, whole.frames)
        for index, frame in zip(range(first, stop), frames_of(window, first, stop), strict=True):
            assert np.array_equal(frame, unsplit[index]), f"frame {index} differs"


def test_the_features_survive_the_round_trip_bit_for_bit(clip: tuple[Path, Path],
                                                        tmp_path: Path) -> None:
    wav, _ = clip
    analysis = Scene(wav, RenderSpec(width=320, height=180, style="wave", filled=False)).analysis
    analysis.save(tmp_path / "a.npz")
    loaded = Analysis.load(tmp_path / "a.npz")
    assert (loaded.fps, loaded.frames, loaded.duration) == (analysis.fps, analysis.frames,
                                                             analysis.duration)
    for name in ("bands", "loudness", "envelope", "trace"):
        assert np.array_equal(getattr(loaded, name), getattr(analysis, name)), name
        assert getattr(loaded, name).dtype == getattr(analysis, name).dtype


def test_the_smoothing_at_any_frame_is_exactly_the_one_the_video_reached(
    clip: tuple[Path, Path],
) -> None:
    """Bars rise fast and fall slowly: a window that starts mid-clip must start from the
    smoothing state the unsplit video had reached there, to the last bit."""
    wav, _ = clip
    scene = Scene(wav, RenderSpec(width=360, height=360, fps=30, style="bars"))
    sequential = Levels(scene.analysis, 24)
    states = [sequential.at(index).copy() for index in range(scene.frames)]
    for frame in (scene.frames - 1, 70, 100, 3):  # out of order, as windows and thumbnails ask
        jumped = Levels(scene.analysis, 24)
        assert np.array_equal(jumped.at(frame), states[frame]), f"frame {frame}"
