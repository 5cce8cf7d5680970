"""Captions keep every word: long cues become timed pages, none is cut or dropped.

The checks read the renderer's own layout (the pages ``Captions`` draws, frame by
frame, and the blocks ``render_text_block`` makes of them), not a copy of it.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest

from render import Assets, RenderSpec
from render.caption_layout import (
    MAX_LINES,
    MIN_FONT_SIZE,
    Page,
    caption_box_height,
    caption_geometry,
    page_at,
    paginate,
    wrap_caption,
)
from render.captions import Cue, parse_captions
from render.engine import Scene
from render.layout import compute_layout
from render.scene import CAPTION_BOX
from render.spec import FRAME_RATES, PRESETS
from render.text import render_text_block
from tests.helpers.golden import write_wav

#: The shape of the SRT a first-time creator rendered: long cues, a cue with two
#: source lines whose first wraps, a long URL and a word longer than a line.
EPISODE_SRT = """\
1
00:00:00,500 --> 00:00:04,000
Welcome back to the show. Today we talk about how sound travels through water, air and \
steel, and why whales can hear each other across a whole ocean.

2
00:00:04,200 --> 00:00:08,500
Every frame is drawn straight into the encoder's own pixel format,
so nothing is lost between the drawing and the video you download.

3
00:00:08,700 --> 00:00:09,000
Short.

4
00:00:09,200 --> 00:00:11,900
Links: https://soundreel.example.com/episodes/forty-two/how-sound-travels-under-water and \
Pneumonoultramicroscopicsilicovolcanoconiosis.
"""

SIZES = [*PRESETS.values(), (1280, 720), (480, 270), (480, 854), (480, 480)]


def words(text: str) -> list[str]:
    return text.split()


def shown_pages(pages: list[Page], frames: int) -> list[Page]:
    """The distinct pages on screen, in the order the frames show them."""
    seen: list[Page] = []
    for frame in range(frames):
        page = page_at(pages, frame)
        if page is not None and (not seen or seen[-1] is not page):
            seen.append(page)
    return seen


def letters(text: str) -> str:
    return re.sub(r"\s+", "", text)


def check_every_word_is_shown(cues: list[Cue], pages: list[Page], frames: int) -> None:
    shown = shown_pages(pages, frames)
    assert len(shown) == len(pages), "a page no frame shows"
    expected = " ".join(cue.text for cue in cues)
    drawn = " ".join(" ".join(page.lines) for page in shown)
    # the same characters in the same order (a word wider than a line is split, not cut)
    assert letters(drawn) == letters(expected)


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_every_word_of_every_cue_appears_in_some_frame(width: int, height: int) -> None:
    spec = RenderSpec(width=width, height=height, fps=30)
    layout = compute_layout(spec, has_artwork=True, has_captions=True)
    assert layout.captions is not None
    cues = parse_captions(EPISODE_SRT)
    frames = 12 * 30
    pages = paginate(
        cues, font_size=layout.caption_size, box_width=layout.captions.w, fps=30,
        total_frames=frames,
    )  # fmt: skip
    check_every_word_is_shown(cues, pages, frames)
    # every normal word is whole on one line of some page
    drawn_words = {word for page in pages for line in page.lines for word in line.split()}
    for cue in cues:
        for word in words(cue.text):
            if wrap_caption(word, layout.caption_size, layout.captions.w) == [word]:
                assert word in drawn_words, f"{word!r} is not on any page"
    for page in pages:
        assert 1 <= len(page.lines) <= MAX_LINES
        assert page.stop > page.first
        assert "…" not in " ".join(page.lines)


def test_the_pages_drawn_fit_the_caption_box_without_rewrapping(tmp_path: Path) -> None:
    """Through the renderer: the Scene's own pages, each drawn as a block."""
    srt = tmp_path / "episode.srt"
    srt.write_text(EPISODE_SRT)
    wav = write_wav(tmp_path / "twelve.wav", np.zeros(12 * 44100))
    spec = RenderSpec(preset="square", fps=25, captionsKey="x/episode.srt")
    scene = Scene(wav, spec, Assets(captions=srt))
    assert scene.captions is not None and scene.layout.captions is not None
    box = scene.layout.captions
    pages = scene.captions.pages
    check_every_word_is_shown(scene.captions.cues, pages, scene.frames)
    assert len(pages) > len(scene.captions.cues), "the long cues were not split into pages"
    for page in pages:
        block = render_text_block(
            page.lines, font_size=page.font_size, max_width=box.w, box=CAPTION_BOX
        )
        assert block.shape[0] <= box.h and block.shape[1] <= box.w
        drawn = caption_geometry(page.font_size, box.w).height(len(page.lines))
        assert block.shape[0] == drawn, f"{page.lines} was wrapped again when drawn"
    assert box.h >= caption_box_height(scene.layout.caption_size, box.w)


