"""Titles and captions: text drawn once into RGBA layers, then blended into every frame.

Pillow rasterises a block (antialiased glyphs, an optional rounded box, a soft
shadow) when the text changes; per frame only ``composite`` runs, a few
vectorised uint16 operations over the block's rectangle. Glyphs come from the
Inter files bundled in ``render/fonts`` (see its README), so a worker in a
slim container with no system fonts draws the same pixels as a laptop.

Layers use straight (not premultiplied) alpha, as Pillow's RGBA does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

#: Where the bundled fonts live; package data, installed with ``render``.
FONTS_DIR = Path(__file__).resolve().parent / "fonts"
REGULAR_FONT = FONTS_DIR / "Inter-Medium.otf"
BOLD_FONT = FONTS_DIR / "Inter-Bold.otf"
ELLIPSIS = "…"
#: How dark the shadow under the glyphs is: enough to lift white text off a white
#: background, light enough not to look like an outline.
SHADOW_OPACITY = 0.65

#: Safe-area margins as fractions of the frame: (each side, top, bottom).
#: Portrait (9:16 Reels, TikTok, Shorts): the apps lay their top bar over ~14 % and
#: the caption, sound and button rows over the bottom ~20 %; 8 % a side keeps text
#: off the rounded corners and clear of most of the right-hand button column.
PORTRAIT_MARGINS = (0.08, 0.14, 0.20)
#: Square and 4:5 (feed posts): little UI over the video; the bottom keeps room
#: for a progress bar and the "sound off" badge.
SQUARE_MARGINS = (0.06, 0.06, 0.08)
#: Landscape (16:9 YouTube, X, LinkedIn): the broadcast graphics-safe 5 %, and more
#: at the bottom where players draw their control bar.
LANDSCAPE_MARGINS = (0.05, 0.05, 0.08)

Align = Literal["left", "center", "right"]
RGB = tuple[int, int, int]
RGBA = tuple[int, int, int, int]


@lru_cache(maxsize=64)
def font(size: int, *, bold: bool = False) -> ImageFont.FreeTypeFont:
    """Bundled Inter at ``size`` pixels: Medium, or Bold for titles."""
    if size < 1:
        raise ValueError(f"font size must be at least 1 pixel, got {size}")
    return ImageFont.truetype(str(BOLD_FONT if bold else REGULAR_FONT), size)


def wrap(
    text: str, font: ImageFont.FreeTypeFont, max_width: int, *, max_lines: int | None = None
) -> list[str]:
    """Lines of ``text`` that each measure at most ``max_width`` pixels in ``font``.

    Breaks at spaces, keeps the text's own newlines, and splits a word wider
    than a line (a URL, a long compound) between characters. With
    ``max_lines``, a cut text ends its last line with "…". A single character
    wider than ``max_width`` still gets a line of its own.
    """
    if max_lines is not None and max_lines < 1:
        raise ValueError(f"max_lines must be at least 1, got {max_lines}")
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= max_width:
                line = candidate
                continue
            if line:
                lines.append(line)
            pieces = _break_word(word, font, max_width)
            lines.extend(pieces[:-1])
            line = pieces[-1]
        lines.append(line)
    if max_lines is not None and len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _with_ellipsis(lines[-1], font, max_width)
    return lines


@dataclass(frozen=True)
class Highlight:
    """Words of a block drawn in another colour: ``spans`` are (line, first character,
    end character) in the block's lines, as wrapped. Only the glyphs change colour:
    the block's size, lines and every glyph's place stay those of the plain block."""

    spans: tuple[tuple[int, int, int], ...]
    color: RGB


@dataclass(frozen=True)
class BlockGeometry:
    """Where a text block's lines sit: margins, line step and the width lines wrap to.

    One object for both drawing (``render_text_block``) and planning
    (``render.layout``, ``render.caption_layout``), so a box reserved for two lines
    is exactly the height two drawn lines take.
    """

    font_size: int
    margin_x: int
    margin_y: int
    inner: int  # the widest a line may be
    ascent: int
    descent: int
    step: int  # baseline to baseline
    shadow_offset: int
    shadow_blur: float

    def height(self, lines: int) -> int:
        """Pixel height of a block of ``lines`` lines (at least one)."""
        return self.ascent + self.descent + self.step * (max(lines, 1) - 1) + 2 * self.margin_y

    def width(self, text_width: float) -> int:
        """Pixel width of a block whose widest line measures ``text_width``."""
        return min(self.inner, math.ceil(text_width)) + 2 * self.margin_x


def block_geometry(
    font_size: int,
    max_width: int,
    *,
    bold: bool = False,
    boxed: bool = False,
    shadow: bool = True,
    padding: int | tuple[int, int] | None = None,
    line_spacing: float = 1.2,
) -> BlockGeometry:
    """The geometry ``render_text_block`` uses for these settings."""
    face = font(font_size, bold=bold)
    pad_x, pad_y = _padding(padding, font_size, boxed)
    # the shadow's offset and blur, which need room outside the glyphs
    offset = (1 if font_size < 36 else 2) if shadow else 0
    blur = max(1.0, font_size / 36) if shadow else 0.0
    spread = offset + math.ceil(2 * blur)
    # glyphs like "j" reach up to 3 % of the size left of their origin
    margin_x = max(pad_x, spread, math.ceil(font_size * 0.04))
    margin_y = max(pad_y, spread)
    inner = max_width - 2 * margin_x
    if inner < 1:
        raise ValueError(f"max_width {max_width} leaves no room for text at this padding")
    ascent, descent = face.getmetrics()
    return BlockGeometry(
        font_size=font_size,
        margin_x=margin_x,
        margin_y=margin_y,
        inner=inner,
        ascent=ascent,
        descent=descent,
        step=round(font_size * line_spacing),
        shadow_offset=offset,
        shadow_blur=blur,
    )


def render_text_block(
    text: str | Sequence[str],
    *,
    font_size: int,
    color: RGB = (255, 255, 255),
    max_width: int,
    align: Align = "center",
    line_spacing: float = 1.2,
    bold: bool = False,
    shadow: bool = True,
    box: RGBA | None = None,
    padding: int | tuple[int, int] | None = None,
    max_lines: int | None = None,
    highlight: Highlight | None = None,
) -> np.ndarray:
    """A block of wrapped text as an HxWx4 uint8 RGBA array (straight alpha), W <= max_width.

    ``text`` is wrapped to fit, whether given as one string or as lines.
    ``box`` puts a translucent rounded rectangle behind it (captions over a
    busy background); ``padding`` is its inner margin in pixels, ``(x, y)`` or
    one number, by default scaled to the font size. ``shadow`` adds a soft dark
    shadow 1-2 px down and right so light text stays legible on light pixels.
    Text that is empty or only spaces gives a block with nothing but the box.
    Its size is ``block_geometry(...)``'s ``width`` by ``height`` of the lines drawn.
    ``highlight`` draws some words' glyphs in its colour instead of ``color``.
    """
    block = draw_text_block(
        text, font_size=font_size, max_width=max_width, align=align,
        line_spacing=line_spacing, bold=bold, shadow=shadow, box=box, padding=padding,
        max_lines=max_lines,
    )  # fmt: skip
    return block.rgba(color, highlight)


@dataclass(eq=False)
class TextBlock:
    """A block of text drawn once, before it is coloured: what lies under the glyphs (the
    box and the shadow, RGBA) and the glyphs' coverage (L). ``rgba`` colours it, some
    words highlighted or none, without laying out or drawing anything again, so a
    caption page is drawn once however many of its words take turns being highlighted."""

    lines: list[str]
    under: Image.Image
    mask: Image.Image
    starts: list[float]  # where each line's text begins, in pixels from the block's left
    face: ImageFont.FreeTypeFont
    geometry: BlockGeometry

    def rgba(self, color: RGB, highlight: Highlight | None = None) -> np.ndarray:
        """The block as an HxWx4 uint8 RGBA array: glyphs in ``color``, the highlight's
        in its colour."""
        glyphs = Image.new("RGBA", self.under.size, (*color, 0))
        if highlight is not None:
            paint = ImageDraw.Draw(glyphs)
            for left, top, right, bottom in self.span_boxes(highlight.spans):
                paint.rectangle((left, top, right - 1, bottom - 1), fill=(*highlight.color, 0))
        glyphs.putalpha(self.mask)
        block = self.under.copy()
        block.alpha_composite(glyphs)
        return np.asarray(block, dtype=np.uint8).copy()

    def span_boxes(
        self, spans: Sequence[tuple[int, int, int]]
    ) -> list[tuple[int, int, int, int]]:
        """``(left, top, right, bottom)`` pixels owned by each span's glyphs (and nothing
        else's): its line's rows, its characters' columns out to the middle of the spaces
        around them. Colouring these colours exactly those glyphs."""
        width, height = self.under.size
        bands = _line_bands(self.lines, self.face, self.geometry, height)
        boxes = []
        for line, first, end in spans:
            left, right = _span_edges(
                self.lines[line], first, end, self.face, self.starts[line], width
            )
            boxes.append((left, bands[line][0], right, bands[line][1]))
        return boxes


def draw_text_block(
    text: str | Sequence[str],
    *,
    font_size: int,
    max_width: int,
    align: Align = "center",
    line_spacing: float = 1.2,
    bold: bool = False,
    shadow: bool = True,
    box: RGBA | None = None,
    padding: int | tuple[int, int] | None = None,
    max_lines: int | None = None,
) -> TextBlock:
    """``render_text_block``'s block, wrapped and drawn but not yet coloured."""
    if align not in ("left", "center", "right"):
        raise ValueError(f"align must be 'left', 'center' or 'right', got {align!r}")
    if not isinstance(text, str):
        text = "\n".join(text)
    face = font(font_size, bold=bold)
    geo = block_geometry(
        font_size, max_width, bold=bold, boxed=box is not None, shadow=shadow,
        padding=padding, line_spacing=line_spacing,
    )  # fmt: skip
    margin_x, margin_y, ascent = geo.margin_x, geo.margin_y, geo.ascent
    lines = wrap(text, face, geo.inner, max_lines=max_lines)
    widths = [face.getlength(line) for line in lines]
    text_w = geo.width(max(widths, default=0)) - 2 * margin_x
    size = (geo.width(max(widths, default=0)), geo.height(len(lines)))

    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    starts = []
    for i, (line, width) in enumerate(zip(lines, widths, strict=True)):
        if align == "left":
            x = margin_x
        elif align == "right":
            x = margin_x + text_w - width
        else:
            x = margin_x + (text_w - width) / 2
        starts.append(x)
        draw.text((x, margin_y + ascent + i * geo.step), line, font=face, fill=255, anchor="ls")

    under = Image.new("RGBA", size, (0, 0, 0, 0))
    if box is not None:
        under.alpha_composite(_rounded_box(size, box, radius=round(font_size * 0.4)))
    if shadow:
        dark = _shifted(mask, geo.shadow_offset).filter(ImageFilter.GaussianBlur(geo.shadow_blur))
        dark = dark.point(lambda v: round(v * SHADOW_OPACITY))
        layer = Image.new("RGBA", size, (0, 0, 0, 0))
        layer.putalpha(dark)
        under.alpha_composite(layer)
    return TextBlock(lines, under, mask, starts, face, geo)


