"""Rendering: audio in, MP4 (or a prepared WAV) out, with progress.

The worker calls ``render_video`` and ``prepare_audio``; nothing else here is
public. A render decodes the audio once to a small mono signal (so a file ffmpeg
cannot read fails as InvalidAudio before any encoder starts), draws every frame
with numpy into one preallocated RGB buffer and pipes it to the bundled ffmpeg,
which encodes H.264 and muxes the original audio as AAC.

Exactly ceil(duration x fps) frames are written and ``-shortest`` is not used:
with it ffmpeg queues raw frames waiting for the audio to end (+440 MiB at 720p).
"""

from __future__ import annotations

import math
import subprocess
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from render.audio import (
    ANALYSIS_RATE,
    decode_mono,
    ffmpeg_exe,
    ffmpeg_input,
    header_duration,
    path_aliases,
    require_audio_file,
)
from render.errors import InvalidAudio, RenderFailed, StderrTail, blames_input
from render.spec import RenderSpec

ProgressCallback = Callable[[float], None]
"""Called with the fraction done, 0..1: monotonic, at most about once per percent."""

#: Seconds of audio across the width of a "wave" frame, centred on the frame's time.
WAVE_WINDOW_SECONDS = 1.0
#: Share of the half-height the loudest peak of the clip reaches.
WAVE_HEADROOM = 0.85
#: The waveform's peaks are measured over this much audio...
ENVELOPE_SPAN_SECONDS = 0.02
#: ...every this often, and interpolated in between.
ENVELOPE_HOP_SECONDS = 0.005
#: Levels of anti-aliasing for the waveform's top and bottom edges.
EDGE_LEVELS = 16
#: Audio this much past a frame boundary does not get a frame of its own.
FRAME_SLACK_SECONDS = 0.001
#: Sample rate of prepared audio: what editors and the video encoder expect.
PREPARED_RATE = 44100

_X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p"]
_AAC = ["-c:a", "aac", "-b:a", "160k", "-af", "aformat=channel_layouts=mono|stereo"]


@dataclass(frozen=True)
class RenderResult:
    """What ``render_video`` wrote."""

    duration: float  # seconds of video written: the audio's, or max_seconds (see render_video)
    width: int
    height: int
    fps: int
    frames: int


@dataclass(frozen=True)
class PreparedAudio:
    """What ``prepare_audio`` wrote: 16-bit PCM WAV."""

    duration: float
    sample_rate: int  # 44100
    channels: int


def render_video(
    audio_path: Path,
    out_path: Path,
    spec: RenderSpec,
    *,
    max_seconds: float | None = None,
    progress: ProgressCallback | None = None,
) -> RenderResult:
    """Write an MP4 of ``spec``'s animation over the audio at ``audio_path``.

    ``max_seconds`` keeps only the start of the audio (previews). The clip lasts
    as long as the audio (or ``max_seconds``); the video track covers it with
    whole frames, so the file can be up to one frame longer.
    Raises InvalidAudio when the input is not usable audio, RenderFailed when
    ffmpeg fails to encode; a failed render leaves no output file behind.
    """
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be positive, got {max_seconds}")
    report = _Progress(progress)
    decoded = decode_mono(Path(audio_path), sample_rate=ANALYSIS_RATE, duration=max_seconds)
    # resampling to the analysis rate can add a sample: 2.5 s at 24 fps is 60 frames, not 61
    frames = max(1, math.ceil((decoded.duration - FRAME_SLACK_SECONDS) * spec.fps))
    wave_frames = WaveFrames(decoded.samples, ANALYSIS_RATE, spec)
    report(0.0)

    command = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-v", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{spec.width}x{spec.height}",
        "-framerate", str(spec.fps), "-i", "pipe:0",
        "-t", f"{decoded.duration:.6f}", "-i", ffmpeg_input(audio_path),
        "-map", "0:v:0", "-map", "1:a:0", *_X264, *_AAC,
        "-movflags", "+faststart", "-y", ffmpeg_input(out_path),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    finished = False
    try:
        assert process.stdin is not None and process.stderr is not None
        stderr = StderrTail(process.stderr)
        broken = False
        try:
            for index in range(frames):
                process.stdin.write(wave_frames.draw(index / spec.fps))
                # 1.0 waits for ffmpeg to finish the file, so consumers can trust it
                report(min((index + 1) / frames, 0.99))
            process.stdin.close()
        except BrokenPipeError:  # ffmpeg died; its stderr says why
            broken = True
        returncode = process.wait()
        if broken or returncode != 0:
            raise RenderFailed.from_ffmpeg(
                "Encoding the video", stderr.lines(), path_aliases(audio_path, out_path)
            )
        finished = True
    finally:
        _reap(process)
        if not finished:
            Path(out_path).unlink(missing_ok=True)
    report(1.0)
    return RenderResult(
        duration=decoded.duration,
        width=spec.width,
        height=spec.height,
        fps=spec.fps,
        frames=frames,
    )


