"""The five styles: how each frame's moving part is painted.

Every style gets its rectangle of the canvas, draws its static parts once into
the background (``static``), and per frame paints only what moves (``draw``) into
a frame that already holds the background. All painting is whole-array numpy on
the YUV planes; no Python loop runs per pixel or per bar.

- ``bars``: spectrum bars on a baseline, log-frequency, rounded or square.
- ``mirror``: the same bars, mirrored about the centre line.
- ``wave``: a filled scrolling waveform (about a second across), or with
  ``filled=false`` an oscilloscope line of the last 40 ms.
- ``circle``: bars radiating from a ring around the artwork.
- ``progress``: the whole clip's waveform, played part in colour, with a playhead.

Motion is smoothed between frames (fast attack, slow decay) on dB levels scaled
to the clip's own loudness, so bars rise with a beat and fall back without flicker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from render.analysis import BANDS, DB_FLOOR, DB_STEP, ENVELOPE_HOP_SECONDS, Analysis
from render.canvas import Paint, Planes, YuvaLayer, color_yuv, rgb_to_yuv
from render.spec import RGB, RenderSpec

#: Seconds for a bar to rise most of the way, and to fall back.
ATTACK_SECONDS = 0.03
DECAY_SECONDS = 0.25
#: Seconds of audio across the "wave" style's width.
WAVE_WINDOW_SECONDS = 1.0
#: Envelope hops (5 ms each) averaged for the filled waveform's outline.
ENVELOPE_SMOOTHING = 5


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    w: int
    h: int


class StyleDrawer(Protocol):
    def static(self, rgb: np.ndarray) -> None:
        """Draw what never moves into the background image (RGB, full canvas), or,
        over a video background, into a transparent overlay (RGBA)."""

    def draw(self, planes: Planes, frame: int) -> None:
        """Paint frame ``frame``'s moving parts over the background in ``planes``."""


def make_style(spec: RenderSpec, analysis: Analysis, rect: Rect) -> StyleDrawer:
    if spec.style == "bars":
        return Bars(spec, analysis, rect, mirror=False)
    if spec.style == "mirror":
        return Bars(spec, analysis, rect, mirror=True)
    if spec.style == "wave":
        return Wave(spec, analysis, rect)
    if spec.style == "circle":
        return Circle(spec, analysis, rect)
    if spec.style == "progress":
        return Progress(spec, analysis, rect)
    raise ValueError(f"unknown style {spec.style!r}")


# --- shared machinery -------------------------------------------------------------


class Levels:
    """Per-frame band levels in 0..1, resampled to ``count`` bars and smoothed.

    Frames are normally asked for in order; a frame further on steps the smoothing
    through the frames skipped, and an earlier one replays it from the clip's first
    frame, so any frame (a test, a thumbnail, the first frame of one window of a split
    render, a moviepy timeline at another frame rate) is exactly the one the video
    shows. A step is a few vector operations: a replay of an hour takes about half a
    second.
    """

    def __init__(self, analysis: Analysis, count: int) -> None:
        self._analysis = analysis
        quiet, loud = analysis.band_range()
        self._quiet, self._span = quiet, max(loud - quiet, 1e-3)
        positions = np.linspace(0, BANDS - 1, count)
        self._lo = np.floor(positions).astype(np.intp)
        self._hi = np.minimum(self._lo + 1, BANDS - 1)
        self._t = (positions - self._lo).astype(np.float32)
        fps = analysis.fps
        self._attack = 1.0 - math.exp(-1.0 / (ATTACK_SECONDS * fps))
        self._decay = 1.0 - math.exp(-1.0 / (DECAY_SECONDS * fps))
        self._state = np.zeros(count, np.float32)
        self._last = -1

    def raw(self, frame: int) -> np.ndarray:
        if frame >= self._analysis.frames or frame < 0:
            return np.zeros_like(self._state)
        db = DB_FLOOR + self._analysis.bands[frame].astype(np.float32) * DB_STEP
        db = db[self._lo] * (1 - self._t) + db[self._hi] * self._t
        return np.clip((db - self._quiet) / self._span, 0.0, 1.0)

    def at(self, frame: int) -> np.ndarray:
        if frame <= self._last:
            self._state[:] = 0.0
            self._last = -1
        while self._last < frame - 1:
            self._step(self._last + 1)
        self._step(frame)
        return self._state

    def _step(self, frame: int) -> None:
        target = self.raw(frame)
        rate = np.where(target > self._state, self._attack, self._decay).astype(np.float32)
        self._state += (target - self._state) * rate
        self._last = frame


