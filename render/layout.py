"""Where things go on the canvas: safe area, artwork, title, subtitle, the animation, captions.

Two presets, each adapting to landscape, square and portrait canvases:

- ``standard``: artwork with the titles beside it (landscape and square) or
  above them (portrait), the animation below, captions at the bottom.
- ``minimal``: no artwork block; the titles at the top, a large animation in
  the middle, captions at the bottom.

``circle`` puts the artwork inside its ring instead of in the stack.

Text is measured, not guessed: the title and subtitle are wrapped here (set up
to ``MIN_TITLE_SCALE`` smaller to stay within two lines each), and their boxes
are the exact size of the blocks ``render.text`` draws; the caption box is the
height of a two-line caption page. The animation always keeps at least
``MIN_VIZ_SHARE`` of the safe area's height, its full height reserved: the
artwork gives way before it does. No two boxes overlap, every box is inside the
safe area (``text.safe_area``), so apps' overlays don't cover text, and every
coordinate is even, so 4:2:0 chroma lines up with luma.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from render.caption_layout import caption_box_height
from render.spec import RenderSpec
from render.styles import Rect
from render.text import block_geometry, font, safe_area, wrap

#: Below this shorter side, text would be unreadable and crowd out the animation:
#: title, subtitle and captions are left out.
MIN_TEXT_SIDE = 180
#: The animation's least share of the safe area's height.
MIN_VIZ_SHARE = 0.30
#: A title or subtitle may be set this much smaller to fit in ``TITLE_LINES``.
MIN_TITLE_SCALE = 0.7
#: Lines a title or a subtitle may take; past them (at the smallest size) it ends in "…".
TITLE_LINES = 2
#: Beside the artwork the column is narrow and as tall as the artwork: a title may take three.
SIDE_TITLE_LINES = 3
#: Canvases at least this wide for their height put the artwork beside the titles.
SIDE_BY_SIDE_RATIO = 0.9


@dataclass(frozen=True)
class TextBox:
    """A title or subtitle: its lines at ``size``, drawn into ``rect`` (exactly its height)."""

    rect: Rect
    lines: tuple[str, ...]
    size: int
    bold: bool


@dataclass(frozen=True)
class Layout:
    safe: Rect
    viz: Rect
    artwork: Rect | None
    title: TextBox | None
    subtitle: TextBox | None
    captions: Rect | None
    caption_size: int
    text_align: str

    def boxes(self) -> dict[str, Rect]:
        """Every box that holds something, by name (for tests and debugging)."""
        named = {
            "viz": self.viz,
            "artwork": self.artwork,
            "title": self.title.rect if self.title else None,
            "subtitle": self.subtitle.rect if self.subtitle else None,
            "captions": self.captions,
        }
        return {name: box for name, box in named.items() if box is not None}


def _even(value: float) -> int:
    return int(value) // 2 * 2


def _even_up(value: float) -> int:
    return math.ceil(value / 2) * 2


def _rect(x: float, y: float, w: float, h: float) -> Rect:
    return Rect(_even(x), _even(y), max(2, _even(w)), max(2, _even(h)))


@dataclass(frozen=True)
class _Text:
    lines: tuple[str, ...]
    size: int
    bold: bool
    height: int  # the drawn block's height, rounded up to even


def fit_text(
    text: str, size: int, width: int, *, bold: bool, max_lines: int = TITLE_LINES
) -> _Text:
    """``text`` in at most ``max_lines`` lines of ``width`` px, as large as it can be set."""
    smallest = max(6, math.floor(size * MIN_TITLE_SCALE))
    for candidate in range(size, smallest - 1, -1):
        lines = wrap(text, font(candidate, bold=bold), _inner(candidate, width, bold))
        if len(lines) <= max_lines:
            break
    else:
        candidate = smallest
        lines = wrap(
            text, font(candidate, bold=bold), _inner(candidate, width, bold), max_lines=max_lines
        )
    height = block_geometry(candidate, width, bold=bold).height(len(lines))
    return _Text(tuple(lines), candidate, bold, _even_up(height))


def _inner(size: int, width: int, bold: bool) -> int:
    return block_geometry(size, width, bold=bold).inner


def compute_layout(spec: RenderSpec, *, has_artwork: bool, has_captions: bool) -> Layout:
    x0, y0, x1, y1 = safe_area(spec.width, spec.height)
    # round inwards to even coordinates, so every box stays inside the safe area
    x0, y0 = x0 + x0 % 2, y0 + y0 % 2
    x1, y1 = x1 - x1 % 2, y1 - y1 % 2
    safe = Rect(x0, y0, x1 - x0, y1 - y0)
    short = min(spec.width, spec.height)
    title_text, subtitle_text = spec.title, spec.subtitle
    if short < MIN_TEXT_SIDE:
        title_text = subtitle_text = None
        has_captions = False
    title_size = max(10, round(short * 0.058))
    subtitle_size = max(8, round(short * 0.036))
    caption_size = max(8, round(short * 0.046))
    gap = _even_up(short * 0.03)
    min_viz = safe.h * MIN_VIZ_SHARE

    bottom = safe.y + safe.h
    captions = None
    if has_captions:
        cap_h = _even_up(caption_box_height(caption_size, safe.w))
        captions = Rect(safe.x, bottom - cap_h, safe.w, cap_h)
        bottom = captions.y - gap

    top = safe.y
    has_title = bool(title_text or subtitle_text)
    show_artwork = has_artwork and spec.layout == "standard" and spec.style != "circle"
    side_by_side = show_artwork and spec.width >= spec.height * SIDE_BY_SIDE_RATIO

    between = _even_up(subtitle_size / 4) if title_text and subtitle_text else 0

    def texts(width: int, title_lines: int = TITLE_LINES) -> tuple[_Text | None, _Text | None, int]:
        title = (
            fit_text(title_text, title_size, width, bold=True, max_lines=title_lines)
            if title_text
            else None
        )
        subtitle = (
            fit_text(subtitle_text, subtitle_size, width, bold=False) if subtitle_text else None
        )
        height = (title.height if title else 0) + between + (subtitle.height if subtitle else 0)
        return title, subtitle, height

    artwork = None
    align = "center"
    if side_by_side:
        avail = bottom - top
        art = max(_even(min(safe.w * 0.34, avail * 0.55, avail - min_viz - gap)), 0)
        text_x = safe.x + art + gap
        text_w = _even(safe.x + safe.w - text_x)
        title, subtitle, text_h = texts(text_w, SIDE_TITLE_LINES) if has_title else (None, None, 0)
        header_h = max(art, text_h)
        if art >= 2:
            artwork = Rect(safe.x, top + _even((header_h - art) / 2), art, art)
        text_y = top + _even((header_h - text_h) / 2)
        column = (text_x, text_w)
        align = "left"
        top += header_h + gap
    else:
        title, subtitle, text_h = texts(safe.w) if has_title else (None, None, 0)
        if show_artwork:
            avail = bottom - top - (text_h + gap if has_title else 0)
            art = _even(min(safe.w * 0.62, avail * 0.55, avail - min_viz - gap))
            if art >= 2:
                artwork = Rect(safe.x + _even((safe.w - art) / 2), top, art, art)
                top += art + gap
        text_y = top
        column = (safe.x, safe.w)
        if has_title:
            top += text_h + gap

    title_box = subtitle_box = None
    y = text_y
    for text, slot in ((title, "title"), (subtitle, "subtitle")):
        if text is None:
            continue
        box = TextBox(Rect(column[0], y, column[1], text.height), text.lines, text.size, text.bold)
        if slot == "title":
            title_box = box
            y += text.height + between
        else:
            subtitle_box = box

    viz_h = max(bottom - top, 2)
    if spec.style == "circle":
        side = min(safe.w, viz_h)
        viz = _rect(safe.x + (safe.w - side) / 2, top + (viz_h - side) / 2, side, side)
    else:
        viz = _rect(safe.x, top, safe.w, viz_h)
    return Layout(
        safe=safe,
        viz=viz,
        artwork=artwork,
        title=title_box,
        subtitle=subtitle_box,
        captions=captions,
        caption_size=caption_size,
        text_align=align,
    )