def prepare_audio(
    audio_path: Path, out_path: Path, *, progress: ProgressCallback | None = None
) -> PreparedAudio:
    """Decode the audio to a 44.1 kHz 16-bit PCM WAV: mono stays mono, more than 2 channels
    are downmixed to stereo. The duration is counted from the samples written.
    """
    require_audio_file(Path(audio_path))
    report = _Progress(progress)
    report(0.0)
    estimate = header_duration(Path(audio_path))
    command = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-v", "error",
        "-progress", "pipe:1", "-i", ffmpeg_input(audio_path),
        "-map", "0:a:0", "-vn", "-sn", "-dn",
        "-af", f"aformat=sample_fmts=s16:sample_rates={PREPARED_RATE}:"
        "channel_layouts=mono|stereo",
        "-c:a", "pcm_s16le", "-map_metadata", "-1", "-fflags", "+bitexact",
        "-f", "wav", "-y", ffmpeg_input(out_path),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    finished = False
    try:
        assert process.stdout is not None and process.stderr is not None
        stderr = StderrTail(process.stderr)
        with process.stdout:
            for line in process.stdout:  # "key=value" lines, a block every half second
                key, _, value = line.decode("ascii", "replace").strip().partition("=")
                if key == "out_time_us" and estimate and value.isdigit():
                    report(min(int(value) / 1e6 / estimate, 0.99))
        if process.wait() != 0:
            lines = stderr.lines()
            aliases = path_aliases(audio_path, out_path)
            if blames_input(lines):
                raise InvalidAudio.from_ffmpeg(lines, aliases)
            raise RenderFailed.from_ffmpeg("Writing the WAV file", lines, aliases)
        with wave.open(str(out_path), "rb") as written:
            channels, rate = written.getnchannels(), written.getframerate()
            count = written.getnframes()
        if not count:
            raise InvalidAudio.empty()
        finished = True
    finally:
        _reap(process)
        if not finished:
            Path(out_path).unlink(missing_ok=True)
    report(1.0)
    return PreparedAudio(duration=count / rate, sample_rate=rate, channels=channels)


class WaveFrames:
    """The "wave" style: the min/max envelope of about a second of audio around
    each frame's time, as a band centred on the canvas, scrolling right to left.

    The envelope is computed once for the whole clip at one column per pixel, so a
    frame is a slice of it; drawing is a few whole-array numpy operations into one
    reused buffer (~2 ms at 720p; x264 takes most of a render's time). Colours go
    through a small palette: 0 is the background, 1 the waveform, the rest blend
    the two for the anti-aliased top and bottom pixel of each column.
    """

    def __init__(self, samples: np.ndarray, sample_rate: int, spec: RenderSpec) -> None:
        width, height = spec.width, spec.height
        self._width = width
        self._column_seconds = WAVE_WINDOW_SECONDS / width
        duration = samples.size / sample_rate
        columns = math.ceil(duration / self._column_seconds)
        high, low = _envelope(samples, sample_rate, columns, self._column_seconds)

        peak = float(max(high.max(initial=0.0), -low.min(initial=0.0)))
        centre = height / 2
        scale = WAVE_HEADROOM * centre / peak if peak > 1e-4 else 0.0  # silence: a flat line
        # pad a frame's width of silence on both sides: the first and last
        # frames look past the ends of the audio
        pad = np.zeros(width, np.float32)
        high = np.concatenate([pad, high, pad])
        low = np.concatenate([pad, low, pad])
        # y grows downwards; keep at least a 2 px line through the centre
        top = np.minimum(centre - high * scale, centre - 1.0)
        bottom = np.maximum(centre - low * scale, centre + 1.0)

        # rows fully covered are [ceil(top), floor(bottom)); the pixel above and the
        # one below are partly covered, and get a blend in proportion
        self._top = np.ceil(top).astype(np.int16)
        self._bottom = np.floor(bottom).astype(np.int16)
        self._top_edge = np.clip(self._top - 1, 0, height - 1)
        self._bottom_edge = np.clip(self._bottom, 0, height - 1)
        self._top_shade = _shade_index(self._top - top)
        self._bottom_shade = _shade_index(bottom - self._bottom)
        self._pad = width

        background = np.array(spec.background_rgb, np.float32)
        colour = np.array(spec.rgb, np.float32)
        levels = np.arange(1, EDGE_LEVELS, dtype=np.float32)[:, None] / EDGE_LEVELS
        blends = background + (colour - background) * levels
        self._palette = np.rint(np.vstack([background, colour, blends])).astype(np.uint8)

        self._rows = np.arange(height, dtype=np.int16)[:, None]
        self._columns = np.arange(width)
        self._inside = np.empty((height, width), np.bool_)
        self._below = np.empty((height, width), np.bool_)
        self._frame = np.empty((height, width, 3), np.uint8)

    def draw(self, seconds: float) -> np.ndarray:
        """The frame at ``seconds``: a view of the shared buffer, valid until the next call."""
        first = self._pad + round(seconds / self._column_seconds) - self._width // 2
        span = slice(first, first + self._width)
        inside, below = self._inside, self._below
        np.greater_equal(self._rows, self._top[span], out=inside)
        np.less(self._rows, self._bottom[span], out=below)
        np.logical_and(inside, below, out=inside)
        index = inside.view(np.uint8)  # 1 (waveform) inside the band, 0 (background) outside
        index[self._top_edge[span], self._columns] = self._top_shade[span]
        index[self._bottom_edge[span], self._columns] = self._bottom_shade[span]
        np.take(self._palette, index, axis=0, out=self._frame)
        return self._frame


