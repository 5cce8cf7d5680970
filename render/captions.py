"""Caption files (SRT, WebVTT, Whisper JSON) read into timed cues for drawing over the video.

People upload whatever their editor or transcription service exported, so the
parser is lenient about what does not change the meaning (CRLF, BOM, cue
numbers, VTT cue settings, styling tags, a comma or a dot before the
milliseconds) and strict about what does: a time range it cannot read is an
``InvalidCaptions`` naming the line, never a silently missing cue.

Word-timed transcripts give each cue its ``words``, each with its own time, so the
word being spoken can be highlighted: WebVTT cues with inline timestamps
(``<00:00:01.250>``) and the JSON that Whisper-family tools write (openai-whisper
with word timestamps, whisperX, faster-whisper dumps, OpenAI's ``verbose_json``).
Those are read by content, not by name (the worker's copy has none): a file whose
first character is ``{`` or ``[`` is JSON (decoded as leniently as the others; the
API takes ``.json`` uploads in UTF-8 only, as JSON is). A word without times (whisperX leaves
numbers unaligned) gets them from its neighbours; it is never dropped. A JSON
error names the place in the document (``segments[3].words[2]``).

::

    RenderError                  (render.errors)
    └── InvalidCaptions          code "invalid_captions": the file is not usable captions
"""

from __future__ import annotations

import codecs
import html
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from render.errors import RenderError

#: Larger uploads are refused: a 2 hour film's SRT is about 150 KB.
MAX_CAPTION_BYTES = 2 * 1024 * 1024
#: More cues than any audiogram can show; refusing keeps a hostile file cheap.
MAX_CUES = 20_000
#: A cue without word times this short that only shows the line said last is rolling
#: captions' blink of the finished line (YouTube's, 10 ms long): not said again.
SNAPSHOT_SECONDS = 0.1

_FIX = "upload an SRT or WebVTT file"
_JSON_FIX = (
    'a transcript is a JSON object with "segments" (each with "start", "end", "text" and '
    'optionally "words") or "words" (each with "word", "start", "end"), as Whisper writes it'
)


class InvalidCaptions(RenderError):
    """The captions file cannot be read: not text, a malformed cue, no cues, too big."""

    code = "invalid_captions"


@dataclass(frozen=True)
class Word:
    """One word of a word-timed cue, spoken from ``start`` to ``end`` (seconds).

    ``text`` holds no whitespace: what a caption line shows between two spaces.
    """

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Cue:
    """Text shown from ``start`` up to (not including) ``end``, in seconds.

    A word-timed cue also has its ``words``, in order; its ``text`` is then those
    words joined by spaces. A cue of a file without word times has none.
    """

    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()


# [hours:]minutes:seconds[,.]fraction: SRT writes a comma, VTT a dot, files in the wild mix them.
_TIME = r"(?:\d+:)?\d{1,2}:\d{1,2}[,.]\d{1,3}"
_TIME_PARTS = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2})[,.](\d{1,3})")
# Anything after the end time is VTT cue settings (align:start) or SRT coordinates (X1:…): ignored.
_TIMING = re.compile(rf"\s*({_TIME})\s*-->\s*({_TIME})(?:[ \t].*)?")
# <i>, </b>, <c.yellow>, <v Speaker>, <00:00:01.500>, <font color="red">; not "a < b".
_TAG = re.compile(r"</?[A-Za-z0-9][^<>]*>")
# A WebVTT inline timestamp, the time the text after it is spoken: <00:00:01.250>, and
# as files in the wild write it, <00:01.250> or <01.250> (or with a comma).
_INLINE_TIME = re.compile(r"<((?:(?:(\d+):)?(\d{1,2}):)?(\d{1,2})[,.](\d{1,3}))>")
# SSA/ASS override blocks that SRT files carry over from Aegisub: {\an8}, {\i1}.
_ASS_OVERRIDE = re.compile(r"\{\\[^}]*\}")
_LOOKS_LIKE_TIME = re.compile(r"\s*\d+\s*:\s*\d")
_VTT_HEADER = re.compile(r"WEBVTT(?:[ \t].*)?")
_VTT_BLOCK = re.compile(r"(?:NOTE|STYLE|REGION)(?:[ \t].*)?")
# C0 controls that never occur in a text file (tab, LF, FF and CR do).
_BINARY = re.compile(r"[\x00-\x08\x0b\x0e-\x1f]")