def _line_bands(
    lines: Sequence[str], face: ImageFont.FreeTypeFont, geo: BlockGeometry, height: int
) -> list[tuple[int, int]]:
    """The rows each line's glyphs own, top to bottom: neighbouring lines part halfway
    between one's lowest ink (descenders) and the next one's highest (accents)."""
    ink = []
    for i, line in enumerate(lines):
        baseline = geo.margin_y + geo.ascent + i * geo.step
        _, top, _, bottom = face.getbbox(line, anchor="ls") if line.strip() else (0, 0, 0, 0)
        ink.append((baseline + top, baseline + bottom))
    edges = [0] + [round((ink[i][1] + ink[i + 1][0]) / 2) for i in range(len(ink) - 1)]
    return list(zip(edges, [*edges[1:], height], strict=True))


def _span_edges(
    line: str, first: int, end: int, face: ImageFont.FreeTypeFont, x: float, width: int
) -> tuple[int, int]:
    """The columns of characters ``first:end`` of a line drawn from ``x``: out to the
    middle of the spaces around them (a glyph's ink can reach past its advance), or to
    the block's edge at either end of the line."""
    def column(index: int) -> float:
        return x + face.getlength(line[:index])

    left = 0.0 if first == 0 else (column(first - 1) + column(first)) / 2
    right = float(width) if end >= len(line) else (column(end) + column(end + 1)) / 2
    return round(left), round(right)


