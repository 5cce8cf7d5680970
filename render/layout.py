"""Where things go on the canvas: safe area, artwork, title, the animation, captions.

Two presets, each adapting to landscape, square and portrait canvases:

- ``standard``: artwork and titles above (side by side on landscape), the
  animation below them, captions at the bottom.
- ``minimal``: no artwork block; a small title at the top, a large animation in
  the middle, captions at the bottom.

``circle`` puts the artwork inside its ring instead of in the stack. Every box is
inside the safe area (``text.safe_area``), so apps' overlays don't cover text, and
every coordinate and size is even, so 4:2:0 chroma lines up with luma.
"""

from __future__ import annotations

from dataclasses import dataclass

from render.spec import RenderSpec
from render.styles import Rect
from render.text import safe_area


@dataclass(frozen=True)
class Layout:
    safe: Rect
    viz: Rect
    artwork: Rect | None
    title: Rect | None
    title_size: int
    subtitle_size: int
    captions: Rect | None
    caption_size: int
    text_align: str


def _even(value: float) -> int:
    return int(value) // 2 * 2


def _rect(x: float, y: float, w: float, h: float) -> Rect:
    return Rect(_even(x), _even(y), max(2, _even(w)), max(2, _even(h)))


#: Below this shorter side, text would be unreadable and crowd out the animation:
#: title, subtitle and captions are left out.
MIN_TEXT_SIDE = 180


def compute_layout(spec: RenderSpec, *, has_artwork: bool, has_captions: bool) -> Layout:
    x0, y0, x1, y1 = safe_area(spec.width, spec.height)
    # round inwards to even coordinates, so every box stays inside the safe area
    x0, y0 = x0 + x0 % 2, y0 + y0 % 2
    x1, y1 = x1 - x1 % 2, y1 - y1 % 2
    safe = Rect(x0, y0, x1 - x0, y1 - y0)
    short = min(spec.width, spec.height)
    if short < MIN_TEXT_SIDE:
        spec = spec.model_copy(update={"title": None, "subtitle": None})
        has_captions = False
    landscape = spec.width >= spec.height * 1.2
    title_size = max(10, round(short * 0.058))
    subtitle_size = max(8, round(short * 0.036))
    caption_size = max(8, round(short * 0.046))
    gap = short * 0.03

    bottom = safe.y + safe.h
    captions = None
    if has_captions:
        cap_h = caption_size * 2 * 1.3 + caption_size * 0.8
        captions = _rect(safe.x, bottom - cap_h, safe.w, cap_h)
        bottom = captions.y - gap

    has_title = bool(spec.title or spec.subtitle)
    text_h = (title_size * 1.25 if spec.title else 0) + (
        subtitle_size * 1.3 + 4 if spec.subtitle else 0
    )
    top = safe.y
    artwork = title = None
    show_artwork = has_artwork and spec.layout == "standard" and spec.style != "circle"
    align = "center"

    if spec.layout == "minimal" or not (show_artwork or has_title):
        if has_title:
            title = _rect(safe.x, top, safe.w, text_h)
            top = title.y + title.h + gap
    elif landscape:
        block_h = (bottom - top) * 0.55
        if show_artwork:
            art = min(block_h, safe.w * 0.34)
            artwork = _rect(safe.x, top, art, art)
            text_x = artwork.x + artwork.w + gap
            if has_title:
                title = _rect(text_x, top + (art - text_h) / 2, safe.x + safe.w - text_x, text_h)
            align = "left"
            top = artwork.y + artwork.h + gap
        else:
            title = _rect(safe.x, top, safe.w, text_h)
            top = title.y + title.h + gap
    else:
        if show_artwork:
            art = min(safe.w * 0.62, (bottom - top) * 0.45)
            artwork = _rect(safe.x + (safe.w - art) / 2, top, art, art)
            top = artwork.y + artwork.h + gap
        if has_title:
            title = _rect(safe.x, top, safe.w, text_h)
            top = title.y + title.h + gap

    viz_h = max(bottom - top, short * 0.12)
    if spec.style == "circle":
        side = min(safe.w, viz_h)
        viz = _rect(safe.x + (safe.w - side) / 2, top + (viz_h - side) / 2, side, side)
    else:
        viz = _rect(safe.x, top, safe.w, viz_h)
    return Layout(
        safe=safe,
        viz=viz,
        artwork=artwork,
        title=title,
        title_size=title_size,
        subtitle_size=subtitle_size,
        captions=captions,
        caption_size=caption_size,
        text_align=align,
    )