def test_a_long_cue_is_split_into_pages_timed_by_the_length_of_their_words() -> None:
    text = " ".join(["word"] * 30) + " " + " ".join(["extraordinarily"] * 10)
    cues = [Cue(1.0, 9.0, text)]
    pages = paginate(cues, font_size=40, box_width=600, fps=30)
    assert len(pages) >= 3
    assert pages[0].first == 30 and pages[-1].stop == 270  # the cue's own frames, 1 s to 9 s
    for before, after in zip(pages, pages[1:], strict=False):
        assert before.stop == after.first  # back to back, no gap and no overlap
    # frames per character are about the same on every page (within a frame of rounding)
    rates = [(p.stop - p.first) / sum(len(w) + 1 for w in " ".join(p.lines).split())
             for p in pages]  # fmt: skip
    assert max(rates) - min(rates) < 2 / min(sum(len(w) + 1 for w in " ".join(p.lines).split())
                                             for p in pages)  # fmt: skip


def test_a_cue_that_fits_when_set_a_little_smaller_stays_one_page() -> None:
    size, width = 40, 700
    text = "sound"
    while len(wrap_caption(text, size, width)) <= MAX_LINES:
        text += " travels"  # until it is one word too long at full size
    (page,) = paginate([Cue(0.0, 3.0, text)], font_size=size, box_width=width, fps=30)
    assert size * 0.85 <= page.font_size < size and len(page.lines) <= MAX_LINES


def test_a_cue_shows_from_its_start_up_to_its_end() -> None:
    cues = [Cue(1.0, 2.0, "one"), Cue(2.0, 3.0, "two"), Cue(5.0, 6.0, "three")]
    pages = paginate(cues, font_size=30, box_width=600, fps=30)
    texts = {frame: (page.lines[0] if (page := page_at(pages, frame)) else None)
             for frame in range(0, 200)}  # fmt: skip
    assert texts[29] is None and texts[30] == "one" and texts[59] == "one"
    assert texts[60] == "two" and texts[89] == "two" and texts[90] is None
    assert texts[149] is None and texts[150] == "three" and texts[179] == "three"
    assert texts[180] is None


def test_a_cue_shorter_than_a_frame_still_shows_once() -> None:
    # 9.100-9.110 s holds no frame time at 30 fps (9.1 s is frame 273, 9.1333 is 274)
    cues = [Cue(9.101, 9.110, "Blink."), Cue(10.0, 11.0, "next")]
    pages = paginate(cues, font_size=30, box_width=600, fps=30)
    assert [page.lines for page in pages] == [("Blink.",), ("next",)]
    assert pages[0].stop - pages[0].first == 1


def test_a_newer_overlapping_cue_replaces_the_older_after_all_its_words() -> None:
    long_text = "the older cue has quite a few words that all need their own time on screen"
    cues = [Cue(0.0, 10.0, long_text), Cue(2.0, 3.0, "newer")]
    pages = paginate(cues, font_size=60, box_width=500, fps=30)
    check_every_word_is_shown(cues, pages, 400)
    newer = [page for page in pages if page.lines == ("newer",)]
    assert newer and newer[0].first == 60
    assert all(page.stop <= 60 for page in pages if page is not newer[0])


def test_cues_that_start_on_the_same_frame_are_shown_together() -> None:
    cues = [Cue(0.99, 2.0, "speaker one"), Cue(1.0, 2.5, "speaker two")]  # both frame 30
    pages = paginate(cues, font_size=30, box_width=600, fps=30)
    assert [page.lines for page in pages] == [("speaker one", "speaker two")]


def test_random_cues_never_lose_a_word_or_overlap() -> None:
    rng = random.Random(20261130)  # noqa: S311 (reproducible test data)
    vocabulary = ["a", "to", "the", "sound", "travels", "through", "water", "whales",
                  "Supercalifragilistic" * 4, "https://example.com/a/b/c"]  # fmt: skip
    for _ in range(30):
        fps = rng.choice(FRAME_RATES)
        cues, t = [], 0.0
        for _ in range(rng.randint(1, 12)):
            t += rng.choice([0.0, 0.001, 0.01, 0.3, 1.0])
            length = rng.choice([0.005, 0.04, 0.5, 2.0, 6.0])
            text = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 60)))
            cues.append(Cue(t, t + length, text))
            t += rng.choice([0.0, length * 0.5, length])
        cues.sort(key=lambda cue: (cue.start, cue.end))
        size = rng.choice([10, 24, 50])
        pages = paginate(cues, font_size=size, box_width=rng.choice([200, 480, 1000]), fps=fps)
        frames = pages[-1].stop if pages else 0
        check_every_word_is_shown(cues, pages, frames)
        for before, after in zip(pages, pages[1:], strict=False):
            assert before.stop <= after.first
        assert all(page.font_size >= MIN_FONT_SIZE for page in pages)
