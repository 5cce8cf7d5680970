"""The static scene and the container: background images, gradients, faststart."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from render import Assets, RenderSpec, render_frames, render_video
from render.captions import InvalidCaptions
from render.scene import background_image

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "sample.mp3"


@pytest.fixture
def halves(tmp_path: Path) -> Path:
    """A 400x400 image: red left half, blue right half."""
    image = np.zeros((400, 400, 3), np.uint8)
    image[:, :200] = (255, 0, 0)
    image[:, 200:] = (0, 0, 255)
    path = tmp_path / "halves.png"
    Image.fromarray(image).save(path)
    return path


def test_background_image_is_cover_fitted_centred(halves: Path):
    spec = RenderSpec(width=320, height=180, backgroundKey="uploads/x/halves.png")
    rgb = background_image(spec, Assets(background=halves))
    assert rgb.shape == (180, 320, 3)
    # scaled to cover 320 wide, then cropped top and bottom: the halves meet mid-frame
    assert tuple(rgb[90, 40]) == (255, 0, 0) and tuple(rgb[90, 280]) == (0, 0, 255)
    assert tuple(rgb[0, 40]) == (255, 0, 0)  # nothing letterboxed


def test_background_darken_and_blur(halves: Path):
    spec = RenderSpec(width=320, height=180, backgroundKey="uploads/x/halves.png",
                      backgroundDarken=0.5, backgroundBlur=20)
    rgb = background_image(spec, Assets(background=halves)).astype(int)
    assert abs(rgb[90, 20, 0] - 128) <= 2  # half as bright
    middle = rgb[90, 150:170]
    assert middle[:, 0].min() < 120 and middle[:, 2].max() > 5  # the edge is soft


def test_two_colour_background_is_a_diagonal_gradient():
    spec = RenderSpec(width=320, height=180, background="#000000", background2="#ffffff")
    rgb = background_image(spec, Assets())
    assert rgb[0, 0].max() == 0 and rgb[-1, -1].min() == 255
    assert 100 < rgb[90, 160].mean() < 155


def test_rendered_frame_shows_the_background_image(halves: Path):
    spec = RenderSpec(width=320, height=180, style="progress", backgroundKey="uploads/x/h.png")
    (frame,) = render_frames(SAMPLE, spec, [1.0], assets=Assets(background=halves))
    assert frame[4, 4, 0] > 200 and frame[4, 4, 2] < 60  # top-left corner: red
    assert frame[4, 315, 2] > 200 and frame[4, 315, 0] < 60  # top-right corner: blue


def top_level_atoms(path: Path) -> list[str]:
    atoms, data = [], path.read_bytes()
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        atoms.append(kind.decode("latin-1"))
        if size < 8:
            break
        offset += size
    return atoms


def test_mp4_index_comes_first_so_browsers_play_while_downloading(tmp_path: Path):
    out = tmp_path / "out.mp4"
    render_video(SAMPLE, out, RenderSpec(width=160, height=90, end=2.0))
    atoms = top_level_atoms(out)
    assert atoms.index("moov") < atoms.index("mdat"), atoms


def test_captions_on_a_canvas_too_small_for_them_are_left_out_not_a_crash(tmp_path):
    """Under 180 px the layout has no caption box: the video renders without captions,
    and a bad captions file still fails as invalid_captions."""
    good = tmp_path / "talk.srt"
    good.write_text("1\n00:00:00,000 --> 00:00:02,000\nHello there\n", encoding="utf-8")
    spec = RenderSpec(width=160, height=90, captionsKey="local/talk.srt")
    with_captions = render_frames(SAMPLE, spec, [1.0], assets=Assets(captions=good))
    without = render_frames(SAMPLE, spec.model_copy(update={"captions_key": None}), [1.0])
    assert (with_captions[0] == without[0]).all()
    bad = tmp_path / "bad.srt"
    bad.write_text("1\n00:00:05,000 --> 00:00:02,000\nBackwards\n", encoding="utf-8")
    with pytest.raises(InvalidCaptions):
        render_frames(SAMPLE, spec, [1.0], assets=Assets(captions=bad))