class ColumnPainter:
    """Fills, in each column of a rectangle, the rows from ``top`` to ``bottom``.

    ``top`` and ``bottom`` are float rows (relative to the rectangle), one per
    column; the partly covered pixel at each end is blended in proportion, so
    edges are smooth without supersampling. Chroma (half resolution) takes the
    hard-edged mask of every second column.
    """

    def __init__(self, rect: Rect, paint: Paint) -> None:
        self.rect = rect
        self.paint = paint
        self._y8 = np.rint(paint.y).astype(np.uint8)
        self._u8 = np.rint(paint.u).astype(np.uint8)
        self._v8 = np.rint(paint.v).astype(np.uint8)
        self._rows = np.arange(rect.h, dtype=np.float32)[:, None]
        self._rows_half = np.arange(rect.h // 2, dtype=np.float32)[:, None]
        self._cols = np.arange(rect.w)
        self._mask = np.empty((rect.h, rect.w), np.bool_)
        self._below = np.empty((rect.h, rect.w), np.bool_)
        self._mask_half = np.empty((rect.h // 2, rect.w // 2), np.bool_)
        self._below_half = np.empty((rect.h // 2, rect.w // 2), np.bool_)

    def fill(self, planes: Planes, top: np.ndarray, bottom: np.ndarray) -> None:
        r = self.rect
        top = np.clip(top, 0, r.h).astype(np.float32)
        bottom = np.clip(bottom, 0, r.h).astype(np.float32)
        first = np.ceil(top)
        last = np.floor(bottom)
        drawn = last > first
        if not drawn.any():
            return
        # only the band of rows some column reaches this frame: quiet frames cost less
        r0 = int(first[drawn].min()) // 2 * 2
        r1 = min(r.h, -(-int(last[drawn].max()) // 2) * 2)
        y = planes.y[r.y : r.y + r.h, r.x : r.x + r.w]
        mask, below = self._mask[r0:r1], self._below[r0:r1]
        np.greater_equal(self._rows[r0:r1], first, out=mask)
        np.less(self._rows[r0:r1], last, out=below)
        mask &= below
        np.copyto(y[r0:r1], self._y8[r0:r1], where=mask)
        self._edge(y, first - 1, first - top, last >= first)
        self._edge(y, last, bottom - last, last >= first)
        # chroma: every second column, rows halved
        half = slice(0, r.w - 1, 2)
        h0, h1 = r0 // 2, r1 // 2
        mask_half, below_half = self._mask_half[h0:h1], self._below_half[h0:h1]
        np.greater_equal(self._rows_half[h0:h1], np.rint(top[half] / 2), out=mask_half)
        np.less(self._rows_half[h0:h1], np.rint(bottom[half] / 2), out=below_half)
        mask_half &= below_half
        for plane, src in ((planes.u, self._u8), (planes.v, self._v8)):
            region = plane[r.y // 2 + h0 : r.y // 2 + h1, r.x // 2 : (r.x + r.w) // 2]
            np.copyto(region, src[h0:h1], where=mask_half)

    def _edge(self, y: np.ndarray, rows: np.ndarray, coverage: np.ndarray, ok: np.ndarray):
        rows = rows.astype(np.intp)
        keep = ok & (rows >= 0) & (rows < self.rect.h) & (coverage > 0.02)
        cols = self._cols[keep]
        rows = rows[keep]
        cover = coverage[keep]
        current = y[rows, cols].astype(np.float32)
        y[rows, cols] = np.rint(current + (self.paint.y[rows, cols] - current) * cover)


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


# --- bars and mirror --------------------------------------------------------------


class Bars:
    def __init__(self, spec: RenderSpec, analysis: Analysis, rect: Rect, mirror: bool) -> None:
        self.rect, self.mirror = rect, mirror
        # one bar per ~36 px, 16 to 48: wide enough to read on a phone, and fewer
        # moving edges for x264 to encode (bars are its dearest content)
        count = int(np.clip(rect.w // 36, 16, 48))
        pitch = rect.w / count
        bar_w = max(2.0, pitch * 0.62)
        self.radius = bar_w / 2 if spec.rounded else 0.0
        self.levels = Levels(analysis, count)
        cols = np.arange(rect.w) + 0.5
        bar = np.floor(cols / pitch).astype(np.intp)
        dx = cols - (bar + 0.5) * pitch  # from the bar's centre
        self.inside = np.abs(dx) <= bar_w / 2
        self.bar = np.minimum(bar, count - 1)
        if self.radius:
            ratio = np.clip(np.abs(dx) / self.radius, 0.0, 1.0)
            self.cap = (self.radius * (1.0 - np.sqrt(1.0 - ratio**2))).astype(np.float32)
        else:
            self.cap = np.zeros(rect.w, np.float32)
        self.min_h = max(2.0, 2 * self.radius)
        if mirror:  # color at the tips, color2 on the centre line
            paint = _mirror_gradient(spec.rgb, spec.rgb2, rect.w, rect.h)
        else:  # color at the baseline, color2 at the top
            paint = Paint.vertical_gradient(spec.rgb2, spec.rgb, rect.w, rect.h)
        self.painter = ColumnPainter(rect, paint)

    def static(self, rgb: np.ndarray) -> None:
        return None

    def draw(self, planes: Planes, frame: int) -> None:
        h = self.rect.h
        heights = self.min_h + self.levels.at(frame) * (h - self.min_h)
        col_h = heights[self.bar]
        if self.mirror:
            centre = h / 2
            top = centre - col_h / 2 + self.cap
            bottom = centre + col_h / 2 - self.cap
        else:
            top = h - col_h + self.cap
            bottom = np.full(self.rect.w, float(h), np.float32)
        top = np.where(self.inside, top, 0.0)
        bottom = np.where(self.inside, bottom, 0.0)
        self.painter.fill(planes, top, bottom)


def _mirror_gradient(edge: RGB, centre: RGB, width: int, height: int) -> Paint:
    """``centre`` colour on the centre line, ``edge`` at the top and bottom."""
    half = Paint.vertical_gradient(edge, centre, width, height // 2)
    y = np.vstack([half.y, half.y[::-1]])
    if y.shape[0] < height:
        y = np.vstack([y, y[-1:]])
    u = np.vstack([half.u, half.u[::-1]])
    v = np.vstack([half.v, half.v[::-1]])
    pad = height // 2 - u.shape[0]
    if pad > 0:
        u, v = np.vstack([u, u[-pad:]]), np.vstack([v, v[-pad:]])
    return Paint(y, u[: height // 2], v[: height // 2])


# --- wave -------------------------------------------------------------------------


class Wave:
    def __init__(self, spec: RenderSpec, analysis: Analysis, rect: Rect) -> None:
        self.rect, self.analysis, self.filled = rect, analysis, spec.filled
        self.fps = analysis.fps
        env = analysis.envelope
        if len(env) > ENVELOPE_SMOOTHING:
            # peak-hold steps every 5 ms read as a comb; a short Hann average rounds
            # them into a curve and still reaches most of each peak (kept as float16:
            # an hour is 3 MB)
            kernel = np.hanning(ENVELOPE_SMOOTHING + 2)[1:-1].astype(np.float32)
            kernel /= kernel.sum()
            smooth = np.empty(env.shape, np.float16)
            for i in (0, 1):
                smooth[:, i] = np.convolve(env[:, i].astype(np.float32), kernel, mode="same")
            env = smooth
        peak = float(np.abs(env).max(initial=0.0)) if env.size else 0.0
        self.scale = 0.92 * (rect.h / 2) / peak if peak > 1e-4 else 0.0
        self.env = env if len(env) else np.zeros((1, 2), np.float16)
        self.hop = ENVELOPE_HOP_SECONDS
        self.span = WAVE_WINDOW_SECONDS / self.hop  # hops across the width
        self.thickness = max(2.0, rect.h / 90)
        self.painter = ColumnPainter(
            rect, Paint.vertical_gradient(spec.rgb, spec.rgb2, rect.w, rect.h)
        )
        self.column_hops = (np.arange(rect.w) + 0.5) / rect.w * self.span
        if not self.filled and analysis.trace is not None:
            tpeak = float(np.abs(analysis.trace.astype(np.int16)).max(initial=0)) / 127.0
            self.trace_scale = 0.9 * (rect.h / 2) / tpeak if tpeak > 1e-3 else 0.0
            self.trace_x = np.linspace(0, analysis.trace.shape[1] - 1, rect.w)

    def static(self, rgb: np.ndarray) -> None:
        return None

    def _envelope_at(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) per column for the window centred on ``frame``'s time."""
        start = ((frame + 0.5) / self.fps - WAVE_WINDOW_SECONDS / 2) / self.hop
        first = max(int(start) - 1, 0)
        last = min(int(start + self.span) + 2, len(self.env))
        if last <= first:
            zeros = np.zeros(self.rect.w, np.float32)
            return zeros, zeros
        window = self.env[first:last].astype(np.float32)
        xp = np.arange(first, last, dtype=np.float32)
        pos = self.column_hops + start
        low = np.interp(pos, xp, window[:, 0], left=0.0, right=0.0)
        high = np.interp(pos, xp, window[:, 1], left=0.0, right=0.0)
        return low, high

    def draw(self, planes: Planes, frame: int) -> None:
        centre = self.rect.h / 2
        half_line = self.thickness / 2
        if self.filled or self.analysis.trace is None:
            low, high = self._envelope_at(frame)
            top = np.minimum(centre - high * self.scale, centre - half_line)
            bottom = np.maximum(centre - low * self.scale, centre + half_line)
        else:
            row = self.analysis.trace[min(frame, self.analysis.frames - 1)].astype(np.float32)
            ys = centre - np.interp(self.trace_x, np.arange(row.size), row / 127.0) * (
                self.trace_scale
            )
            nxt = np.append(ys[1:], ys[-1])
            top = np.minimum(ys, nxt) - half_line
            bottom = np.maximum(ys, nxt) + half_line
        self.painter.fill(planes, top, bottom)


# --- circle -----------------------------------------------------------------------


class Circle:
    """Bars around a ring. The geometry (which pixel belongs to which bar, at what
    radius, how much of it the bar covers sideways) is computed once, with each
    bar's pixels sorted by radius: a frame then only finds, per bar, how far out
    its pixels are lit (a binary search) and blends just those."""

    def __init__(self, spec: RenderSpec, analysis: Analysis, rect: Rect) -> None:
        self.rect = rect
        side = min(rect.w, rect.h)
        self.cx, self.cy = rect.x + rect.w / 2, rect.y + rect.h / 2
        self.inner = side * 0.27
        self.max_len = side * 0.5 - self.inner - 2
        count = 48
        self.bars = count // 2  # mirrored left and right
        self.levels = Levels(analysis, self.bars)
        self.min_len = max(2.0, side / 200)
        bar_half = max(1.0, math.pi * 2 * self.inner / count * 0.32)
        self.full = self._geometry(1, count, bar_half, spec.rgb, spec.rgb2)
        self.half = self._geometry(2, count, bar_half, spec.rgb, spec.rgb2)

    def _geometry(self, scale: int, count: int, bar_half: float, c1: RGB, c2: RGB) -> dict:
        r = self.rect
        x0, y0 = r.x // scale, r.y // scale
        xs = (np.arange(x0, (r.x + r.w) // scale) + 0.5) * scale - self.cx
        ys = (np.arange(y0, (r.y + r.h) // scale) + 0.5) * scale - self.cy
        gx, gy = np.meshgrid(xs, ys)
        radius = np.hypot(gx, gy)
        angle = np.mod(np.arctan2(gx, -gy), 2 * np.pi)  # 0 at the top, clockwise
        step = 2 * np.pi / count
        bar = np.floor(angle / step + 0.5).astype(np.intp) % count
        off = (angle - bar * step + np.pi) % (2 * np.pi) - np.pi
        across = np.abs(off) * radius
        side = np.clip(bar_half - across + 0.5 * scale, 0.0, scale) / scale
        inner = np.clip((radius - self.inner) / scale + 0.5, 0.0, 1.0)
        ring = (radius >= self.inner - scale) & (radius <= self.inner + self.max_len + scale)
        keep = ring & (side > 0)
        rows, cols = np.nonzero(keep)
        # bars on the right mirror those on the left: bar k and count - k share a level
        level = np.minimum(bar[keep], (count - bar[keep]) % count)
        level = np.minimum(level, self.bars - 1)
        rad = radius[keep].astype(np.float32)
        order = np.lexsort((rad, level))
        t = np.clip((rad - self.inner) / max(self.max_len, 1), 0, 1)[:, None]
        colors = np.array(c1, np.float32) * (1 - t) + np.array(c2, np.float32) * t
        paint_y, paint_u, paint_v = rgb_to_yuv(colors)
        level = level[order]
        return {
            "rows": (rows + y0)[order],
            "cols": (cols + x0)[order],
            "radius": rad[order],
            "static": (side[keep] * inner[keep]).astype(np.float32)[order],
            "starts": np.searchsorted(level, np.arange(self.bars + 1)),
            "paint": (paint_y[order], paint_u[order], paint_v[order]),
            "scale": scale,
        }

    def static(self, rgb: np.ndarray) -> None:
        return None

    def draw(self, planes: Planes, frame: int) -> None:
        lengths = self.min_len + self.levels.at(frame) * (self.max_len - self.min_len)
        outer = self.inner + lengths
        for geo, targets, paints in (
            (self.full, (planes.y,), (0,)),
            (self.half, (planes.u, planes.v), (1, 2)),
        ):
            scale, starts, radius = geo["scale"], geo["starts"], geo["radius"]
            lit = []
            for bar in range(self.bars):
                lo, hi = starts[bar], starts[bar + 1]
                n = np.searchsorted(radius[lo:hi], outer[bar] + 0.5 * scale)
                lit.append(np.arange(lo, lo + n))
            index = np.concatenate(lit)
            bar_of = np.repeat(np.arange(self.bars), [len(x) for x in lit])
            cover = np.clip((outer[bar_of] - radius[index]) / scale + 0.5, 0.0, 1.0)
            cover *= geo["static"][index]
            rows, cols = geo["rows"][index], geo["cols"][index]
            for plane, which in zip(targets, paints, strict=True):
                paint = geo["paint"][which][index]
                current = plane[rows, cols].astype(np.float32)
                plane[rows, cols] = np.rint(current + (paint - current) * cover)


# --- progress ---------------------------------------------------------------------


class Progress:
    """The whole clip's waveform as thin bars; the played part in colour."""

    def __init__(self, spec: RenderSpec, analysis: Analysis, rect: Rect) -> None:
        self.spec, self.rect, self.analysis = spec, rect, analysis
        self.played: Planes | None = None
        self.played_layer: YuvaLayer | None = None  # over a video background
        self.head_w = max(2, round(rect.w / 300) // 2 * 2)
        self.head_yuv = color_yuv(spec.text_rgb)

    def _shape(self) -> np.ndarray:
        """(h, w) bool: where the overview bars are."""
        r = self.rect
        # even pitch and even bar width: bars line up with 4:2:0 chroma pairs, so
        # every bar keeps its colour
        pitch = max(4, r.w // 180 // 2 * 2)
        columns = r.w // pitch
        overview = self.analysis.overview(columns)
        peak = float(np.abs(overview).max(initial=0.0)) or 1.0
        amp = np.maximum(np.abs(overview).max(axis=1) / peak, 0.02)
        heights = np.repeat(amp * r.h * 0.95, pitch)[: r.w]
        heights = np.pad(heights, (0, r.w - heights.size))
        gap = (np.arange(r.w) % pitch) >= pitch - max(2, pitch // 3 // 2 * 2)
        rows = np.abs(np.arange(r.h)[:, None] + 0.5 - r.h / 2)
        return (rows <= heights[None, :] / 2) & ~gap[None, :]

    def static(self, rgb: np.ndarray) -> None:
        r = self.rect
        shape = self._shape()
        region = rgb[r.y : r.y + r.h, r.x : r.x + r.w]
        overlay = rgb.shape[2] == 4  # over a video: the colour at 35 % over what moves
        dim = (*self.spec.rgb, round(255 * 0.35)) if overlay else mix(
            self.spec.background_rgb, self.spec.rgb, 0.35)
        region[shape] = dim
        played = rgb.copy()
        t = np.linspace(0, 1, r.h, dtype=np.float32)[:, None, None]
        colors = np.array(self.spec.rgb, np.float32) * (1 - t) + np.array(
            self.spec.rgb2, np.float32
        ) * t
        colors = np.broadcast_to(colors, (r.h, r.w, 3))
        played_region = played[r.y : r.y + r.h, r.x : r.x + r.w]
        played_region[shape, :3] = np.rint(colors[shape]).astype(np.uint8)
        if overlay:
            played_region[shape, 3] = 255
            self.played_layer = YuvaLayer.from_rgba(played_region)
        else:
            self.played = Planes.from_rgb(played)

    def _played_width(self, frame: int) -> int:
        """Columns of the rectangle played at ``frame`` (even, for chroma)."""
        duration = max(self.analysis.duration, 1e-6)
        x = int(round(min(frame / self.analysis.fps / duration, 1.0) * self.rect.w))
        return x - x % 2

    def draw(self, planes: Planes, frame: int) -> None:
        r, played = self.rect, self.played
        x = self._played_width(frame)
        if self.played_layer is not None:
            self._blend_played(planes, x)
        elif x > 0:
            assert played is not None, "static() draws the played layer first"
            planes.y[r.y : r.y + r.h, r.x : r.x + x] = played.y[r.y : r.y + r.h, r.x : r.x + x]
            ys, xs = slice(r.y // 2, (r.y + r.h) // 2), slice(r.x // 2, (r.x + x) // 2)
            planes.u[ys, xs] = played.u[ys, xs]
            planes.v[ys, xs] = played.v[ys, xs]
        left = self.playhead_x(frame)
        head = slice(left, left + self.head_w)
        y, u, v = self.head_yuv
        planes.y[r.y : r.y + r.h, head] = round(y)
        hh = slice(head.start // 2, head.stop // 2)
        planes.u[r.y // 2 : (r.y + r.h) // 2, hh] = round(u)
        planes.v[r.y // 2 : (r.y + r.h) // 2, hh] = round(v)

    def _blend_played(self, planes: Planes, x: int) -> None:
        """The played part over a moving background: the coloured bars' first ``x``
        columns blended, the background between them left as it is."""
        layer = self.played_layer
        if layer is None or x <= 0:
            return
        part = YuvaLayer(layer.y[:, :x], layer.u[:, : x // 2], layer.v[:, : x // 2],
                         layer.alpha[:, :x], layer.alpha_half[:, : x // 2])
        part.blend(planes, self.rect.x, self.rect.y)

    def playhead_x(self, frame: int) -> int:
        """Canvas x of the playhead's left edge at ``frame`` (for tests)."""
        return self.rect.x + min(self._played_width(frame), self.rect.w - self.head_w)