def parse_captions(data: bytes | str, *, name: str = "captions") -> list[Cue]:
    """The cues of an SRT, WebVTT or Whisper JSON file, sorted by start; ``name`` leads
    every error message. Cues with word times carry their ``words``."""
    text = _decode(data, name)
    if text.lstrip()[:1] in ("{", "["):
        return parse_transcript(text, name=name)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    first = next((line.rstrip() for line in lines if line.strip()), "")
    vtt = _VTT_HEADER.fullmatch(first) is not None
    blocks = _blocks(lines, vtt)
    example = "00:00:01.000 --> 00:00:04.000" if vtt else "00:00:01,000 --> 00:00:04,000"
    if vtt:
        header = blocks.pop(0)
        # a first cue written straight under the header, without the blank line
        arrow = next((i for i, (_, line) in enumerate(header) if "-->" in line), None)
        if arrow is not None:
            blocks.insert(0, header[arrow:])

    cues: list[Cue] = []
    said = ""  # the last line said with inline times (rolling captions repeat it)
    blocks.reverse()  # a stack, so a block holding two cues can push its second half back
    while blocks:
        block = blocks.pop()
        if vtt and "-->" not in block[0][1] and _VTT_BLOCK.fullmatch(block[0][1]):
            continue  # NOTE, STYLE and REGION blocks carry nothing to draw
        timing = _timing_index(block)
        number, line = block[timing] if timing is not None else _blamed_line(block)
        match = _TIMING.fullmatch(line) if timing is not None else None
        if match is None:
            raise InvalidCaptions(
                f"{name} line {number}: expected a time range like {example}, got {_quote(line)}"
            )
        start = _seconds(match.group(1), name, number)
        end = _seconds(match.group(2), name, number)
        if end < start:
            raise InvalidCaptions(
                f"{name} line {number}: the cue ends ({match.group(2)}) "
                f"before it starts ({match.group(1)})"
            )
        body = block[timing + 1 :]
        nested = _next_cue_index(body)
        if nested is not None:  # the next cue follows without a blank line between them
            blocks.append(body[nested:])
            body = body[:nested]
        if vtt:
            body = _unrolled(body, said, end - start < SNAPSHOT_SECONDS)
            timed = [text for _, text in body if _INLINE_TIME.search(text)]
            said = _clean(timed[-1:], vtt) if timed else said
        caption = _clean([text for _, text in body], vtt)
        words = _timed_words(body, start, end, name) if vtt else ()
        if words:
            caption = " ".join(word.text for word in words)
        if caption and end > start:  # zero-length cues never show
            if len(cues) == MAX_CUES:
                raise InvalidCaptions(
                    f"{name}: more than {MAX_CUES:,} cues; split the file or upload a shorter one"
                )
            cues.append(Cue(start, end, caption, words))
    if not cues:
        raise InvalidCaptions(f"{name}: no cues found; {_FIX}")
    cues.sort(key=lambda cue: (cue.start, cue.end))
    return cues


def shift_cues(cues: Sequence[Cue], offset: float, end: float | None = None) -> list[Cue]:
    """The cues of the clip ``[offset, end)`` of the audio, on the clip's own timeline.

    Cues are moved back by ``offset`` and cut to ``[0, end - offset]``; those
    wholly outside the clip are dropped. ``end`` None means up to the end.
    """
    limit = None if end is None else end - offset
    shifted: list[Cue] = []
    for cue in cues:
        start = max(cue.start - offset, 0.0)
        stop = cue.end - offset
        if limit is not None:
            stop = min(stop, limit)
        if stop <= start:
            continue
        if not cue.words:
            shifted.append(Cue(start, stop, cue.text))
            continue
        words = _shift_words(cue.words, offset, limit)
        if words:  # a word-timed cue shows the words said inside the clip
            shifted.append(Cue(start, stop, " ".join(word.text for word in words), words))
    return shifted


