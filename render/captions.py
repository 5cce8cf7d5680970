"""Caption files (SRT and WebVTT) read into timed cues for drawing over the video.

People upload whatever their editor or transcription service exported, so the
parser is lenient about what does not change the meaning (CRLF, BOM, cue
numbers, VTT cue settings, styling tags, a comma or a dot before the
milliseconds) and strict about what does: a time range it cannot read is an
``InvalidCaptions`` naming the line, never a silently missing cue.

::

    RenderError                  (render.errors)
    └── InvalidCaptions          code "invalid_captions": the file is not usable captions
"""

from __future__ import annotations

import codecs
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from render.errors import RenderError

#: Larger uploads are refused: a 2 hour film's SRT is about 150 KB.
MAX_CAPTION_BYTES = 2 * 1024 * 1024
#: More cues than any audiogram can show; refusing keeps a hostile file cheap.
MAX_CUES = 20_000

_FIX = "upload an SRT or WebVTT file"


class InvalidCaptions(RenderError):
    """The captions file cannot be read: not text, a malformed cue, no cues, too big."""

    code = "invalid_captions"


@dataclass(frozen=True)
class Cue:
    """Text shown from ``start`` up to (not including) ``end``, in seconds."""

    start: float
    end: float
    text: str


# [hours:]minutes:seconds[,.]fraction: SRT writes a comma, VTT a dot, files in the wild mix them.
_TIME = r"(?:\d+:)?\d{1,2}:\d{1,2}[,.]\d{1,3}"
_TIME_PARTS = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2})[,.](\d{1,3})")
# Anything after the end time is VTT cue settings (align:start) or SRT coordinates (X1:…): ignored.
_TIMING = re.compile(rf"\s*({_TIME})\s*-->\s*({_TIME})(?:[ \t].*)?")
# <i>, </b>, <c.yellow>, <v Speaker>, <00:00:01.500>, <font color="red">; not "a < b".
_TAG = re.compile(r"</?[A-Za-z0-9][^<>]*>")
# SSA/ASS override blocks that SRT files carry over from Aegisub: {\an8}, {\i1}.
_ASS_OVERRIDE = re.compile(r"\{\\[^}]*\}")
_LOOKS_LIKE_TIME = re.compile(r"\s*\d+\s*:\s*\d")
_VTT_HEADER = re.compile(r"WEBVTT(?:[ \t].*)?")
_VTT_BLOCK = re.compile(r"(?:NOTE|STYLE|REGION)(?:[ \t].*)?")
# C0 controls that never occur in a text file (tab, LF, FF and CR do).
_BINARY = re.compile(r"[\x00-\x08\x0b\x0e-\x1f]")


def parse_captions(data: bytes | str, *, name: str = "captions") -> list[Cue]:
    """The cues of an SRT or WebVTT file, sorted by start; ``name`` leads every error message."""
    text = _decode(data, name)
    blocks = _blocks(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    vtt = bool(blocks) and _VTT_HEADER.fullmatch(blocks[0][0][1]) is not None
    example = "00:00:01.000 --> 00:00:04.000" if vtt else "00:00:01,000 --> 00:00:04,000"
    if vtt:
        header = blocks.pop(0)
        # a first cue written straight under the header, without the blank line
        arrow = next((i for i, (_, line) in enumerate(header) if "-->" in line), None)
        if arrow is not None:
            blocks.insert(0, header[arrow:])

    cues: list[Cue] = []
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
        caption = _clean([text for _, text in body], vtt)
        if caption and end > start:  # zero-length cues never show
            if len(cues) == MAX_CUES:
                raise InvalidCaptions(
                    f"{name}: more than {MAX_CUES:,} cues; split the file or upload a shorter one"
                )
            cues.append(Cue(start, end, caption))
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
        if stop > start:
            shifted.append(Cue(start, stop, cue.text))
    return shifted


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


def _blocks(lines: list[str]) -> list[list[tuple[int, str]]]:
    """Runs of non-blank lines as [(1-based line number, line)]: the unit of both formats."""
    blocks: list[list[tuple[int, str]]] = []
    block: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            block.append((number, line.rstrip()))
        elif block:
            blocks.append(block)
            block = []
    if block:
        blocks.append(block)
    return blocks


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
    hours, minutes, seconds, fraction = parts.groups()
    if int(minutes) > 59 or int(seconds) > 59:
        raise InvalidCaptions(
            f"{name} line {number}: {_quote(stamp)} is not a valid time "
            "(minutes and seconds go up to 59)"
        )
    whole = int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)
    return whole + int(fraction) / 10 ** len(fraction)


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
