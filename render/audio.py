"""Decoding audio with the bundled ffmpeg, for drawing and for measuring.

Production has no system ffmpeg or ffprobe, only the binary that imageio-ffmpeg
ships, so everything here runs that binary as a subprocess. ffmpeg decodes
anything it can open (MP3, AAC/M4A, Ogg, FLAC, WAV, the audio of a video) to
raw PCM on stdout; we read it in blocks while a thread drains stderr, so neither
pipe can fill up and stall ffmpeg, and a long file never sits in a pipe buffer.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import imageio_ffmpeg
import numpy as np

from render.errors import InvalidAudio, InvalidVideo, StderrTail, StrPath

#: Bytes read from ffmpeg's stdout at a time (64 Ki float32 samples).
BLOCK_BYTES = 1 << 18

_SAMPLE = np.dtype("<f4")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: ask the kernel to SIGKILL this ffmpeg when the process that started it
    dies, even by SIGKILL (a worker child killed mid-render leaves no orphan)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


PR_SET_PDEATHSIG = 1


@functools.cache
def _setpriv() -> str | None:
    """util-linux's ``setpriv``, when it can set the parent-death signal here.

    ``setpriv --pdeathsig KILL -- ffmpeg …`` asks the kernel what `_die_with_parent`
    asks, from the child's side of exec. With no Python code to run between fork and
    exec, subprocess can vfork instead of copying the whole worker process: measured
    in a worker, 1.2 ms of CPU a start instead of 7.
    """
    found = shutil.which("setpriv") if sys.platform == "linux" else None
    if found is None:
        return None
    found = os.path.abspath(found)
    try:
        answer = subprocess.run(  # noqa: S603
            [found, "--pdeathsig", "KILL", "--", "/bin/sh", "-c", "exit 0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return found if answer.returncode == 0 else None


def start_ffmpeg(command: list[str], *, stdin: int, stdout: int) -> subprocess.Popen[bytes]:
    """Every ffmpeg we run: stderr piped (read it with StderrTail), and on Linux
    killed by the kernel if the process that started it dies (through ``setpriv``
    where there is one, else from Python between fork and exec)."""
    extra: dict[str, Any] = {}
    if (setpriv := _setpriv()) is not None:
        if not os.access(command[0], os.X_OK):  # as Popen would say, not setpriv's exit 126
            raise PermissionError(errno.EACCES, "ffmpeg cannot be executed", command[0])
        command = [setpriv, "--pdeathsig", "KILL", "--", *command]
    elif sys.platform == "linux":
        extra["preexec_fn"] = _die_with_parent
    return subprocess.Popen(  # noqa: S603
        command, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, **extra
    )


def reap(process: subprocess.Popen[bytes]) -> None:
    """Never leave an ffmpeg behind, whatever went wrong (or right) before."""
    if process.poll() is None:
        process.kill()
    process.wait()
    for stream in (process.stdin, process.stdout):
        if stream is not None and not stream.closed:
            try:
                stream.close()
            except BrokenPipeError:
                pass


@functools.cache
def ffmpeg_exe() -> str:
    """Path of imageio-ffmpeg's bundled ffmpeg (downloaded once if the wheel lacks it)."""
    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_input(path: StrPath) -> str:
    """``path`` as an ffmpeg URL, so a name like ``a:b.mp3`` is not read as a protocol."""
    return f"file:{path}"


#: Demuxers an uploaded file may be read with: audio containers only. No playlist
#: (hls, concat), image or device demuxer can be made to open other files or URLs.
AUDIO_FORMATS = (
    "mp3,wav,w64,flac,ogg,aac,ac3,eac3,aiff,caf,asf,amr,au,wv,ape,tta,"
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm"
)


def untrusted_input(path: StrPath) -> list[str]:
    """``-i`` for a file a user sent: only the ``file`` protocol, only audio demuxers."""
    return [
        "-protocol_whitelist", "file", "-format_whitelist", AUDIO_FORMATS,
        "-i", ffmpeg_input(path),
    ]  # fmt: skip


def path_aliases(*paths: StrPath) -> list[StrPath]:
    """Every spelling of ``paths`` that can appear in ffmpeg's messages, to hide them."""
    aliases: list[StrPath] = []
    for path in paths:
        aliases += [ffmpeg_input(path), path, Path(path).resolve()]
    return aliases