def _envelope(
    samples: np.ndarray, sample_rate: int, columns: int, column_seconds: float
) -> tuple[np.ndarray, np.ndarray]:
    """Highest and lowest level around each of ``columns`` columns, smooth between them.

    One column is under a millisecond of audio: a bass note would draw as a comb of
    one-sided spikes. So peaks are taken over ENVELOPE_SPAN_SECONDS (longer than
    the period of the lowest notes, so the band fills above and below the centre),
    every ENVELOPE_HOP_SECONDS, smoothed, and the columns interpolate between them.
    """
    hop = max(1, round(sample_rate * ENVELOPE_HOP_SECONDS))
    span = max(1, round(ENVELOPE_SPAN_SECONDS / ENVELOPE_HOP_SECONDS))
    hops = -(-samples.size // hop)
    padded = np.zeros(hops * hop + (span - 1) * hop, np.float32)
    shift = (span // 2) * hop  # centre each span on its hop
    padded[shift : shift + samples.size] = samples
    blocks = padded.reshape(-1, hop)
    windows = np.lib.stride_tricks.sliding_window_view(blocks, (span, hop))[:, 0]
    # the peak-hold steps would show as stairs; a Hann average of the same
    # length rounds them into a curve and still reaches most of each peak
    kernel = np.hanning(span + 2)[1:-1]
    kernel /= kernel.sum()
    high = np.convolve(windows.max(axis=(1, 2))[:hops], kernel, mode="same")
    low = np.convolve(windows.min(axis=(1, 2))[:hops], kernel, mode="same")
    hop_times = (np.arange(hops) + 0.5) * hop / sample_rate
    column_times = (np.arange(columns) + 0.5) * column_seconds
    return (
        np.interp(column_times, hop_times, high, left=0.0, right=0.0).astype(np.float32),
        np.interp(column_times, hop_times, low, left=0.0, right=0.0).astype(np.float32),
    )


def _shade_index(coverage: np.ndarray) -> np.ndarray:
    """Palette index for a pixel ``coverage`` (0..1) of the waveform colour."""
    level = np.rint(np.clip(coverage, 0.0, 1.0) * EDGE_LEVELS).astype(np.intp)
    # level 0 is the background (index 0), EDGE_LEVELS the full colour (index 1),
    # and level k in between is blend k, stored at index k + 1
    lookup = np.concatenate([[0], np.arange(2, EDGE_LEVELS + 1), [1]]).astype(np.uint8)
    return lookup[level]


class _Progress:
    """Forwards progress at most once per percent, never backwards."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback
        self._last = -1

    def __call__(self, fraction: float) -> None:
        step = math.floor(min(max(fraction, 0.0), 1.0) * 100)
        if self._callback is not None and step > self._last:
            self._last = step
            self._callback(step / 100)


def _reap(process: subprocess.Popen[bytes]) -> None:
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
