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

Word-timed captions (cues with ``words``) are paged by phrase instead: a page
never runs over a sentence's end, a cue's end or a pause of more than
``PAUSE_SECONDS``, and a sentence too long for one page is cut where a clause
ends when that keeps the pages about as full as the greedy cut would (a small
cost model, ``_cost``). A page shows from its first word to its last, and
lingers up to ``LINGER_SECONDS`` after it (never over the next page); each of
its words knows the frames it is highlighted in (from its start until the next
word starts, or until its own end for a page's last word) and where it is in
the page's lines.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from render.captions import Cue, Word, spread_words
from render.text import BlockGeometry, block_geometry, font, wrap

#: Lines a caption page holds: two is what subtitle guidelines (BBC, Netflix) allow.
MAX_LINES = 2
#: A cue may be set this much smaller to fit on one page instead of two.
MIN_SCALE = 0.85
#: The smallest size a cue is ever set at, used only for cues too short to page.
MIN_FONT_SIZE = 8
#: Frames are compared with times rounded to this, so 1.0 s at 30 fps is frame 30.
_EPSILON = 1e-6
#: Word-timed captions: a silence between two words longer than this (seconds) ends
#: the page, as speakers pause between phrases; a word-timed page also stays up this
#: long after its last word, so the eye can finish it (never over the next page).
PAUSE_SECONDS = 0.6
LINGER_SECONDS = 0.6
#: How a word ends a sentence or a clause: its last mark, before any closing quotes
#: or brackets ("end." "end?)" "end…»"; "then," "so:" "well —").
_CLOSERS = "'\"”’)]»"
_SENTENCE_END = re.compile(rf"[.!?…。！？][{re.escape(_CLOSERS)}]*$")
_CLAUSE_END = re.compile(rf"[,;:—–-][{re.escape(_CLOSERS)}]*$")
#: What a page costs (``_cost``): each page, a cut in the middle of a clause, a cut
#: where a clause ends, and the room a page leaves empty (squared, of two lines' width).
_PAGE_COST, _MID_CLAUSE_COST, _CLAUSE_COST, _EMPTY_COST = 1.0, 2.0, 0.5, 2.0
#: Two lines of a page part where their widths differ least, or where a clause ends if
#: that is at most this much (of a line's width) less even.
_LINE_CLAUSE_BONUS = 0.25


@dataclass(frozen=True)
class PageWord:
    """A word of a word-timed page: highlighted from frame ``first`` up to ``stop`` (none
    when equal), drawn in ``spans``, each (line, first character, end character) of the
    page's lines (a word wider than a line is broken over more than one)."""

    first: int
    stop: int
    spans: tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class Page:
    """Lines shown from frame ``first`` up to (not including) frame ``stop``; with
    ``words`` for word-timed captions (a plain cue's page has none)."""

    first: int
    stop: int
    lines: tuple[str, ...]
    font_size: int
    words: tuple[PageWord, ...] = ()

    def word_at(self, frame: int) -> int | None:
        """The index of the word highlighted at ``frame``, or None."""
        index = bisect_right(self.words, frame, key=lambda word: word.first) - 1
        if index >= 0 and frame < self.words[index].stop:
            return index
        return None


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
    if any(cue.words for cue in cues):
        return paginate_words(
            cues, font_size=font_size, box_width=box_width, fps=fps, total_frames=total_frames
        )
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


# --- word-timed captions ---------------------------------------------------------------------


def paginate_words(
    cues: Sequence[Cue],
    *,
    font_size: int,
    box_width: int,
    fps: int,
    total_frames: int | None = None,
) -> list[Page]:
    """Phrase pages for word-timed ``cues`` (sorted by start), in time order, never
    overlapping, every word of every cue on one of them; a cue without words has its
    words spread over its time."""
    words: list[Word] = []
    chunks: list[tuple[int, int]] = []  # words[a:b] that no page may run across
    for cue in cues:
        said = cue.words or tuple(spread_words(cue.text.split(), cue.start, cue.end))
        begin = len(words)
        for word in said:
            if len(words) > begin and _ends_phrase(words[-1], word):
                chunks.append((begin, len(words)))
                begin = len(words)
            words.append(word)
        if len(words) > begin:
            chunks.append((begin, len(words)))
    frames = _word_frames(words, fps)
    measure = _Widths(font_size, caption_geometry(font_size, box_width).inner)
    ranges = [page for a, b in chunks
              for page in _phrase_pages([w.text for w in words[a:b]], a, measure)]
    pages: list[Page] = []
    for index, (a, b) in enumerate(ranges):
        first = frames[a]
        if total_frames is not None and first >= total_frames:
            break  # said after the video ends
        following = frames[ranges[index + 1][0]] if index + 1 < len(ranges) else None
        last_word = first_frame(words[b - 1].end, fps)
        stop = max(first_frame(words[b - 1].end + LINGER_SECONDS, fps), frames[b - 1] + 1)
        if following is not None:
            stop = min(stop, following)
        if total_frames is not None:
            stop = min(stop, total_frames)
        texts = [word.text for word in words[a:b]]
        size, lines = _page_lines(texts, measure, box_width)
        spans = _spans(texts, lines)
        page_words = []
        for k in range(a, b):
            until = frames[k + 1] if k + 1 < b else max(last_word, frames[k] + 1)
            page_words.append(PageWord(min(frames[k], stop), min(until, stop), spans[k - a]))
        pages.append(Page(first, stop, tuple(lines), size, tuple(page_words)))
    return pages


class _Widths:
    """Widths of words at the caption size, each word measured once: a run of words is
    as wide as its words and the spaces between them (Inter kerns nothing across a
    space), so trying many pages costs additions, not measurements. A page's lines are
    still measured whole before they are used."""

    def __init__(self, font_size: int, inner: int) -> None:
        self.font_size, self.inner = font_size, inner
        self.face = font(font_size)
        self.space = self.face.getlength(" ")
        self._known: dict[str, float] = {}

    def __call__(self, word: str) -> float:
        if word not in self._known:
            self._known[word] = self.face.getlength(word)
        return self._known[word]

    def run(self, words: Sequence[str]) -> float:
        return sum(self(word) for word in words) + self.space * max(len(words) - 1, 0)

    def fits(self, words: Sequence[str]) -> bool:
        """Whether ``words`` fit one line, measured whole (as drawing will)."""
        return self.run(words) <= self.inner and \
            self.face.getlength(" ".join(words)) <= self.inner


def _ends_phrase(before: Word, after: Word) -> bool:
    """Whether a page must end between two words of a cue: a sentence ends, or a pause."""
    return bool(_SENTENCE_END.search(before.text)) or after.start - before.end > PAUSE_SECONDS


def _word_frames(words: Sequence[Word], fps: int) -> list[int]:
    """The frame each word is first highlighted in: its start's, or one after the word
    before's when words come faster than frames (so every word has a frame of its own)."""
    frames: list[int] = []
    for word in words:
        frame = first_frame(word.start, fps)
        frames.append(max(frame, frames[-1] + 1) if frames else frame)
    return frames


def _phrase_pages(
    texts: Sequence[str], offset: int, measure: _Widths
) -> list[tuple[int, int]]:
    """Where one phrase's words are cut into pages of at most ``MAX_LINES`` lines, as
    ``(first, end)`` word indices (plus ``offset``): the cuts of least ``_cost``, lines
    filled as ``wrap`` fills them."""
    count, inner = len(texts), measure.inner
    best = [math.inf] * count + [0.0]
    cut = [count] * (count + 1)
    for start in range(count - 1, -1, -1):
        lines, line, filled = 1, 0.0, 0.0
        for end in range(start + 1, count + 1):
            width = measure(texts[end - 1])
            if line and line + measure.space + width <= inner:
                line += measure.space + width
            elif not line and width <= inner:
                line = width
            else:  # a new line; a word wider than a line takes more than one
                pieces = max(math.ceil(width / inner), 1)
                lines += pieces - (0 if line else 1)
                line = width - (pieces - 1) * inner
            filled += width
            if lines > MAX_LINES and end > start + 1:
                break  # a word wider than two lines still gets a page of its own
            cost = _cost(texts[end - 1], end == count, filled / (MAX_LINES * inner))
            if cost + best[end] < best[start]:
                best[start], cut[start] = cost + best[end], end
    pages, start = [], 0
    while start < count:
        pages.append((offset + start, offset + cut[start]))
        start = cut[start]
    return pages


def _cost(last: str, phrase_end: bool, fill: float) -> float:
    """What a page ending with the word ``last`` costs: fewer, fuller pages, cut where
    clauses end, are cheaper."""
    if phrase_end:
        cut = 0.0
    elif _CLAUSE_END.search(last) or _SENTENCE_END.search(last):
        cut = _CLAUSE_COST
    else:
        cut = _MID_CLAUSE_COST
    return _PAGE_COST + cut + _EMPTY_COST * (1.0 - min(fill, 1.0)) ** 2


def _page_lines(
    texts: Sequence[str], measure: _Widths, box_width: int
) -> tuple[int, list[str]]:
    """A page's size and lines: one line when it fits, else two cut where they balance
    best, rather where a clause ends (``_line_cut``); a lone word too wide for two lines
    is broken across lines as ``wrap`` breaks it, set smaller (down to ``MIN_FONT_SIZE``)
    until it takes at most ``MAX_LINES``."""
    if measure.fits(texts):
        return measure.font_size, [" ".join(texts)]
    cut = _line_cut(texts, measure)
    if cut is not None:
        return measure.font_size, [" ".join(texts[:cut]), " ".join(texts[cut:])]
    size = measure.font_size
    while True:
        lines = wrap_caption(" ".join(texts), size, box_width)
        if len(lines) <= MAX_LINES or size <= MIN_FONT_SIZE:
            return size, lines
        # text is about as wide as it is large: go straight to about the size that fits
        fitting = measure.font_size * MAX_LINES * measure.inner / max(measure.run(texts), 1.0)
        size = max(MIN_FONT_SIZE, min(math.floor(size * 0.9), math.floor(fitting)))


def _line_cut(texts: Sequence[str], measure: _Widths) -> int | None:
    """Where two lines part: of the cuts that fit both lines, the one whose lines are
    closest in width, a quarter line's difference forgiven at a clause's end; None
    when no cut fits (a word wider than a line)."""
    ranked = []
    for cut in range(1, len(texts)):
        top, bottom = measure.run(texts[:cut]), measure.run(texts[cut:])
        if top > measure.inner or bottom > measure.inner:
            continue
        ends = _CLAUSE_END.search(texts[cut - 1]) or _SENTENCE_END.search(texts[cut - 1])
        ranked.append((abs(top - bottom) / measure.inner + (0.0 if ends else _LINE_CLAUSE_BONUS),
                       cut))
    for _, cut in sorted(ranked):
        if measure.fits(texts[:cut]) and measure.fits(texts[cut:]):
            return cut
    return None


def _spans(texts: Sequence[str], lines: Sequence[str]) -> list[tuple[tuple[int, int, int], ...]]:
    """Where each word is in ``lines`` (as wrapped from the words joined by spaces): its
    (line, first character, end character) pieces, one per line it reaches."""
    spans: list[tuple[tuple[int, int, int], ...]] = []
    line, at = 0, 0
    for text in texts:
        pieces, rest = [], text
        while rest:
            if at >= len(lines[line]):
                line, at = line + 1, 0
            if lines[line][at] == " ":
                at += 1
                continue
            taken = min(len(rest), len(lines[line]) - at)
            assert lines[line][at : at + taken] == rest[:taken], (lines, text)
            pieces.append((line, at, at + taken))
            rest, at = rest[taken:], at + taken
        spans.append(tuple(pieces))
    return spans