def require_audio_file(path: Path) -> None:
    """Fail early and clearly: a missing file is the caller's bug, an empty one the user's."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no such audio file: {path}")
    if Path(path).stat().st_size == 0:
        raise InvalidAudio.empty()


def decode_stream(
    path: Path,
    *,
    sample_rate: int,
    start: float,
    duration: float | None,
    sink: Callable[[bytes], None],
) -> None:
    """Run ffmpeg on ``path`` and hand its mono float32 PCM to ``sink`` in blocks.

    Nothing is kept: memory stays flat however long the audio.
    """
    require_audio_file(path)
    if duration is not None and duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    window: list[str] = []
    if start > 0:
        window += ["-ss", f"{start:.6f}"]
    if duration is not None:
        window += ["-t", f"{duration:.6f}"]
    command = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error",
        *window, *untrusted_input(path),
        "-map", "0:a:0", "-vn", "-sn", "-dn",
        "-ac", "1", "-ar", str(sample_rate), "-c:a", "pcm_f32le", "-f", "f32le", "pipe:1",
    ]  # fmt: skip
    process = start_ffmpeg(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None and process.stderr is not None
        stderr = StderrTail(process.stderr)
        carry = b""
        with process.stdout:
            # read(n) on the buffered pipe returns n bytes until EOF; only the last
            # block can end mid-sample, so carry the remainder forward anyway
            while block := process.stdout.read(BLOCK_BYTES):
                block = carry + block
                usable = len(block) - len(block) % _SAMPLE.itemsize
                carry = block[usable:]
                if usable:
                    sink(block[:usable])
        returncode = process.wait()
        if returncode != 0:
            raise InvalidAudio.from_ffmpeg(stderr.lines(), path_aliases(path))
    finally:
        reap(process)


_DURATION_LINE = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")


def header_duration(path: Path) -> float | None:
    """ffmpeg's estimate of the length from the container header; None when it has none.

    Cheap (nothing is decoded) but only an estimate: good for a progress bar,
    never for a result: the decoded sample count is the exact answer. It also
    refuses, as InvalidAudio, a stream no podcast has and only a decompression
    bomb needs: more than MAX_CHANNELS channels, or a rate outside 8..192 kHz.
    """
    lines = HeaderLines()  # the header's own lines, as a prepare reads them
    for line in read_header([*LEVELED_LOG, *untrusted_input(path)]).splitlines():
        lines.take(line)
    check_stream(lines.text)
    return header_seconds(lines.text)


#: The longest wait for ffmpeg to have read an input's header, seconds.
HEADER_SECONDS = 60.0


def header_too_slow() -> str:
    """What a file whose header ffmpeg did not read within HEADER_SECONDS is told."""
    return (f"ffmpeg could not read the file's header within {HEADER_SECONDS:g} seconds. "
            "Upload an ordinary file.")


def read_header(input_args: list[str],
                refuse: type[InvalidAudio] | type[InvalidVideo] = InvalidAudio) -> str:
    """What ffmpeg prints of an input's header (``input_args``: its ``-i`` and the
    options before it), nothing decoded; ``refuse`` (the input's error) when ffmpeg
    has not read it within HEADER_SECONDS."""
    try:
        result = subprocess.run(  # noqa: S603
            [ffmpeg_exe(), "-hide_banner", "-nostdin", *input_args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=HEADER_SECONDS,
            # without an output file ffmpeg always exits 1 after printing the header
            check=False,
        )
    except subprocess.TimeoutExpired:  # subprocess.run has killed it
        raise refuse(header_too_slow()) from None
    return result.stderr.decode("utf-8", "replace")


#: ffmpeg's log level for a run whose input header is read from its own stderr
#: (`HeaderedStderr`): info, each line tagged with its level.
LEVELED_LOG = ("-loglevel", "level+info")
#: "[in#0 @ 0x55d…] [dec:mp3 @ 0x55e…] [error] text" or "[info] text": the contexts
#: (none to two), the level, the text. A line without them continues the line before
#: (a tag's value of several lines), at its level.
_LEVELED_LINE = re.compile(r"^((?:\[[^\]]*@ 0x[0-9a-f]+\] ){0,2})\[(\w+)\] ?(.*)$")
#: The levels ``-v error`` prints, which the tail keeps.
_ERROR_LEVELS = frozenset({"error", "fatal", "panic"})
#: The header lines that matter: the length and the streams.
_HEADER_LINE = re.compile(r"^\s*(Duration: |Stream #)")
_AUDIO_LINE = re.compile(r"Stream #.*: Audio: ")
#: Opens a block of tags, whose keys and values a file chooses: nothing in it counts.
_METADATA = "Metadata:"
#: The first line after the input's header.
_AFTER_HEADER = ("Stream mapping:", "Output #0")
#: The most header lines kept (a file may list thousands of streams).
MAX_HEADER_LINES = 64


class HeaderLines:
    """Sorts the stderr lines of an ffmpeg run started with `LEVELED_LOG`: the
    input's header until it ends (only its own ``Duration:`` and ``Stream #`` lines),
    and the errors (what ``-v error`` prints).

    Only the header's own lines count: not a tag's key or value (they are indented
    under a ``Metadata:`` line, or continue one on lines of their own), so a file
    cannot name a stream it does not have.
    """

    def __init__(self) -> None:
        self.kept: list[str] = []
        #: The header has ended (its stream mapping or output began).
        self.ended = False
        self._audio_kept = False
        #: The indent of the ``Metadata:`` line whose tags are being printed, if any.
        self._tags_at: int | None = None
        self._level = "error"

    @property
    def text(self) -> str:
        return "\n".join(self.kept)

    def take(self, line: str) -> str | None:
        """Keep ``line`` if it is the header's; an error line is returned, without its
        level tag (its contexts kept, as ``-v error`` prints them)."""
        match = _LEVELED_LINE.match(line)
        if match is None:  # the rest of the line before (a tag's value): its level
            context, level, text, continued = "", self._level, line, True
        else:
            (context, level, text), continued = match.groups(), False
        self._level = level
        if level == "info" and not self.ended:
            self._header_line(text, continued)
        elif level in _ERROR_LEVELS:
            return f"{context}{text}"
        return None

    def _header_line(self, text: str, continued: bool) -> None:
        if text.startswith(_AFTER_HEADER):
            self.ended = True
            return
        indent = len(text) - len(text.lstrip())
        if self._tags_at is not None and (continued or indent > self._tags_at):
            return  # a tag
        self._tags_at = indent if text.strip() == _METADATA else None
        if self._tags_at is None and _HEADER_LINE.match(text):
            audio = not self._audio_kept and _AUDIO_LINE.search(text) is not None
            # the first audio stream is kept however many lines came before it
            if audio or len(self.kept) < MAX_HEADER_LINES:
                self.kept.append(text)
                self._audio_kept = self._audio_kept or audio


class HeaderedStderr(StderrTail):
    """The stderr of an ffmpeg run started with `LEVELED_LOG`: the input's header
    (`HeaderLines`) as soon as ffmpeg has printed it, and a tail of its errors alone,
    for the same messages as any other run.

    So one run both checks an upload's header and decodes it. Each run of the bundled
    ffmpeg costs about 12 ms of CPU before it reads a byte (it is one large static
    binary), which was a third of a short job's work. The caller stops the run as
    soon as the header fails its checks; by then ffmpeg may have decoded a little,
    never more than its ``-t`` cap.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._header = HeaderLines()
        self._header_read = threading.Event()
        super().__init__(stream)

    def _take(self, line: str) -> None:
        error = self._header.take(line)
        if error is not None:
            self._lines.append(error)
        if self._header.ended:
            self._header_read.set()

    def _closed(self) -> None:
        self._header_read.set()  # ffmpeg ended before its output began: what it had said

    def header(self) -> str:
        """The input's header (its ``Duration:`` and ``Stream #`` lines) once ffmpeg has
        read it or exited, after checking its first audio stream (`check_stream`)."""
        if not self._header_read.wait(HEADER_SECONDS):
            raise InvalidAudio(header_too_slow())
        header = self._header.text
        check_stream(header)
        return header


def header_seconds(header: str) -> float | None:
    """The ``Duration:`` of a header `read_header` returned, or None when it has none."""
    match = _DURATION_LINE.search(header)
    if not match:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


#: Limits on the first audio stream, checked from the header before decoding.
MAX_CHANNELS = 8
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 192000
_STREAM_LINE = re.compile(r"Audio: [^,\n]+, (\d+) Hz, ([^,\n]+)")
_NAMED_LAYOUTS = {"mono": 1, "stereo": 2, "quad": 4, "hexagonal": 6, "octagonal": 8}


def check_stream(header: str) -> None:
    """Refuse a first audio stream with too many channels or an odd sample rate."""
    match = _STREAM_LINE.search(header)
    if not match:
        return  # no audio stream: decoding says so, with ffmpeg's reason
    rate, layout = int(match.group(1)), match.group(2).strip()
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise InvalidAudio.unsupported(f"a sample rate of {rate} Hz")
    channels = _channel_count(layout)
    if channels > MAX_CHANNELS:
        raise InvalidAudio.unsupported(f"{channels} channels")


def _channel_count(layout: str) -> int:
    if counted := re.match(r"(\d+) channels", layout):
        return int(counted.group(1))
    if dotted := re.match(r"\d+(?:\.\d+)+", layout):  # 5.1, 7.1.4, 9.1.6 ...
        return sum(int(part) for part in dotted.group(0).split("."))
    return _NAMED_LAYOUTS.get(layout.split("(")[0], 2)
