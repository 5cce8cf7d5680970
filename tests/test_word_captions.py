"""Word-by-word captions: word-timed WebVTT and Whisper-family JSON read into words,
laid out as phrase pages that keep every word, and the word being said drawn in the
highlight colour, read back from the renderer's own pages and drawn frames.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest

from api.filetypes import PEEK_BYTES, mismatch, stored_type
from devstack import Stack
from jobs.constants import ROLE_CAPTIONS
from render import Assets, RenderSpec
from render.canvas import Planes, YuvaLayer
from render.caption_layout import (
    LINGER_SECONDS,
    MAX_LINES,
    PAUSE_SECONDS,
    Page,
    caption_geometry,
    first_frame,
    page_at,
    paginate,
)
from render.captions import (
    MAX_CAPTION_BYTES,
    Cue,
    InvalidCaptions,
    Word,
    parse_captions,
    shift_cues,
)
from render.engine import Scene
from render.layout import compute_layout
from render.spec import FRAME_RATES, PRESETS
from render.styles import Rect
from render.text import font
from tests.helpers.e2e import poll, submit, upload
from tests.helpers.golden import write_wav
from tests.helpers.samples import SAMPLE

#: A whisperX transcript as it writes one: words without leading spaces, numbers left
#: without times, a pause before the second sentence, a segment's clause ends.
WHISPERX = {
    "segments": [
        {"start": 0.3, "end": 3.9, "text": " Sound moves 4 times faster in water, "
         "and whales hear each other across a whole ocean.", "words": [
            {"word": "Sound", "start": 0.3, "end": 0.6, "score": 0.9},
            {"word": "moves", "start": 0.62, "end": 0.9, "score": 0.8},
            {"word": "4"},
            {"word": "times", "start": 1.1, "end": 1.4, "score": 0.9},
            {"word": "faster", "start": 1.42, "end": 1.8, "score": 0.9},
            {"word": "in", "start": 1.82, "end": 1.9, "score": 0.9},
            {"word": "water,", "start": 1.92, "end": 2.3, "score": 0.9},
            {"word": "and", "start": 2.35, "end": 2.5, "score": 0.9},
            {"word": "whales", "start": 2.52, "end": 2.8, "score": 0.9},
            {"word": "hear", "start": 2.82, "end": 3.0, "score": 0.9},
            {"word": "each", "start": 3.02, "end": 3.2, "score": 0.9},
            {"word": "other", "start": 3.22, "end": 3.4, "score": 0.9},
            {"word": "across", "start": 3.42, "end": 3.6, "score": 0.9},
            {"word": "a", "start": 3.62, "end": 3.66, "score": 0.9},
            {"word": "whole", "start": 3.68, "end": 3.8, "score": 0.9},
            {"word": "ocean.", "start": 3.82, "end": 3.9, "score": 0.9},
        ]},
        {"start": 4.8, "end": 5.8, "text": " Thanks for 2024!", "words": [
            {"word": "Thanks", "start": 4.8, "end": 5.2},
            {"word": "for", "start": 5.22, "end": 5.4},
            {"word": "2024!"},
        ]},
    ],
    "word_segments": [],
    "language": "en",
}

#: openai-whisper with word_timestamps=True (and faster-whisper's dumps): each word
#: carries the space before it; a word split into two tokens has none on the second.
WHISPER = {
    "text": " Hello there. Ready?",
    "segments": [
        {"id": 0, "seek": 0, "start": 0.0, "end": 1.5, "text": " Hello there.",
         "tokens": [50364, 2425], "temperature": 0.0, "avg_logprob": -0.2,
         "compression_ratio": 0.9, "no_speech_prob": 0.01, "words": [
             {"word": " Hello", "start": 0.0, "end": 0.5, "probability": 0.98},
             {"word": " the", "start": 0.6, "end": 0.8, "probability": 0.9},
             {"word": "re.", "start": 0.8, "end": 1.2, "probability": 0.9},
         ]},
        {"id": 1, "seek": 0, "start": 1.5, "end": 2.5, "text": " Ready?", "words": [
            {"word": " Ready?", "start": 1.6, "end": 2.1, "probability": 0.97},
        ]},
    ],
    "language": "en",
}

#: WebVTT with inline timestamps in each of the forms files use, and <c> spans.
VTT = """\
WEBVTT