@dataclass(eq=False)
class TextLayer:
    """A drawn block and where its top-left corner sits in the frame.

    ``image`` is HxWx4 uint8 RGBA with straight alpha. ``draw`` keeps the
    premultiplied colour and inverse alpha from the first call, so a caption
    shown for hundreds of frames is converted once.
    """

    image: np.ndarray
    x: int
    y: int
    _blend: tuple[np.ndarray, np.ndarray] | None = field(default=None, init=False, repr=False)

    def draw(self, frame_rgb: np.ndarray) -> None:
        """Blend the layer into ``frame_rgb`` in place."""
        if self._blend is None:
            self._blend = _premultiply(self.image)
        _blend_into(frame_rgb, *self._blend, self.x, self.y)


def composite(frame_rgb: np.ndarray, layer_rgba: np.ndarray, x: int, y: int) -> None:
    """Alpha-blend an RGBA layer (straight alpha) into an HxWx3 uint8 frame in place.

    ``x``, ``y`` is the layer's top-left corner; parts outside the frame are
    cut off, so a layer may hang over an edge or miss the frame entirely.
    """
    region = _clip(frame_rgb.shape, layer_rgba.shape, x, y)
    if region is None:
        return
    (fy, fx), (ly, lx) = region
    premul, inverse = _premultiply(layer_rgba[ly, lx])
    _blend_into(frame_rgb[fy, fx], premul, inverse, 0, 0)