def _shift_words(words: Sequence[Word], offset: float, limit: float | None) -> tuple[Word, ...]:
    """The words said inside the clip, on its timeline: a word that began before the clip
    and goes on into it is kept (from the clip's start), one that ended before is not."""
    kept: list[Word] = []
    for word in words:
        start, stop = word.start - offset, word.end - offset
        if stop < 0 or (stop == 0 and start < 0) or (limit is not None and start >= limit):
            continue
        stop = stop if limit is None else min(stop, limit)
        kept.append(Word(max(start, 0.0), max(stop, 0.0), word.text))
    return tuple(kept)


def _decode(data: bytes | str, name: str) -> str:
    """Text from an upload: UTF-8 (BOM or not), UTF-16 with a BOM, else cp1252 (old SRTs)."""
    size = len(data.encode("utf-8", "surrogatepass")) if isinstance(data, str) else len(data)
    if size > MAX_CAPTION_BYTES:
        raise InvalidCaptions(
            f"{name}: the file is {size / 1024 / 1024:.1f} MB; captions files are limited "
            f"to {MAX_CAPTION_BYTES // 1024 // 1024} MB"
        )
    if isinstance(data, str):
        text = data
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise _not_text(name) from None
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError:  # bytes cp1252 leaves undefined: not text at all
                raise _not_text(name) from None
    text = text.removeprefix("\ufeff")
    if _BINARY.search(text):
        raise _not_text(name)
    return text


def _not_text(name: str) -> InvalidCaptions:
    return InvalidCaptions(f"{name} line 1: this is not a text file (binary data); {_FIX}")


def _blocks(lines: list[str], vtt: bool) -> list[list[tuple[int, str]]]:
    """Runs of non-blank lines as [(1-based line number, line)]: the unit of both formats.

    In WebVTT a line of spaces inside a cue followed by more of its text is part of it
    (YouTube's automatic captions put one in every cue: only an empty line ends a cue);
    one followed by an empty line, a time range, an identifier and a time range, or a
    NOTE, STYLE or REGION block parts blocks, as files that use such lines between cues
    mean it to."""
    blocks: list[list[tuple[int, str]]] = []
    block: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        if line.strip() or (vtt and block and line and _more_text(lines, number)):
            block.append((number, line.rstrip()))
        elif block:
            blocks.append(block)
            block = []
    if block:
        blocks.append(block)
    return blocks


def _more_text(lines: list[str], number: int) -> bool:
    """Whether the line after line ``number`` (1-based) goes on with a cue's text."""
    after = [line.strip() for line in lines[number:number + 2]] + ["", ""]
    return bool(after[0]) and "-->" not in after[0] and "-->" not in after[1] \
        and _VTT_BLOCK.fullmatch(after[0]) is None


def _timing_index(block: list[tuple[int, str]]) -> int | None:
    """Where the time range is: first line, or second after a cue number or VTT identifier."""
    if "-->" in block[0][1]:
        return 0
    if len(block) > 1 and "-->" in block[1][1]:
        return 1
    return None


def _blamed_line(block: list[tuple[int, str]]) -> tuple[int, str]:
    """The line that should have been the time range, for a block that has none."""
    if len(block) > 1 and not _LOOKS_LIKE_TIME.match(block[0][1]):
        return block[1]  # the first line is an identifier, so the second was the timing
    return block[0]


def _next_cue_index(body: list[tuple[int, str]]) -> int | None:
    """Where a second cue starts inside a cue's text (its number, or its time range)."""
    for i, (_, line) in enumerate(body):
        if _TIMING.fullmatch(line):
            return i - 1 if i > 0 and body[i - 1][1].strip().isdigit() else i
    return None


def _seconds(stamp: str, name: str, number: int) -> float:
    parts = _TIME_PARTS.fullmatch(stamp)
    assert parts is not None  # _TIMING only captures what _TIME_PARTS matches
    return _stamp_seconds(stamp, *parts.groups(), name=name, number=number)


def _stamp_seconds(stamp: str, hours: str | None, minutes: str | None, seconds: str,
                   fraction: str, *, name: str, number: int) -> float:
    """A timestamp's parts in seconds; minutes and seconds past 59 are refused (a
    seconds-only inline stamp, with no minutes, may count past 59)."""
    if minutes is not None and (int(minutes) > 59 or int(seconds) > 59):
        raise InvalidCaptions(
            f"{name} line {number}: {_quote(stamp)} is not a valid time "
            "(minutes and seconds go up to 59)"
        )
    whole = int(hours or 0) * 3600 + int(minutes or 0) * 60 + int(seconds)
    return whole + int(fraction) / 10 ** len(fraction)


