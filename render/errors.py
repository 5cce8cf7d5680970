"""Errors a render can end with, and turning ffmpeg's stderr into words for people.

::

    RenderError                  code "render_error"
    ├── InvalidAudio             code "invalid_audio": the input is not usable audio
    ├── InvalidImage             code "invalid_image": a background or artwork is not an image
    ├── InvalidVideo             code "invalid_video": an intro, outro or background video
    ├── InvalidCaptions          code "invalid_captions": (render.captions) with the line number
    ├── RenderCanceled           code "canceled": the caller's ``should_stop`` said so
    └── RenderFailed             code "render_failed": ffmpeg failed while encoding

The worker reports ``code`` and ``message`` to the API as they are, so a message
must make sense to the person who uploaded the file and must not leak the
worker's temp paths: ffmpeg's text is reduced to its last meaningful lines with
every local path replaced by its file name.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import IO

#: How much of ffmpeg's stderr a RenderFailed message carries.
MAX_DETAIL_CHARS = 500
#: Formats we tell people to upload instead.
SUPPORTED_FORMATS = "WAV, MP3, M4A, OGG or FLAC"

StrPath = str | PathLike[str]


class RenderError(Exception):
    """Base of every error the render package raises on purpose."""

    code: str = "render_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidAudio(RenderError):
    """The input cannot be decoded as audio, has no audio stream, or is empty."""

    code = "invalid_audio"

    @classmethod
    def from_ffmpeg(cls, stderr: Iterable[str], paths: Iterable[StrPath] = ()) -> InvalidAudio:
        """The message for a decode that ffmpeg refused, with ffmpeg's reason in it."""
        lines = clean_lines(stderr, paths)
        if any("matches no streams" in line for line in lines):
            return cls(f"The uploaded file has no audio stream. Upload a {SUPPORTED_FORMATS} file.")
        reason = last_reason(lines) or "no error message"
        return cls(
            f"The uploaded file could not be decoded as audio (ffmpeg: {reason}). "
            f"Upload a {SUPPORTED_FORMATS} file."
        )

    @classmethod
    def too_long(cls, limit: float) -> InvalidAudio:
        return cls(
            f"The audio is longer than the limit of {limit / 60:g} minutes. "
            "Upload a shorter file, or render a part of it with start and end."
        )

    @classmethod
    def unsupported(cls, what: str) -> InvalidAudio:
        return cls(f"The audio has {what}. Upload ordinary audio (up to 8 channels, "
                   "8 to 192 kHz).")

    @classmethod
    def empty(cls) -> InvalidAudio:
        return cls(
            "The uploaded file contains no audio: it is empty or its audio lasts zero "
            f"seconds. Upload a {SUPPORTED_FORMATS} file with some sound in it."
        )


class InvalidImage(RenderError):
    """A background or artwork upload that is not a readable image."""

    code = "invalid_image"


class InvalidVideo(RenderError):
    """An intro, outro or background video upload that cannot be used: not a video,
    over the limits (length, size, frame rate), or undecodable."""

    code = "invalid_video"


class RenderCanceled(RenderError):
    """The caller asked the render to stop (its job was canceled); nothing is written."""

    code = "canceled"


class RenderFailed(RenderError):
    """ffmpeg failed while encoding: not the user's fault, worth a retry or a bug report."""

    code = "render_failed"

    @classmethod
    def from_ffmpeg(
        cls, what: str, stderr: Iterable[str], paths: Iterable[StrPath] = ()
    ) -> RenderFailed:
        detail = detail_text(clean_lines(stderr, paths)) or "no error message"
        return cls(f"{what} failed (ffmpeg: {detail}).")


# "[in#0 @ 0x55da31bb2d00] " and "[aist#0:0/mp3 @ 0x...] " prefixes carry no meaning for people.
_CONTEXT_PREFIX = re.compile(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*")
# ffmpeg's closing summaries that only repeat the line before them.
_BOILERPLATE = re.compile(
    r"^(Error opening (input|output) file .*\.$|To ignore this, add a trailing|"
    r"Error parsing options for|Conversion failed!?$|Exiting normally)"
)
# What ffmpeg says when the input, not the output, is what it cannot handle.
_INPUT_FAILURE = re.compile(
    r"Error opening input|matches no streams|Invalid data found|Error while decoding|"
    r"could not find codec parameters|Decoding error|End of file|not on whitelist|"
    r"Error while opening decoder"
)
# "Error opening input files: Invalid data found ..." -> "Invalid data found ..."
_ERROR_LEAD = re.compile(r"^Error [^:]{0,60}: (?=\S)")


def clean_lines(stderr: Iterable[str], paths: Iterable[StrPath] = ()) -> list[str]:
    """ffmpeg's stderr lines without context prefixes, blanks, repeats or local paths."""
    replacements = sorted(
        ((str(p), Path(p).name) for p in paths if str(p)), key=lambda pair: -len(pair[0])
    )
    out: list[str] = []
    for raw in stderr:
        line = _CONTEXT_PREFIX.sub("", raw.strip())
        for path, name in replacements:
            line = line.replace(path, name)
        if line and (not out or out[-1] != line):
            out.append(line)
    return out


def blames_input(lines: list[str]) -> bool:
    """Whether ffmpeg failed on reading the input rather than on writing the output."""
    return any(_INPUT_FAILURE.search(line) for line in lines)


def last_reason(lines: list[str]) -> str:
    """ffmpeg's final word on why it failed, e.g. 'Invalid data found when processing input'."""
    meaningful = [line for line in lines if not _BOILERPLATE.match(line)]
    if not meaningful:
        return ""
    return _ERROR_LEAD.sub("", meaningful[-1]).rstrip(".")


def detail_text(lines: list[str], limit: int = MAX_DETAIL_CHARS) -> str:
    """The last meaningful lines joined on one line, at most ``limit`` characters."""
    meaningful = [line for line in lines if not _BOILERPLATE.match(line)] or lines
    text = ""
    for line in reversed(meaningful):
        candidate = f"{line}; {text}" if text else line
        if len(candidate) > limit:
            if not text:  # a single huge line: keep its end, where ffmpeg says what broke
                text = "…" + line[-(limit - 1) :]
            break
        text = candidate
    return text


class StderrTail:
    """Drains a child's stderr on a thread, keeping the last lines for error messages.

    A pipe nobody reads fills up (64 KiB on Linux) and then blocks ffmpeg forever;
    keeping only the tail keeps memory flat however chatty ffmpeg gets.
    """

    def __init__(self, stream: IO[bytes], max_lines: int = 40) -> None:
        self._stream = stream
        self._lines: deque[str] = deque(maxlen=max_lines)
        self._thread = threading.Thread(target=self._drain, name="ffmpeg-stderr", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        try:
            with self._stream:
                for raw in self._stream:
                    # ffmpeg ends progress lines with \r; split so the tail stays readable
                    for part in raw.decode("utf-8", "replace").split("\r"):
                        if part.strip():
                            self._take(part.rstrip())
        finally:
            self._closed()

    def _take(self, line: str) -> None:
        """One line of stderr (a subclass may sort it first)."""
        self._lines.append(line)

    def _closed(self) -> None:
        """The child closed stderr (it exited), or reading it failed."""

    def lines(self, timeout: float = 5.0) -> list[str]:
        """The kept lines, once the child closed stderr (or ``timeout`` passed)."""
        self._thread.join(timeout)
        return list(self._lines)
