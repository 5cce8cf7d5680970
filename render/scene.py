"""The static layers, composed once per render, and the captions track.

Background (colour, gradient or a cover-fitted image, blurred and darkened),
artwork, title and subtitle never change during a video: they are drawn once in
RGB with Pillow, together with a style's static parts, and converted to YUV once.
Over a video background (render.backdrop) the background moves, so the same static
layers are kept as an overlay instead: each piece (the artwork, each text block, a
style's static parts) an RGBA layer cut to its own box and converted once, blended
over every frame. Only those boxes are touched, never a full-canvas layer per frame.
Captions change once per cue: each cue's text block is drawn and converted when
it first shows, then blended into the frames it covers. Word-timed captions change
once per word too: each page is drawn once per word highlighted on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps, UnidentifiedImageError

from render.canvas import Planes, YuvaLayer
from render.caption_layout import Page, page_at, paginate
from render.captions import Cue, parse_captions, shift_cues
from render.errors import InvalidImage
from render.layout import Layout
from render.spec import Assets, RenderSpec
from render.styles import Rect, StyleDrawer
from render.text import Highlight, TextBlock, composite, draw_text_block, render_text_block

#: Largest image we open: 50 megapixels (a decompression bomb is refused, not rendered).
MAX_IMAGE_PIXELS = 50_000_000
#: The translucent box behind captions: black at 150/255, so any background reads.
CAPTION_BOX = (0, 0, 0, 150)


def load_image(path: Path, role: str) -> Image.Image:
    """Open an uploaded image or fail with ``invalid_image`` naming its role."""
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with Image.open(path) as image:
            image.load()
            return ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as exc:
        raise InvalidImage(
            f"The {role} image could not be read ({type(exc).__name__}). "
            "Upload a PNG, JPEG or WebP image of at most 50 megapixels."
        ) from None


def cover(image: Image.Image, width: int, height: int) -> Image.Image:
    """Scale to cover ``width`` x ``height`` and crop the overflow, centred."""
    return ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS)


def background_image(spec: RenderSpec, assets: Assets) -> np.ndarray:
    w, h = spec.width, spec.height
    if assets.background is not None:
        image = cover(load_image(assets.background, "background"), w, h)
        if spec.background_blur > 0:
            image = image.filter(ImageFilter.GaussianBlur(spec.background_blur * min(w, h) / 1080))
        rgb = np.asarray(image, np.float32)
        if spec.background_darken > 0:
            rgb *= 1.0 - spec.background_darken
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    first = np.array(spec.background_rgb, np.float32)
    if spec.background2_rgb is None:
        return np.broadcast_to(first.astype(np.uint8), (h, w, 3)).copy()
    second = np.array(spec.background2_rgb, np.float32)
    # a diagonal gradient, top left to bottom right
    t = (np.arange(w)[None, :] / max(w - 1, 1) + np.arange(h)[:, None] / max(h - 1, 1)) / 2
    rgb = first + (second - first) * t[..., None].astype(np.float32)
    return np.rint(rgb).astype(np.uint8)


def _paste_artwork(rgb: np.ndarray, artwork: Image.Image, rect: Rect, *, round_: bool) -> None:
    size = (rect.w, rect.h)
    art = cover(artwork, *size)
    mask = _artwork_mask(size, round_=round_)
    base = Image.fromarray(rgb[rect.y : rect.y + rect.h, rect.x : rect.x + rect.w])
    base.paste(art, (0, 0), mask)
    rgb[rect.y : rect.y + rect.h, rect.x : rect.x + rect.w] = np.asarray(base)


def _artwork_rect(spec: RenderSpec, layout: Layout) -> tuple[Rect, bool] | None:
    """Where the artwork goes and whether it is round (inside the ``circle`` ring)."""
    if spec.style == "circle":
        viz = layout.viz
        side = round(min(viz.w, viz.h) * 0.27 * 2 * 0.92) // 2 * 2
        return Rect(viz.x + (viz.w - side) // 2, viz.y + (viz.h - side) // 2, side, side), True
    return None if layout.artwork is None else (layout.artwork, False)


def _artwork_mask(size: tuple[int, int], *, round_: bool) -> Image.Image:
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    if round_:
        draw.ellipse((0, 0, size[0] - 1, size[1] - 1), fill=255)
    else:
        draw.rounded_rectangle((0, 0, size[0] - 1, size[1] - 1), radius=size[0] // 24, fill=255)
    return mask


def _text_blocks(spec: RenderSpec, layout: Layout) -> list[tuple[np.ndarray, int, int]]:
    """The title and subtitle as RGBA blocks, each with its top-left corner."""
    blocks = []
    for box in (layout.title, layout.subtitle):
        if box is None:
            continue
        block = render_text_block(
            box.lines,
            font_size=box.size,
            color=spec.text_rgb,
            max_width=box.rect.w,
            align=layout.text_align,
            bold=box.bold,
        )
        x = box.rect.x
        if layout.text_align == "center":
            x += (box.rect.w - block.shape[1]) // 2
        blocks.append((block, x, box.rect.y))
    return blocks


def compose_static(
    spec: RenderSpec, assets: Assets, layout: Layout, style: StyleDrawer
) -> Planes:
    """The background every frame starts from, in YUV."""
    rgb = background_image(spec, assets)
    placed = _artwork_rect(spec, layout) if assets.artwork is not None else None
    if assets.artwork is not None and placed is not None:
        rect, round_ = placed
        _paste_artwork(rgb, load_image(assets.artwork, "artwork"), rect, round_=round_)
    for block, x, y in _text_blocks(spec, layout):
        composite(rgb, block, x, y)
    style.static(rgb)
    return Planes.from_rgb(rgb)


@dataclass(frozen=True)
class Sticker:
    """One piece of the static overlay: a layer converted once, and where it goes."""

    layer: YuvaLayer
    x: int
    y: int

    def draw(self, planes: Planes) -> None:
        self.layer.blend(planes, self.x, self.y)


def compose_overlay(
    spec: RenderSpec, assets: Assets, layout: Layout, style: StyleDrawer
) -> list[Sticker]:
    """The static layers of ``compose_static`` without a background, for a moving one:
    the artwork, the title and subtitle, and the style's static parts, each cut to
    the box it covers."""
    stickers = []
    placed = _artwork_rect(spec, layout) if assets.artwork is not None else None
    if assets.artwork is not None and placed is not None:
        rect, round_ = placed
        art = cover(load_image(assets.artwork, "artwork"), rect.w, rect.h)
        alpha = np.asarray(_artwork_mask((rect.w, rect.h), round_=round_))
        rgba = np.dstack([np.asarray(art), alpha])
        stickers.append(Sticker(YuvaLayer.from_rgba(rgba), rect.x, rect.y))
    for block, x, y in _text_blocks(spec, layout):
        stickers.append(Sticker(YuvaLayer.from_rgba(block), x, y))
    canvas = np.zeros((spec.height, spec.width, 4), np.uint8)
    style.static(canvas)  # RGBA: a style draws its static parts with their alpha
    rows = np.flatnonzero(canvas[..., 3].any(axis=1))
    cols = np.flatnonzero(canvas[..., 3].any(axis=0))
    if rows.size:
        # even corners, as the chroma planes are blended in 2x2 blocks
        y0, x0 = rows[0] // 2 * 2, cols[0] // 2 * 2
        box = canvas[y0 : rows[-1] + 2, x0 : cols[-1] + 2]
        stickers.append(Sticker(YuvaLayer.from_rgba(box), int(x0), int(y0)))
    return stickers


#: Drawn caption layers kept at once: a render moves forward through its pages, so a
#: few are plenty (a page of word-timed captions has a layer per word, each made from
#: the page's own, and the page is drawn once).
CAPTION_LAYERS_KEPT = 8


class Captions:
    """Burned-in captions: the page showing at each frame, each page drawn once.

    Cues are laid out by ``render.caption_layout``: every word is shown, a long
    cue as timed pages. ``pages`` is that layout, what the frames show. On a page
    of word-timed captions the word being said is drawn in ``captions_highlight``,
    the rest in ``text_color``: the page is drawn and converted to YUV once, and for
    each word only the rectangle its glyphs own is coloured and converted again.
    """

    def __init__(
        self, path: Path, spec: RenderSpec, layout: Layout, total_frames: int | None = None
    ) -> None:
        assert layout.captions is not None
        cues = parse_captions(path.read_bytes(), name=path.name)
        self.cues: list[Cue] = shift_cues(cues, spec.start, spec.end)
        self.spec, self.box = spec, layout.captions
        self.pages: list[Page] = paginate(
            self.cues,
            font_size=layout.caption_size,
            box_width=self.box.w,
            fps=spec.fps,
            total_frames=total_frames,
        )
        self._pages: dict[int, tuple[TextBlock, YuvaLayer]] = {}
        self._layers: dict[tuple[int, int | None], tuple[YuvaLayer, int, int]] = {}

    def draw(self, planes: Planes, frame: int) -> None:
        page = page_at(self.pages, frame)
        if page is None:
            return
        word = page.word_at(frame)
        key = (page.first, word)
        if key not in self._layers:
            if len(self._layers) >= CAPTION_LAYERS_KEPT:
                self._layers.clear()
            block, plain = self._page(page)
            width, height = block.under.size
            x = self.box.x + (self.box.w - width) // 2
            y = self.box.y + self.box.h - height
            layer = plain if word is None else self._highlighted(page, word, block, plain)
            self._layers[key] = (layer, x, y)
        layer, x, y = self._layers[key]
        layer.blend(planes, x, y)

    def block(self, page: Page, word: int | None = None) -> np.ndarray:
        """``page`` as an RGBA block, its ``word``-th word highlighted (if not None)."""
        block, _ = self._page(page)
        return block.rgba(self.spec.text_rgb, self._highlight(page, word))

    def _page(self, page: Page) -> tuple[TextBlock, YuvaLayer]:
        """The page drawn, and as a YUV layer without a highlight: once per page."""
        if page.first not in self._pages:
            self._pages.clear()  # pages show one after another
            block = draw_text_block(
                page.lines,
                font_size=page.font_size,
                max_width=self.box.w,
                align="center",
                box=CAPTION_BOX,
            )
            plain = YuvaLayer.from_rgba(block.rgba(self.spec.text_rgb))
            self._pages[page.first] = (block, plain)
        return self._pages[page.first]

    def _highlight(self, page: Page, word: int | None) -> Highlight | None:
        if word is None:
            return None
        return Highlight(page.words[word].spans, self.spec.captions_highlight_rgb)

    def _highlighted(
        self, page: Page, word: int, block: TextBlock, plain: YuvaLayer
    ) -> YuvaLayer:
        """The page's layer with ``word`` highlighted: the plain layer, with the rectangle
        the word's glyphs own converted again (on even pixels, as 4:2:0 chroma pairs
        them, so the result is exactly the whole block's conversion)."""
        highlight = self._highlight(page, word)
        assert highlight is not None
        rgba = block.rgba(self.spec.text_rgb, highlight)
        boxes = block.span_boxes(highlight.spans)
        height, width = plain.y.shape
        x0 = min(box[0] for box in boxes) // 2 * 2
        y0 = min(box[1] for box in boxes) // 2 * 2
        x1 = min(-(-max(box[2] for box in boxes) // 2) * 2, width)
        y1 = min(-(-max(box[3] for box in boxes) // 2) * 2, height)
        patch = YuvaLayer.from_rgba(rgba[y0:y1, x0:x1])
        layer = YuvaLayer(*(array.copy() for array in (
            plain.y, plain.u, plain.v, plain.alpha, plain.alpha_half)))  # fmt: skip
        layer.y[y0:y1, x0:x1], layer.alpha[y0:y1, x0:x1] = patch.y, patch.alpha
        half = (slice(y0 // 2, y1 // 2), slice(x0 // 2, x1 // 2))
        layer.u[half], layer.v[half], layer.alpha_half[half] = (
            patch.u, patch.v, patch.alpha_half)
        return layer