def safe_area(width: int, height: int) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of the part of a frame that no platform's UI covers.

    The margins are the ``*_MARGINS`` fractions: portrait from a height/width
    of 1.5 (2:3, 9:16), landscape from a width/height of 1.3 (4:3, 16:9),
    square between (1:1, 4:5).
    """
    if height >= 1.5 * width:
        side, top, bottom = PORTRAIT_MARGINS
    elif width >= 1.3 * height:
        side, top, bottom = LANDSCAPE_MARGINS
    else:
        side, top, bottom = SQUARE_MARGINS
    return (
        round(width * side),
        round(height * top),
        width - round(width * side),
        height - round(height * bottom),
    )


def _break_word(word: str, font: ImageFont.FreeTypeFont, max_width: int) -> list[str]:
    """``word`` cut into pieces that each fit ``max_width`` (at least one character each).

    Each piece is the longest prefix that fits, found by bisection: a long URL in a
    narrow caption box costs a few measurements per piece, not one per character.
    """
    pieces: list[str] = []
    rest = word
    while rest:
        fits, too_long = 1, len(rest) + 1
        while too_long - fits > 1:
            middle = (fits + too_long) // 2
            if font.getlength(rest[:middle]) <= max_width:
                fits = middle
            else:
                too_long = middle
        pieces.append(rest[:fits])
        rest = rest[fits:]
    return pieces or [""]


def _with_ellipsis(line: str, font: ImageFont.FreeTypeFont, max_width: int) -> str:
    """``line`` shortened until it fits ``max_width`` with "…" after it."""
    line = line.rstrip()
    while line and font.getlength(line + ELLIPSIS) > max_width:
        line = line[:-1].rstrip()
    return line + ELLIPSIS


def _padding(padding: int | tuple[int, int] | None, font_size: int, boxed: bool) -> tuple[int, int]:
    if padding is None:
        return (round(font_size * 0.6), round(font_size * 0.3)) if boxed else (0, 0)
    if isinstance(padding, int):
        return padding, padding
    return padding


def _shifted(mask: Image.Image, offset: int) -> Image.Image:
    """``mask`` moved ``offset`` pixels right and down, what falls off the edge dropped."""
    moved = Image.new("L", mask.size, 0)
    moved.paste(mask.crop((0, 0, mask.width - offset, mask.height - offset)), (offset, offset))
    return moved


def _rounded_box(size: tuple[int, int], colour: RGBA, radius: int) -> Image.Image:
    """A filled rounded rectangle with antialiased corners (Pillow's own has hard edges)."""
    scale = 4
    big = Image.new("L", (size[0] * scale, size[1] * scale), 0)
    ImageDraw.Draw(big).rounded_rectangle(
        (0, 0, big.width - 1, big.height - 1), radius=radius * scale, fill=colour[3]
    )
    box = Image.new("RGBA", size, (*colour[:3], 0))
    box.putalpha(big.reduce(scale))
    return box


def _premultiply(layer_rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour x alpha and 255 - alpha as uint16, the two terms every blend needs."""
    alpha = layer_rgba[..., 3:4].astype(np.uint16)
    return layer_rgba[..., :3] * alpha, 255 - alpha


def _clip(
    frame_shape: tuple[int, ...], layer_shape: tuple[int, ...], x: int, y: int
) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """The overlapping rectangle as (frame rows, cols), (layer rows, cols), or None."""
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + layer_shape[1], frame_shape[1]), min(y + layer_shape[0], frame_shape[0])
    if x0 >= x1 or y0 >= y1:
        return None
    return (slice(y0, y1), slice(x0, x1)), (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))


def _blend_into(
    frame_rgb: np.ndarray, premul: np.ndarray, inverse: np.ndarray, x: int, y: int
) -> None:
    """frame = (premul + frame * inverse) / 255 over the overlap, rounded, in uint16."""
    region = _clip(frame_rgb.shape, premul.shape, x, y)
    if region is None:
        return
    (fy, fx), (ly, lx) = region
    target = frame_rgb[fy, fx]
    total = target * inverse[ly, lx]
    total += premul[ly, lx]
    total += 128
    # exact round(total / 255) for total <= 255 * 255 without a division
    total += total >> 8
    total >>= 8
    target[...] = total