def _unrolled(body: list[tuple[int, str]], said: str, blink: bool) -> list[tuple[int, str]]:
    """A cue of rolling captions without what it repeats of the line ``said`` last (the
    last line with inline times of the cues before).

    YouTube's automatic captions roll: each cue shows the line before again, without
    times, above its own line of timed words, and between two such cues a cue of a few
    milliseconds shows the finished line alone. Drawn as written, every line would be
    said twice. So a leading line without times that is the line said last is dropped,
    and so is a ``blink``: a cue without times, shorter than SNAPSHOT_SECONDS, that only
    shows it. A file whose cues carry no inline times is never touched (a chorus sung
    twice is two cues of the same words, each kept), nor is a line that repeats words
    said without their own times (lyrics: ``yeah / Yeah``, then ``Yeah / we go``).
    """
    timed = [i for i, (_, line) in enumerate(body) if _INLINE_TIME.search(line)]
    lead = body[:timed[0]] if timed else body
    shown = _clean([line for _, line in lead], True)
    if not said or shown != said:
        return body  # nothing shown twice
    if timed:
        return body[timed[0]:]
    return [] if blink else body


def _clean(lines: list[str], vtt: bool) -> str:
    """Cue text without styling tags, one caption line per source line."""
    out = []
    for line in lines:
        line = _ASS_OVERRIDE.sub("", _TAG.sub("", line))
        if vtt:
            line = html.unescape(line)
        line = line.strip()
        if line:
            out.append(line)
    return "\n".join(out)


def _quote(line: str, limit: int = 60) -> str:
    line = line.strip()
    return repr(line if len(line) <= limit else line[: limit - 1] + "…")


# --- word times ------------------------------------------------------------------------------


def spread_words(texts: Sequence[str], start: float, end: float) -> list[Word]:
    """Words said one after another from ``start`` to ``end``, each for a share of the time
    in proportion to its length: for words a file gives one time for (a run of text after a
    VTT timestamp, a whisperX number, a cue with no word times at all)."""
    weights = [len(text) + 1 for text in texts]
    total = sum(weights) or 1
    words, done = [], 0
    for text, weight in zip(texts, weights, strict=True):
        first = start + (end - start) * done / total
        done += weight
        last = end if done == total else start + (end - start) * done / total
        words.append(Word(first, last, text))
    return words


def _timed_words(
    body: list[tuple[int, str]], start: float, end: float, name: str
) -> tuple[Word, ...]:
    """The words of a VTT cue whose text has inline timestamps, each from its timestamp
    (or the cue's start) to the next word's; none for a cue without timestamps.

    Text between two timestamps is a run of words said in that time, each for a share
    of it; text glued to a timestamp (karaoke syllables, ``hel<00:01.100>lo``) continues
    the word before it. A timestamp outside the cue or before the one before it is
    refused, naming its line."""
    runs: list[tuple[float, str]] = []  # (when, text said from then on)
    when, stamped = start, False
    for number, line in body:
        at = 0
        for match in _INLINE_TIME.finditer(line):
            runs.append((when, line[at : match.start()]))
            stamp = match.group(1)
            seconds = _inline_seconds(match, name, number)
            if not start <= seconds <= end:
                raise InvalidCaptions(
                    f"{name} line {number}: timestamp {stamp} is outside its cue "
                    f"({_clock(start)} --> {_clock(end)})"
                )
            if seconds < when:
                raise InvalidCaptions(
                    f"{name} line {number}: timestamp {stamp} comes before the one before it "
                    f"({_clock(when)}); inline timestamps go forward"
                )
            when, at, stamped = seconds, match.end(), True
        runs.append((when, line[at:] + "\n"))  # a line break parts words, as a space does
    if not stamped:
        return ()
    said: list[tuple[float, str]] = []  # (run time, word)
    glued = False  # whether the text so far ends inside a word
    for run_time, text in runs:
        for token in re.split(r"(\s+)", html.unescape(_TAG.sub("", text))):
            if not token:
                continue
            if token.isspace():
                glued = False
            elif glued and said:
                said[-1] = (said[-1][0], said[-1][1] + token)
            else:
                said.append((run_time, token))
                glued = True
    times = sorted({run_time for run_time, _ in said})
    words: list[Word] = []
    for index, run_time in enumerate(times):
        until = times[index + 1] if index + 1 < len(times) else end
        words += spread_words([text for t, text in said if t == run_time], run_time, until)
    return tuple(words)


