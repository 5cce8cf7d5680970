"""Cues laid out for the caption box: every word kept, long cues split into timed pages.

A caption box holds ``MAX_LINES`` lines. A cue that wraps to more is first set a
little smaller (down to ``MIN_SCALE`` of the size) if that makes it fit; otherwise
it becomes pages of ``MAX_LINES`` lines shown one after another, each for a share
of the cue's time in proportion to the length of its words. No word is ever cut
off or dropped: the pages of a cue hold exactly its words, in order.

Time is counted in frames, as the video is: frame ``i`` shows what is on screen
at ``i / fps``. A cue owns the frames from its start until it ends or the next
cue starts (rolling captions overlap; the newer one replaces the older). A cue
too short to give each of its pages a frame borrows frames from the silence
after it, and failing that is set smaller still (down to ``MIN_FONT_SIZE``), so
even a cue shorter than one frame shows once.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from render.captions import Cue
from render.text import BlockGeometry, block_geometry, font, wrap

#: Lines a caption page holds: two is what subtitle guidelines (BBC, Netflix) allow.
MAX_LINES = 2
#: A cue may be set this much smaller to fit on one page instead of two.
MIN_SCALE = 0.85
#: The smallest size a cue is ever set at, used only for cues too short to page.
MIN_FONT_SIZE = 8
#: Frames are compared with times rounded to this, so 1.0 s at 30 fps is frame 30.
_EPSILON = 1e-6


@dataclass(frozen=True)
class Page:
    """Lines shown from frame ``first`` up to (not including) frame ``stop``."""

    first: int
    stop: int
    lines: tuple[str, ...]
    font_size: int


def caption_geometry(font_size: int, box_width: int) -> BlockGeometry:
    """The geometry of a caption block: boxed, shadowed, regular weight."""
    return block_geometry(font_size, box_width, boxed=True)


def caption_box_height(font_size: int, box_width: int) -> int:
    """Height of a full caption page at ``font_size``: what the layout reserves."""
    return caption_geometry(font_size, box_width).height(MAX_LINES)


def wrap_caption(text: str, font_size: int, box_width: int) -> list[str]:
    """The lines ``text`` takes in the caption box at ``font_size``, none dropped."""
    geometry = caption_geometry(font_size, box_width)
    return [line for line in wrap(text, font(font_size), geometry.inner) if line.strip()]


def first_frame(seconds: float, fps: int) -> int:
    """The first frame shown at or after ``seconds``."""
    return max(math.ceil(seconds * fps - _EPSILON), 0)


def paginate(
    cues: Sequence[Cue],
    *,
    font_size: int,
    box_width: int,
    fps: int,
    total_frames: int | None = None,
) -> list[Page]:
    """Pages for ``cues`` (sorted by start), in time order, never overlapping."""
    groups = _merge_same_frame(cues, fps)
    pages: list[Page] = []
    for index, (first, stop, text) in enumerate(groups):
        limit = groups[index + 1][0] if index + 1 < len(groups) else total_frames
        stop = min(stop, limit) if limit is not None else stop
        if limit is not None and first >= limit:
            continue  # starts after the video ends
        lines, size, per_page = _fit(
            text, font_size, box_width, frames=stop - first, spare=_spare(first, stop, limit)
        )
        chunks = [tuple(lines[i : i + per_page]) for i in range(0, len(lines), per_page)]
        frames = max(stop - first, len(chunks))
        for (start, end), chunk in zip(_share(first, frames, chunks), chunks, strict=True):
            pages.append(Page(start, end, chunk, size))
    return pages


def page_at(pages: Sequence[Page], frame: int) -> Page | None:
    """The page on screen at ``frame``, or None."""
    index = bisect_right(pages, frame, key=lambda page: page.first) - 1
    if index >= 0 and frame < pages[index].stop:
        return pages[index]
    return None


def _merge_same_frame(cues: Sequence[Cue], fps: int) -> list[tuple[int, int, str]]:
    """``(first, stop, text)`` per cue, cues whose first frame is the same joined into one."""
    groups: list[tuple[int, int, str]] = []
    for cue in cues:
        first, stop = first_frame(cue.start, fps), first_frame(cue.end, fps)
        if groups and groups[-1][0] == first:
            _, last_stop, text = groups[-1]
            groups[-1] = (first, max(stop, last_stop), f"{text}\n{cue.text}")
        else:
            groups.append((first, stop, cue.text))
    return groups


def _spare(first: int, stop: int, limit: int | None) -> int | None:
    """Frames a cue may borrow after its end: up to the next cue, or any after the last."""
    return None if limit is None else max(limit - max(stop, first), 0)


def _fit(
    text: str, font_size: int, box_width: int, *, frames: int, spare: int | None
) -> tuple[list[str], int, int]:
    """``(lines, size, lines per page)`` for one cue that has ``frames`` frames of its own."""
    lines = wrap_caption(text, font_size, box_width)
    if len(lines) > MAX_LINES:
        smaller = max(MIN_FONT_SIZE, math.floor(font_size * MIN_SCALE))
        for size in range(font_size - 1, smaller - 1, -1):
            fitted = wrap_caption(text, size, box_width)
            if len(fitted) <= MAX_LINES:
                return fitted, size, MAX_LINES
    available = frames + (spare if spare is not None else len(lines))
    size = font_size
    while _pages(len(lines)) > available and size > MIN_FONT_SIZE:
        size = max(MIN_FONT_SIZE, math.floor(size * 0.9))
        lines = wrap_caption(text, size, box_width)
    if _pages(len(lines)) > max(available, 1):  # the one case left: all on one page
        return lines, size, len(lines)
    return lines, size, MAX_LINES


def _pages(lines: int) -> int:
    return max(1, math.ceil(lines / MAX_LINES))


def _share(first: int, frames: int, chunks: Sequence[Sequence[str]]) -> list[tuple[int, int]]:
    """Frame ranges for ``chunks`` over ``frames`` frames from ``first``: at least one
    each, the rest in proportion to the length of each chunk's words."""
    weights = [sum(len(word) + 1 for line in chunk for word in line.split()) for chunk in chunks]
    extra = frames - len(chunks)
    total = sum(weights) or 1
    ranges, start, acc = [], first, 0
    for weight in weights:
        before = round(extra * acc / total)
        acc += weight
        length = 1 + round(extra * acc / total) - before
        ranges.append((start, start + length))
        start += length
    return ranges
