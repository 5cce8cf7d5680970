"""Text layers: the bundled font, wrapping by measured width, drawn blocks, blending, safe areas."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from render import text
from render.text import (
    ELLIPSIS,
    TextLayer,
    composite,
    font,
    render_text_block,
    safe_area,
    wrap,
)

ROOT = Path(__file__).resolve().parent.parent
FONTS = ROOT / "render" / "fonts"
LOREM = (
    "Nobody listens with the sound on, so every audiogram needs captions that read at a "
    "glance on a phone held at arm's length"
)


@pytest.mark.parametrize("bold", [False, True])
def test_font_loads_from_the_package_directory(bold: bool) -> None:
    face = font(40, bold=bold)
    path = Path(face.path).resolve()  # type: ignore[arg-type]
    assert path.is_relative_to(FONTS)
    assert path.is_file()
    assert face.getname()[0] == "Inter"
    assert face.size == 40


def test_font_is_cached_per_size_and_weight() -> None:
    assert font(31) is font(31)
    assert font(31) is not font(31, bold=True)
    assert font(31) is not font(32)


def test_font_loads_on_a_machine_without_system_fonts(tmp_path: Path) -> None:
    """A slim container has no fontconfig, no /usr/share/fonts: the bundled files must do."""
    script = (
        "import sys; from render.text import font; f = font(24, bold=True);"
        "print(f.path); print(f.getlength('Hello'))"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "XDG_DATA_DIRS": str(tmp_path / "none"),
        "XDG_DATA_HOME": str(tmp_path / "none"),
        "PYTHONPATH": str(ROOT),
    }
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert Path(out[0]).resolve().is_relative_to(FONTS)
    assert float(out[1]) > 0


def test_fonts_ship_with_their_licence_and_provenance() -> None:
    assert "SIL OPEN FONT LICENSE Version 1.1" in (FONTS / "OFL.txt").read_text()
    readme = (FONTS / "README.md").read_text()
    assert "fonts-inter" in readme
    assert text.REGULAR_FONT.name in readme and text.BOLD_FONT.name in readme


@pytest.mark.parametrize("max_width", [120, 300, 700])
def test_wrap_keeps_every_line_within_max_width(max_width: int) -> None:
    face = font(36)
    lines = wrap(LOREM, face, max_width)
    assert len(lines) > 1
    assert all(face.getlength(line) <= max_width for line in lines)
    assert "".join(lines).replace(" ", "") == LOREM.replace(" ", "")  # nothing lost or moved
    if max_width >= 300:  # wide enough for every word: breaks only at spaces
        assert " ".join(lines) == LOREM


def test_wrap_fills_lines_greedily() -> None:
    face = font(36)
    lines = wrap(LOREM, face, 500)
    for line, following in zip(lines, lines[1:], strict=False):
        assert face.getlength(f"{line} {following.split()[0]}") > 500


def test_wrap_breaks_a_word_longer_than_a_line() -> None:
    face = font(36)
    url = "https://example.com/episodes/2024/why-captions-matter-for-audiograms"
    lines = wrap(f"Listen at {url} today", face, 300)
    assert all(face.getlength(line) <= 300 for line in lines)
    assert "".join(lines).replace(" ", "") == f"Listenat{url}today"
    assert len([line for line in lines if " " not in line]) >= 2  # the URL spans lines


def test_wrap_keeps_explicit_newlines_and_blank_lines() -> None:
    assert wrap("Title\n\nshort", font(36), 1000) == ["Title", "", "short"]


def test_wrap_with_max_lines_ends_the_cut_with_an_ellipsis() -> None:
    face = font(36)
    lines = wrap(LOREM, face, 300, max_lines=2)
    assert len(lines) == 2
    assert lines[-1].endswith(ELLIPSIS)
    assert all(face.getlength(line) <= 300 for line in lines)


def test_wrap_with_max_lines_leaves_a_text_that_fits_alone() -> None:
    assert wrap("Short one", font(36), 1000, max_lines=1) == ["Short one"]


def _alpha_bbox(image: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(image[..., 3].any(axis=1))
    cols = np.flatnonzero(image[..., 3].any(axis=0))
    return cols[0], rows[0], cols[-1] + 1, rows[-1] + 1


@pytest.mark.parametrize("box", [None, (0, 0, 0, 160)])
@pytest.mark.parametrize("align", ["center", "left"])
def test_text_block_is_rgba_that_fits_max_width(box: tuple[int, ...] | None, align: str) -> None:
    block = render_text_block(LOREM, font_size=48, max_width=600, box=box, align=align)  # type: ignore[arg-type]
    assert block.dtype == np.uint8 and block.ndim == 3 and block.shape[2] == 4
    assert block.shape[1] <= 600
    x0, y0, x1, y1 = _alpha_bbox(block)
    assert x1 - x0 <= 600
    assert block.shape[0] > 3 * 48  # wrapped onto several lines


def test_text_block_from_lines_wraps_a_line_that_is_too_wide() -> None:
    block = render_text_block(["Short", LOREM], font_size=40, max_width=500)
    assert block.shape[1] <= 500


def test_text_block_is_antialiased_in_the_text_colour() -> None:
    block = render_text_block(
        "Hello", font_size=64, max_width=1000, color=(255, 200, 0), shadow=False
    )
    alpha = block[..., 3]
    assert alpha.max() == 255
    assert ((alpha > 0) & (alpha < 255)).sum() > 50  # soft glyph edges, not a hard mask
    opaque = block[alpha == 255]
    assert (opaque[:, :3] == (255, 200, 0)).all()


def test_text_block_shadow_darkens_pixels_next_to_the_glyphs() -> None:
    plain = render_text_block("Hello", font_size=64, max_width=1000, shadow=False)
    shaded = render_text_block("Hello", font_size=64, max_width=1000, shadow=True)
    assert shaded[..., 3].sum() > plain[..., 3].sum()
    halo = shaded[(shaded[..., 3] > 0) & (shaded[..., 3] < 200)]
    assert halo[:, :3].mean() < 128  # the extra coverage is dark


def test_text_block_box_is_translucent_with_rounded_corners() -> None:
    block = render_text_block("Caption", font_size=48, max_width=800, box=(10, 20, 30, 128))
    height, width = block.shape[:2]
    assert tuple(block[height // 2, 2]) == (10, 20, 30, 128)  # inside the box, beside the text
    assert block[0, 0, 3] == 0  # the corner is cut
    assert 0 < block[0, width // 2, 3] <= 128


def test_text_block_with_max_lines_stops_there() -> None:
    one = render_text_block(LOREM, font_size=40, max_width=400, max_lines=1)
    two = render_text_block(LOREM, font_size=40, max_width=400, max_lines=2)
    assert one.shape[0] < two.shape[0] < 3 * 40 * 1.2 + 40


def test_composite_half_alpha_white_over_black_gives_mid_grey() -> None:
    frame = np.zeros((4, 4, 3), np.uint8)
    layer = np.zeros((2, 2, 4), np.uint8)
    layer[...] = (255, 255, 255, 128)
    composite(frame, layer, 1, 1)
    assert (frame[1:3, 1:3] == 128).all()
    assert (frame[0] == 0).all() and (frame[3] == 0).all()


@pytest.mark.parametrize("alpha", [0, 1, 64, 127, 128, 200, 254, 255])
def test_composite_matches_exact_rounded_alpha_blending(alpha: int) -> None:
    rng = np.random.default_rng(alpha)
    frame = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    layer = rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)
    layer[..., 3] = alpha
    expected = np.rint(
        (layer[..., :3].astype(np.float64) * alpha + frame.astype(np.float64) * (255 - alpha)) / 255
    ).astype(np.uint8)
    composite(frame, layer, 0, 0)
    assert np.array_equal(frame, expected)


def test_composite_transparent_leaves_the_frame_and_opaque_replaces_it() -> None:
    frame = np.full((3, 3, 3), 77, np.uint8)
    layer = np.zeros((3, 3, 4), np.uint8)
    layer[0, 0] = (10, 20, 30, 255)
    composite(frame, layer, 0, 0)
    assert tuple(frame[0, 0]) == (10, 20, 30)
    assert (frame.reshape(-1, 3)[1:] == 77).all()


@pytest.mark.parametrize(
    ("x", "y", "covered"),
    [
        (-2, -2, (slice(0, 2), slice(0, 2))),  # hangs over the top-left corner
        (8, 9, (slice(9, 10), slice(8, 10))),  # hangs over the bottom-right corner
        (-3, 4, (slice(4, 8), slice(0, 1))),  # mostly off the left edge
        (20, 0, None),  # entirely outside
        (-4, -4, None),  # touches only the corner from outside
    ],
)
def test_composite_clips_at_the_frame_edges(x: int, y: int, covered: tuple | None) -> None:
    frame = np.zeros((10, 10, 3), np.uint8)
    layer = np.full((4, 4, 4), 255, np.uint8)
    composite(frame, layer, x, y)
    expected = np.zeros((10, 10, 3), np.uint8)
    if covered is not None:
        expected[covered] = 255
    assert np.array_equal(frame, expected)


def test_text_layer_draws_like_composite_every_time() -> None:
    block = render_text_block("Caption", font_size=40, max_width=400, box=(0, 0, 0, 150))
    background = np.random.default_rng(1).integers(0, 256, (120, 500, 3), dtype=np.uint8)
    layer = TextLayer(block, x=-10, y=30)
    for _ in range(2):  # the second draw uses the cached blend terms
        by_layer, by_function = background.copy(), background.copy()
        layer.draw(by_layer)
        composite(by_function, block, -10, 30)
        assert np.array_equal(by_layer, by_function)


def test_safe_area_of_portrait_keeps_room_for_app_ui_top_and_bottom() -> None:
    x0, y0, x1, y1 = safe_area(1080, 1920)
    assert (x0, y0, x1, y1) == (86, 269, 994, 1536)
    assert 1920 - y1 > y0 > x0  # bottom UI is the tallest, then the top bar


@pytest.mark.parametrize(
    ("width", "height"), [(1920, 1080), (1280, 720), (1080, 1080), (1080, 1350)]
)
def test_safe_area_of_other_shapes_is_inside_the_frame_with_even_sides(
    width: int, height: int
) -> None:
    x0, y0, x1, y1 = safe_area(width, height)
    assert 0 < x0 < x1 < width and 0 < y0 < y1 < height
    assert x0 == width - x1
    assert 0.04 * width <= x0 <= 0.08 * width
    assert height - y1 >= y0


def test_safe_area_of_landscape_is_the_broadcast_five_percent() -> None:
    assert safe_area(1920, 1080)[:3] == (96, 54, 1824)