00:00:01.000 --> 00:00:04.000
Never <00:00:01.500><c>drink</c> <00:01.900><c>liquid</c>
<02.400>nitro<00:00:02.800>gen, my friend.

00:00:05.000 --> 00:00:06.000
No timestamps here
"""

SIZES = [*PRESETS.values(), (1280, 720), (480, 270), (480, 854), (480, 480)]


def words_of(cues: list[Cue]) -> list[str]:
    return [word.text for cue in cues for word in cue.words]


def parse_json(document: object, name: str = "talk.json") -> list[Cue]:
    return parse_captions(json.dumps(document).encode(), name=name)


def refused(data: str | bytes, name: str = "talk.json") -> str:
    with pytest.raises(InvalidCaptions) as caught:
        parse_captions(data, name=name)
    assert caught.value.code == "invalid_captions"
    return str(caught.value)


# --- parsing -----------------------------------------------------------------------------------


def test_vtt_inline_timestamps_time_each_word_until_the_next_or_the_cue_end() -> None:
    first, second = parse_captions(VTT)
    assert first.text == "Never drink liquid nitrogen, my friend."
    assert [(w.text, w.start, w.end) for w in first.words] == [
        ("Never", 1.0, 1.5),  # before the first timestamp: from the cue's start
        ("drink", 1.5, 1.9),  # <00:00:01.500>, spans ignored
        ("liquid", 1.9, 2.4),  # <00:01.900>
        # <02.400>; "gen," is glued to "nitro": one word, timed by its start
        ("nitrogen,", 2.4, 2.8),
        # the rest of the text after <00:00:02.800>: shared by length, up to the cue's end
        ("my", 2.8, pytest.approx(2.8 + 1.2 * 3 / 11)),
        ("friend.", pytest.approx(2.8 + 1.2 * 3 / 11), 4.0),
    ]
    assert second.words == ()  # a cue without timestamps stays plain


#: As YouTube writes its automatic captions: a line of one space in every cue (``~``
#: here), each cue repeating the line before (untimed) above its own timed words, and a
#: 10 ms cue between two showing the finished line alone.
YOUTUBE = """WEBVTT
Kind: captions
Language: en

00:00:00.160 --> 00:00:02.869 align:start position:0%
~
welcome<00:00:00.560><c> back</c><00:00:00.880><c> to</c><00:00:01.040><c> the</c>\
<00:00:01.300><c> show</c>

00:00:02.869 --> 00:00:02.879 align:start position:0%
welcome back to the show
~

00:00:02.879 --> 00:00:05.269 align:start position:0%
welcome back to the show
today<00:00:03.120><c> we</c><00:00:03.280><c> talk</c><00:00:03.600><c> about</c>\
<00:00:04.000><c> sound</c>

00:00:05.269 --> 00:00:05.279 align:start position:0%
today we talk about sound
~