def _inline_seconds(match: re.Match[str], name: str, number: int) -> float:
    return _stamp_seconds(match.group(1), *match.group(2, 3, 4, 5), name=name, number=number)


def _clock(seconds: float) -> str:
    """``seconds`` as a WebVTT time, 00:00:01.250."""
    millis = round(seconds * 1000)
    return f"{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:{millis // 1000 % 60:02d}." \
           f"{millis % 1000:03d}"


# --- Whisper-family JSON ---------------------------------------------------------------------


def parse_transcript(data: bytes | str, *, name: str = "captions") -> list[Cue]:
    """The cues of a Whisper-family JSON transcript, sorted by start, with their words.

    ``{"segments": [{"start", "end", "text", "words": [{"word", "start", "end"}]}]}``:
    a segment is a cue; a segment without words is shown as plain text (unless the
    file has a top-level ``"words"`` list, as OpenAI's ``verbose_json`` does, whose
    words are then the cue). A word without times is placed between its neighbours.
    """
    text = _decode(data, name)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidCaptions(
            f"{name}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except (ValueError, RecursionError):  # a number of thousands of digits; deep nesting
        raise InvalidCaptions(f"{name}: not JSON this service reads (too deeply nested, "
                              "or a number too long)") from None
    if not isinstance(document, dict):
        raise InvalidCaptions(f"{name}: expected a JSON object; {_JSON_FIX}")
    segments, words = document.get("segments"), document.get("words")
    if segments is None and words is None:
        raise InvalidCaptions(f'{name}: no "segments" or "words"; {_JSON_FIX}')
    cues: list[Cue] = []
    if segments is not None:
        items = _list(segments, "segments", name)
        if len(items) > MAX_CUES:
            raise InvalidCaptions(
                f"{name}: more than {MAX_CUES:,} segments; split the file or upload a shorter one"
            )
        cues = [cue for i, item in enumerate(items)
                if (cue := _segment(item, f"segments[{i}]", name)) is not None]
    if words is not None and not any(cue.words for cue in cues):
        timed = _words(_list(words, "words", name), "words", name, None, None)
        if timed:
            cues = [Cue(timed[0].start, timed[-1].end, " ".join(w.text for w in timed), timed)]
    if not cues:
        raise InvalidCaptions(f"{name}: no words found in the transcript; {_JSON_FIX}")
    if any(cue.words for cue in cues):  # segments without words among word-timed ones
        cues = [cue if cue.words else _spread_cue(cue) for cue in cues]
    cues.sort(key=lambda cue: (cue.start, cue.end))
    return cues


def _spread_cue(cue: Cue) -> Cue:
    return replace(cue, words=tuple(spread_words(cue.text.split(), cue.start, cue.end)))


def _segment(item: Any, where: str, name: str) -> Cue | None:
    """One segment as a cue (None when it holds nothing to show)."""
    if not isinstance(item, dict):
        raise InvalidCaptions(f"{name}: {where}: expected an object, got {_kind(item)}")
    start, end = _span(item, where, name)
    if item.get("words") is not None:
        words = _words(_list(item["words"], f"{where}.words", name), f"{where}.words", name,
                       start, end)
        if words:
            first = words[0].start if start is None else min(start, words[0].start)
            last = words[-1].end if end is None else max(end, words[-1].end)
            return Cue(first, last, " ".join(word.text for word in words), words)
    text = item.get("text")
    if text is not None and not isinstance(text, str):
        raise InvalidCaptions(f'{name}: {where}.text: expected text, got {_kind(text)}')
    text = " ".join((text or "").split())
    if not text:
        return None
    if start is None or end is None:
        raise InvalidCaptions(f'{name}: {where}: a segment without words needs "start" and "end"')
    return Cue(start, end, text) if end > start else None


def _words(
    items: list[Any], where: str, name: str, lo: float | None, hi: float | None
) -> tuple[Word, ...]:
    """The words of a segment (or of the whole file), every one timed: a word without
    times is spread with its untimed neighbours over the gap between the timed words
    around them (or the segment's ``lo`` and ``hi``)."""
    parsed: list[tuple[str, float | None, float | None]] = []  # (raw text, start, end)
    for i, item in enumerate(items):
        here = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise InvalidCaptions(f"{name}: {here}: expected an object, got {_kind(item)}")
        text = item.get("word")
        if not isinstance(text, str):
            raise InvalidCaptions(f'{name}: {here}: "word" is missing or not text')
        start, end = _span(item, here, name)
        parsed.append((text, start, end))
    # Whisper writes each word with the space before it (" Hello"): one written without,
    # after one written with, continues the word before (it was split into tokens).
    spaced = any(text[:1].isspace() for text, _, _ in parsed)
    merged: list[tuple[str, float | None, float | None]] = []
    for text, start, end in parsed:
        if spaced and merged and text.strip() and not text[:1].isspace():
            before, first, last = merged[-1]
            merged[-1] = (before + text, first if first is not None else start,
                          end if end is not None else last)
        elif text.strip():
            merged.append((text, start, end))
    return tuple(_timed(merged, lo, hi, where, name))


def _timed(
    parsed: list[tuple[str, float | None, float | None]],
    lo: float | None, hi: float | None, where: str, name: str,
) -> list[Word]:
    """Words with times for all, in order: a run of untimed words spread over the gap
    between the timed words around it, a word starting before the one before it moved
    to that one's start (so the words stay in the order written)."""
    words: list[Word] = []
    index = 0
    while index < len(parsed):
        run = index
        while run < len(parsed) and parsed[run][1] is None and parsed[run][2] is None:
            run += 1
        if run > index:  # parsed[index:run] have no times
            before = words[-1].end if words else lo
            after = _first_time(parsed[run]) if run < len(parsed) else hi
            before = after if before is None else before
            after = before if after is None else after
            if before is None or after is None:
                raise InvalidCaptions(
                    f"{name}: {where}[{index}]: a word without times, and none around it has any"
                )
            texts = [part for text, _, _ in parsed[index:run] for part in text.split()]
            words += spread_words(texts, before, max(after, before))
            index = run
            continue
        text, start, end = parsed[index]
        first = _first_time(parsed[index])
        last = end if end is not None else first
        first = max(first, words[-1].start) if words else first
        words += spread_words(text.split(), first, max(last, first))
        index += 1
    return words


def _first_time(parsed: tuple[str, float | None, float | None]) -> float:
    """When a word with at least one time starts: its start, or else its end."""
    _, start, end = parsed
    found = start if start is not None else end
    assert found is not None
    return found


def _span(item: dict[str, Any], where: str, name: str) -> tuple[float | None, float | None]:
    """``(start, end)`` of a segment or word, each None when absent; refused when not a
    finite number of seconds, or when the end is before the start."""
    start, end = (_seconds_of(item.get(key), f"{where}.{key}", name) for key in ("start", "end"))
    if start is not None and end is not None and end < start:
        raise InvalidCaptions(f"{name}: {where}: end before start (start {start:g}, end {end:g})")
    return start, end


def _seconds_of(value: Any, where: str, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidCaptions(f"{name}: {where}: expected seconds as a number, got {_kind(value)}")
    try:
        seconds = float(value)
    except OverflowError:  # an integer too large for any clock
        seconds = math.inf
    if not math.isfinite(seconds):
        raise InvalidCaptions(f"{name}: {where}: not a finite number of seconds")
    if seconds < 0:
        raise InvalidCaptions(f"{name}: {where}: {seconds:g} is before the start of the audio")
    return seconds


def _list(value: Any, where: str, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidCaptions(f"{name}: {where}: expected a list, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    """What a JSON value is, for messages: 'a number', 'text', 'null'..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    kinds = {str: "text", int: "a number", float: "a number", list: "a list", dict: "an object"}
    return kinds.get(type(value), type(value).__name__)