00:00:05.279 --> 00:00:07.500 align:start position:0%
today we talk about sound
and<00:00:05.600><c> how</c><00:00:05.900><c> it</c><00:00:06.100><c> travels</c>
""".replace("\n~\n", "\n \n")


def test_youtubes_rolling_captions_are_read_with_every_word_said_once() -> None:
    cues = parse_captions(YOUTUBE.replace("\n", "\r\n"), name="auto.vtt")
    said = [word.text for cue in cues for word in cue.words]
    assert said == "welcome back to the show today we talk about sound and how it travels".split()
    assert [cue.text for cue in cues] == ["welcome back to the show",
                                          "today we talk about sound", "and how it travels"]
    # each word at its own time: the repeated line no longer takes the start of a cue
    assert [(w.text, w.start) for w in cues[1].words[:2]] == [("today", 2.879), ("we", 3.12)]
    assert all(a.end <= b.start for a, b in itertools.pairwise(cues))  # none shown twice


def test_a_vtt_line_of_spaces_is_cue_text_and_repeats_without_word_times_are_kept() -> None:
    # WebVTT ends a cue at an empty line only; a line of spaces is part of its text
    spaced = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n   \nHello\n\n" \
             "00:00:02.000 --> 00:00:03.000\nHello\n \n00:00:03.000 --> 00:00:04.000\nHello\n"
    assert [(c.start, c.text) for c in parse_captions(spaced)] == [
        (1.0, "Hello"), (2.0, "Hello"), (3.0, "Hello")]  # a chorus: each time kept
    # cues parted by lines of spaces keep their identifiers out of the text
    named = ("WEBVTT\n\nintro\n00:00:01.000 --> 00:00:02.000\nHello\n  \n"
             "outro\n00:00:02.000 --> 00:00:03.000\nWorld\n \n"
             "3\n00:00:03.000 --> 00:00:04.000\nBye\n")
    assert [c.text for c in parse_captions(named)] == ["Hello", "World", "Bye"]
    # and NOTE, STYLE and REGION blocks parted by them stay blocks of their own
    notes = ("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nOne\n \nNOTE a comment\n  \n"
             "00:00:02.000 --> 00:00:03.000\nTwo\n\nSTYLE\n::cue { color: red }\n\t\n"
             "00:00:03.000 --> 00:00:04.000\nThree\n")
    assert [c.text for c in parse_captions(notes)] == ["One", "Two", "Three"]
    # a word-timed cue's first line that repeats words said without their own times
    # (lyrics) is said again: only the line said last with times rolls
    lyrics = ("WEBVTT\n\n00:00:01.000 --> 00:00:03.000\nI said <00:00:02.000>yeah\nYeah\n\n"
              "00:00:03.000 --> 00:00:05.000\nYeah\nwe <00:00:04.000>go\n")
    assert [c.text for c in parse_captions(lyrics)] == ["I said yeah Yeah", "Yeah we go"]
    # word-timed cues that say the same words again are said again
    chorus = ("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nla <00:00:01.500>la\n\n"
              "00:00:02.000 --> 00:00:03.000\nla la\nla <00:00:02.500>la\n\n"
              "00:00:03.000 --> 00:00:04.000\nla la\n")
    cues = parse_captions(chorus)
    # the second cue's untimed first line repeats the first cue: rolled, dropped; the
    # third, a whole second of its own and not a blink, is said again
    assert [cue.text for cue in cues] == ["la la", "la la", "la la"]
    assert [len(cue.words) for cue in cues] == [2, 2, 0]


def test_whisperx_words_without_times_are_placed_between_their_neighbours() -> None:
    cues = parse_json(WHISPERX)
    assert words_of(cues) == [*WHISPERX["segments"][0]["text"].split(), "Thanks", "for", "2024!"]
    four = cues[0].words[2]
    assert (four.text, four.start, four.end) == ("4", 0.9, 1.1)  # "moves" ends, "times" starts
    last = cues[1].words[-1]
    assert (last.text, last.start, last.end) == ("2024!", 5.4, 5.8)  # up to the segment's end
    assert [(cue.start, cue.end) for cue in cues] == [(0.3, 3.9), (4.8, 5.8)]


def test_openai_whisper_words_keep_their_spaces_and_tokens_of_one_word_join() -> None:
    cues = parse_json(WHISPER)
    assert [cue.text for cue in cues] == ["Hello there.", "Ready?"]
    there = cues[0].words[1]
    assert (there.text, there.start, there.end) == ("there.", 0.6, 1.2)
    assert (cues[1].start, cues[1].words[0].start) == (1.5, 1.6)


def test_a_top_level_words_list_is_read_and_segments_without_words_are_spread() -> None:
    # OpenAI's verbose_json with word granularity: segments without words, and the words
    verbose = {"text": "Hi all. Bye.", "segments": [{"start": 0, "end": 2, "text": "Hi all."}],
               "words": [{"word": "Hi", "start": 0.1, "end": 0.3},
                         {"word": "all.", "start": 0.4, "end": 0.9},
                         {"word": "Bye.", "start": 1.5, "end": 1.9}]}
    (cue,) = parse_json(verbose)
    assert [(w.text, w.start, w.end) for w in cue.words] == [
        ("Hi", 0.1, 0.3), ("all.", 0.4, 0.9), ("Bye.", 1.5, 1.9)]
    mixed = {"segments": [{"start": 0, "end": 1, "text": "timed", "words": [
        {"word": "timed", "start": 0.1, "end": 0.5}]}, {"start": 2, "end": 4, "text": "one two"}]}
    _, spread = parse_json(mixed)
    assert [(w.text, w.start, w.end) for w in spread.words] == [
        ("one", 2.0, 3.0), ("two", 3.0, 4.0)]
    plain = parse_json({"segments": [{"start": 0.5, "end": 1.5, "text": " No words at all"}]})
    assert plain == [Cue(0.5, 1.5, "No words at all")]  # shown as a plain cue


def test_json_with_a_bom_and_the_clip_window_keep_the_words_inside_it() -> None:
    data = b"\xef\xbb\xbf" + json.dumps(WHISPERX).encode()
    cues = shift_cues(parse_captions(data), 1.0, 3.0)
    # "4" (0.9 to 1.1 s) is said into the clip: kept, from the clip's start
    assert [w.text for w in cues[0].words][:2] == ["4", "times"]
    assert [w.start for w in cues[0].words][:2] == pytest.approx([0.0, 0.1])
    assert words_of(cues)[-1] == "hear"  # to 3.0 s; "each" is said from 3.02 s, after it
    assert cues[0].text == " ".join(words_of(cues))
    assert all(0.0 <= w.start <= w.end <= 2.0 for w in cues[0].words)


# --- errors --------------------------------------------------------------------------------------


def test_a_vtt_timestamp_outside_its_cue_or_going_back_names_its_line() -> None:
    vtt = "WEBVTT\n\nNOTE two lines\nof notes\n\n00:00:01.000 --> 00:00:04.000\nHi <00:00:02.000>" \
          "there\nand <00:00:05.000>bye\n"
    assert refused(vtt, "talk.vtt") == (
        "talk.vtt line 8: timestamp 00:00:05.000 is outside its cue "
        "(00:00:01.000 --> 00:00:04.000)")
    backwards = "WEBVTT\n\n00:01.000 --> 00:04.000\nHi <00:03.000>there <00:02.000>you\n"
    assert refused(backwards, "talk.vtt").startswith(
        "talk.vtt line 4: timestamp 00:02.000 comes before the one before it (00:00:03.000)")
    assert refused("WEBVTT\n\n00:01.000 --> 00:04.000\nHi <00:61.000>there\n", "talk.vtt") == (
        "talk.vtt line 4: '00:61.000' is not a valid time (minutes and seconds go up to 59)")


@pytest.mark.parametrize(("document", "message"), [
    ('{\n  "segments": [\n    {"start": 1,\n  ]\n}',
     "talk.json: not JSON: Expecting property name enclosed in double quotes at line 4 column 3"),
    ({"segments": [{"start": 0, "end": 1, "words": [{"word": "a", "start": 0, "end": 1}]},
                   {"start": 1, "end": 2, "words": [{"word": "b", "start": 1.2},
                                                    {"word": "c", "start": 1.5, "end": 1.4}]}]},
     "talk.json: segments[1].words[1]: end before start (start 1.5, end 1.4)"),
    ({"segments": [{"start": 2.0, "end": 1.0, "text": "x"}]},
     "talk.json: segments[0]: end before start (start 2, end 1)"),
    ({"segments": [{"start": 0, "end": 1, "words": [{"word": "a", "start": "0.5"}]}]},
     "talk.json: segments[0].words[0].start: expected seconds as a number, got text"),
    ({"segments": [{"start": 0, "end": 1, "words": [{"word": "a", "start": True}]}]},
     "talk.json: segments[0].words[0].start: expected seconds as a number, got true"),
    ({"segments": [{"start": -1, "end": 1, "text": "x"}]},
     "talk.json: segments[0].start: -1 is before the start of the audio"),
    ({"segments": [{"start": 0, "end": 1, "words": [{"start": 0, "end": 1}]}]},
     'talk.json: segments[0].words[0]: "word" is missing or not text'),
    ({"segments": {"start": 0}}, "talk.json: segments: expected a list, got an object"),
    ({"segments": ["hello"]}, "talk.json: segments[0]: expected an object, got text"),
    ({"words": [{"word": "a"}, {"word": "b"}]},
     "talk.json: words[0]: a word without times, and none around it has any"),
    ({"segments": [{"start": 0, "end": 1}]}, "talk.json: no words found in the transcript"),
    ({"transcription": []}, 'talk.json: no "segments" or "words"'),
    ([{"start": 0, "end": 1, "text": "a list"}], "talk.json: expected a JSON object"),
], ids=["syntax", "word-end-before-start", "segment-end-before-start", "text-time",
        "bool-time", "negative", "no-word", "segments-not-a-list", "segment-not-an-object",
        "no-times-anywhere", "nothing-to-show", "whisper-cpp", "top-level-list"])
def test_a_bad_json_transcript_is_refused_naming_the_place(
    document: object, message: str
) -> None:
    data = document if isinstance(document, str) else json.dumps(document)
    assert refused(data).startswith(message)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "1" + "0" * 400])
def test_non_finite_and_absurd_times_are_refused(number: str) -> None:
    data = '{"segments": [{"start": 0, "end": 1, "words": [{"word": "a", "end": NUMBER}]}]}'
    data = data.replace("NUMBER", number)
    assert refused(data) == "talk.json: segments[0].words[0].end: not a finite number of seconds"


def test_absurd_sizes_and_nesting_are_refused_and_other_encodings_read() -> None:
    too_big = b'{"words": [' + b'{"word": "a", "start": 1, "end": 2},' * (
        MAX_CAPTION_BYTES // 30) + b"]}"
    assert re.match(r"talk\.json: the file is 2\.\d MB; captions files are limited to 2 MB",
                    refused(too_big))
    assert refused("[" * 100_000 + "]" * 100_000).startswith(
        "talk.json: not JSON this service reads (too deeply nested")
    # the API takes UTF-8 only; the renderer reads JSON as leniently as SRT and WebVTT
    for encoding in ("utf-16", "cp1252"):
        data = '{"words": [{"word": "Café", "start": 0, "end": 1}]}'.encode(encoding)
        assert words_of(parse_captions(data)) == ["Café"]


# --- layout --------------------------------------------------------------------------------------


def page_words(page: Page) -> list[str]:
    """The words of a page, read back from its lines where its spans say they are."""
    return ["".join(page.lines[line][a:b] for line, a, b in word.spans) for word in page.words]


def transcript(rng: random.Random) -> list[Cue]:
    """A random word-timed transcript: words faster than frames, zero-length words,
    pauses, sentence and clause ends, long words and URLs."""
    vocabulary = ["a", "to", "the", "sound", "travels,", "through", "water.", "whales?", "and;"]
    long_words = ["Supercalifragilistic" * 3, "https://example.com/a/b/c/d/e/f"]
    cues, t = [], rng.choice([0.0, 0.013, 0.5])
    for _ in range(rng.randint(1, 6)):
        words = []
        for _ in range(rng.randint(1, 40)):
            length = rng.choice([0.0, 0.005, 0.02, 0.2, 0.5])
            text = rng.choice(long_words if rng.random() < 0.03 else vocabulary)
            words.append(Word(t, t + length, text))
            t += length + rng.choice([0.0, 0.01, 0.1, 0.7])
        cues.append(Cue(words[0].start, max(words[-1].end, words[0].start + 0.001),
                        " ".join(w.text for w in words), tuple(words)))
        t += rng.choice([0.0, 0.3, 2.0])
    return cues


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_every_word_is_on_one_page_in_order_within_two_lines_of_the_box(
    width: int, height: int
) -> None:
    spec = RenderSpec(width=width, height=height, fps=30)
    layout = compute_layout(spec, has_artwork=True, has_captions=True)
    assert layout.captions is not None
    cues = parse_json(WHISPERX)
    pages = paginate(cues, font_size=layout.caption_size, box_width=layout.captions.w, fps=30)
    assert [word for page in pages for word in page_words(page)] == words_of(cues)
    geometry = caption_geometry(layout.caption_size, layout.captions.w)
    face = font(layout.caption_size)
    for page in pages:
        assert 1 <= len(page.lines) <= MAX_LINES
        assert all(face.getlength(line) <= geometry.inner for line in page.lines)
        assert geometry.height(len(page.lines)) <= layout.captions.h
        # a page never runs over a sentence's end or a pause
        texts = page_words(page)
        assert not any(re.search(r"[.!?]$", text) for text in texts[:-1]), texts


def test_pages_break_at_phrase_ends_and_show_from_the_first_word_to_the_last() -> None:
    fps = 25
    cues = parse_json(WHISPERX)
    words = [word for cue in cues for word in cue.words]
    pages = paginate(cues, font_size=40, box_width=800, fps=fps)
    texts = [page_words(page) for page in pages]
    # the first sentence takes more than a page: cut where its clause ends, though the
    # first page had a line to spare for more words
    assert texts[0][-1] == "water," and len(pages[0].lines) == 1, texts
    assert texts[-1] == ["Thanks", "for", "2024!"]  # after the pause, a page of its own
    by_text = {word.text: word for word in words}
    for page, following in zip(pages, [*pages[1:], None], strict=True):
        first, last = by_text[page_words(page)[0]], by_text[page_words(page)[-1]]
        assert page.first == first_frame(first.start, fps)
        linger = first_frame(last.end + LINGER_SECONDS, fps)
        assert page.stop == (min(linger, following.first) if following else linger)
    ocean, thanks = by_text["ocean."], by_text["Thanks"]
    assert thanks.start - ocean.end > PAUSE_SECONDS
    assert page_at(pages, first_frame(ocean.end + LINGER_SECONDS, fps) + 1) is None  # the pause


def test_the_word_said_at_each_moment_is_the_highlighted_one() -> None:
    fps = 30
    cues = parse_json(WHISPERX)
    pages = paginate(cues, font_size=30, box_width=400, fps=fps)
    for word in (word for cue in cues for word in cue.words):
        frame = int((word.start + word.end) / 2 * fps)
        page = page_at(pages, frame)
        assert page is not None, word
        index = page.word_at(frame)
        assert index is not None and page_words(page)[index] == word.text, (word, frame)
    # between a page's last word and the next page, the page lingers with no word lit
    last_page = pages[-1]
    assert last_page.word_at(last_page.stop - 1) is None


def test_random_transcripts_never_lose_a_word_and_pages_never_overlap() -> None:
    rng = random.Random(20261201)  # noqa: S311 (reproducible test data)
    for _ in range(25):
        fps = rng.choice(FRAME_RATES)
        cues = transcript(rng)
        pages = paginate(cues, font_size=rng.choice([10, 24, 50]),
                         box_width=rng.choice([200, 480, 1000]), fps=fps)
        assert [w for page in pages for w in page_words(page)] == words_of(cues)
        for before, after in zip(pages, pages[1:], strict=False):
            assert before.first < before.stop <= after.first
        for page in pages:
            assert len(page.lines) <= MAX_LINES or len(page.words) == 1
            lit = [(word.first, word.stop) for word in page.words]
            assert all(page.first <= a <= b <= page.stop for a, b in lit)
            assert all(a < b for a, b in lit[:-1])  # every word but the last has a frame lit
            assert all(b <= c for (_, b), (c, _) in zip(lit, lit[1:], strict=False))


def test_plain_captions_are_paged_as_before() -> None:
    srt = "1\n00:00:00,500 --> 00:00:03,000\nHello there, this is a plain cue.\n"
    (page,) = paginate(parse_captions(srt), font_size=30, box_width=600, fps=30)
    assert (page.first, page.stop, page.lines, page.words) == (
        15, 90, ("Hello there, this is a plain cue.",), ())


# --- drawing -------------------------------------------------------------------------------------

#: The highlight: yellow, far from the white text, the white bars and the dark box.
HIGHLIGHT = "#ffd23f"


def highlighted(frame: np.ndarray) -> np.ndarray:
    """Pixels of the highlight colour: red and green high, blue well below them."""
    rgb = frame.astype(int)
    return (rgb[..., 0] > 150) & (rgb[..., 1] > 110) & (rgb[..., 0] - rgb[..., 2] > 80)


def word_rects(page: Page, index: int, box: Rect) -> list[tuple[float, float, float, float]]:
    """Where the word's glyphs are in the frame, from the font's own measurements:
    the caption block centred at the bottom of the box (on even pixels, as layers
    are blended), each line centred in it."""
    geometry = caption_geometry(page.font_size, box.w)
    face = font(page.font_size)
    widths = [face.getlength(line) for line in page.lines]
    block_w, block_h = geometry.width(max(widths)), geometry.height(len(page.lines))
    x0 = box.x + (box.w - block_w) // 2
    y0 = box.y + box.h - block_h
    x0, y0 = x0 - x0 % 2, y0 - y0 % 2
    rects = []
    for line, a, b in page.words[index].spans:
        left = x0 + geometry.margin_x + (block_w - 2 * geometry.margin_x - widths[line]) / 2
        baseline = y0 + geometry.margin_y + geometry.ascent + line * geometry.step
        text = page.lines[line]
        rects.append((left + face.getlength(text[:a]), baseline - geometry.ascent,
                      left + face.getlength(text[:b]), baseline + geometry.descent))
    return rects


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    transcript = tmp_path_factory.mktemp("words") / "talk.json"
    transcript.write_text(json.dumps(WHISPERX))
    return Assets(captions=transcript)


@pytest.fixture(scope="module")
def scene(assets: Assets) -> Scene:
    assert assets.captions is not None
    wav = write_wav(assets.captions.parent / "silence.wav", np.zeros(6 * 44100))
    spec = RenderSpec(width=640, height=360, fps=25, captionsKey="x/talk.json",
                      captionsHighlight=HIGHLIGHT)
    return Scene(wav, spec, assets)


def test_each_word_is_drawn_in_the_highlight_colour_while_it_is_said(scene: Scene) -> None:
    assert scene.captions is not None and scene.layout.captions is not None
    box, fps = scene.layout.captions, scene.spec.fps
    planes = Planes.empty(scene.spec.width, scene.spec.height)
    for cue in scene.captions.cues:
        for word in cue.words:
            frame = int((word.start + word.end) / 2 * fps)
            scene.draw(planes, frame)
            rgb = planes.to_rgb()
            page = page_at(scene.captions.pages, frame)
            assert page is not None and (index := page.word_at(frame)) is not None
            assert page_words(page)[index] == word.text
            lit = highlighted(rgb)
            inside = np.zeros_like(lit)
            for left, top, right, bottom in word_rects(page, index, box):
                rows = slice(max(int(top) - 2, 0), int(bottom) + 3)
                inside[rows, max(int(left) - 3, 0) : int(right) + 4] = True
                assert lit[rows, int(left) : int(right) + 1].sum() >= 4 * len(word.text), word
            assert not (lit & ~inside).any(), f"highlight outside {word.text!r} at frame {frame}"
            white = rgb.min(axis=2) > 200
            if len(page.words) > 1:  # the rest of the page in the text colour
                assert (white & ~inside)[box.y : box.y + box.h].sum() > 20


def test_the_highlight_moves_no_glyph_and_the_block_fits_the_box(scene: Scene) -> None:
    assert scene.captions is not None and scene.layout.captions is not None
    box = scene.layout.captions
    for page in scene.captions.pages:
        plain = scene.captions.block(page)
        assert plain.shape[0] <= box.h and plain.shape[1] <= box.w
        for index in range(len(page.words)):
            block = scene.captions.block(page, index)
            assert block.shape == plain.shape
            assert np.array_equal(block[..., 3], plain[..., 3])  # every glyph where it was
            assert not np.array_equal(block, plain)


def test_a_word_layer_is_exactly_its_whole_block_converted(scene: Scene) -> None:
    """Only the rectangle a word's glyphs own is converted again for it: the frame is
    what converting the whole highlighted block gives."""
    assert scene.captions is not None and scene.layout.captions is not None
    box = scene.layout.captions
    drawn, expected = (Planes.empty(scene.spec.width, scene.spec.height) for _ in range(2))
    for page in scene.captions.pages:
        for index, word in enumerate(page.words):
            scene.draw(drawn, word.first)
            expected.copy_from(scene.background)
            scene.style.draw(expected, word.first)
            block = scene.captions.block(page, index)
            x, y = box.x + (box.w - block.shape[1]) // 2, box.y + box.h - block.shape[0]
            YuvaLayer.from_rgba(block).blend(expected, x, y)
            assert np.array_equal(drawn.buffer, expected.buffer), (page.lines, index)


def test_a_frame_depends_only_on_its_index(scene: Scene, assets: Assets) -> None:
    """As a split render's windows draw it: another scene of the same analysis, drawing
    the frames in another order, draws the same pixels."""
    frames = range(0, scene.frames, 3)
    again = Scene.from_analysis(scene.analysis, scene.spec, assets)
    first, second = (Planes.empty(scene.spec.width, scene.spec.height) for _ in range(2))
    backwards = {}
    for index in reversed(frames):
        again.draw(second, index)
        backwards[index] = second.buffer.copy()
    for index in frames:
        scene.draw(first, index)
        assert np.array_equal(first.buffer, backwards[index]), index


def test_without_speech_no_word_is_lit_and_no_caption_is_drawn(scene: Scene) -> None:
    assert scene.captions is not None and scene.layout.captions is not None
    box = scene.layout.captions
    planes = Planes.empty(scene.spec.width, scene.spec.height)
    for seconds in (0.1, 4.6):  # before the first word; the pause after the lingering page
        scene.draw(planes, int(seconds * scene.spec.fps))
        rgb = planes.to_rgb()
        assert not highlighted(rgb).any(), seconds
        region = rgb[box.y : box.y + box.h, box.x : box.x + box.w].astype(int)
        assert np.abs(region - scene.spec.background_rgb).max() < 10, seconds


# --- through the API -----------------------------------------------------------------------------


def test_a_json_upload_must_start_as_a_utf8_json_object() -> None:
    good = json.dumps(WHISPER).encode()
    assert mismatch(ROLE_CAPTIONS, ".json", good, whole=True) is None
    assert mismatch(ROLE_CAPTIONS, ".json", b"\xef\xbb\xbf \n" + good, whole=True) is None
    assert mismatch(ROLE_CAPTIONS, ".json", b" " * PEEK_BYTES, whole=False) is None  # so far
    assert stored_type(ROLE_CAPTIONS, ".json", good) == "application/json"
    for data, shown in ((json.dumps(WHISPER).encode("utf-16"), "text, but not UTF-8"),
                        ('{"word": "Café"}'.encode("cp1252"), "text, but not UTF-8"),
                        (b"[1, 2]", "not a JSON object"), (b"WEBVTT\n", "not a JSON object"),
                        (b" " * 10, "not a JSON object"),
                        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "a PNG image")):
        message = mismatch(ROLE_CAPTIONS, ".json", data, whole=True)
        assert message == (f"The file is named *.json, but its first bytes are {shown}. Upload a "
                           "Whisper-style JSON transcript in UTF-8 under a name ending .json.")



def test_a_json_transcript_is_uploaded_rendered_and_a_wrong_one_refused(
    local_stack: Stack, tmp_path: Path
) -> None:
    good = tmp_path / "talk.json"
    good.write_text(json.dumps(WHISPERX), encoding="utf-8")
    key = upload(local_stack, good)
    assert key.endswith("/talk.json")
    # the worker reads the copy by its content (it has no name): the render completes
    body = {"kind": "preview", "audioKey": upload(local_stack, SAMPLE),
            "options": {"width": 320, "height": 180, "end": 2.0, "captionsKey": key,
                        "captionsHighlight": "#4ade80"}}
    job, _ = poll(local_stack, submit(local_stack, body)["jobId"], timeout=120)
    assert job["status"] == "complete", job["error"]
    # refused at the upload as other captions are: not UTF-8, not a JSON object, binary
    for data in (json.dumps(WHISPER).encode("utf-16"), b"1\n00:00:01,000 --> 00:00:02,000\nx\n",
                 SAMPLE.read_bytes()[:5000]):
        response = local_stack.client().post(
            local_stack.url("/v1/uploads"), files={"file": ("talk.json", data)}, timeout=30)
        assert response.status_code == 415, response.text
        assert response.json()["error"]["code"] == "content_mismatch"
    # one that is JSON but not a transcript fails the job naming the place
    bad = tmp_path / "bad.json"
    bad.write_text('{"segments": [{"start": 0, "end": 1, "words": [{"word": "a", "end": NaN}]}]}')
    body["options"]["captionsKey"] = upload(local_stack, bad)
    job, _ = poll(local_stack, submit(local_stack, body)["jobId"], timeout=120)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "invalid_captions"
    assert "segments[0].words[0].end: not a finite number" in job["error"]["message"]
    assert local_stack.client().post(local_stack.url("/v1/jobs"), json={
        **body, "options": {**body["options"], "captionsHighlight": "yellow"}},
        timeout=10).status_code == 400
