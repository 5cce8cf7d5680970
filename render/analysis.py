"""One streaming pass over the audio: everything the styles draw, in compact form.

The decoder hands blocks of mono samples to `Analyzer.feed`; nothing keeps the
decoded audio. Out come, per video frame, the spectrum in log-spaced bands (dB,
quantised to a byte) and the loudness, plus a min/max envelope every 5 ms for the
waveform styles and an optional short oscilloscope trace per frame. For an hour at
30 fps that is about 7 MB of bands and 3 MB of envelope, against the 600 MB an
hour of 44.1 kHz float audio would take: memory stays flat however long the
episode (holding a 600 s decode alone cost ~60 MiB: docs/architecture.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Mono rate of the analysis: detail up to 11 kHz, a quarter of the work of 44.1 kHz.
ANALYSIS_RATE = 22050
#: FFT window: 93 ms at 22.05 kHz, enough resolution for the lowest bands.
FFT_SIZE = 2048
#: Spectrum bands, log-spaced between these frequencies (Hz).
BANDS = 64
LOW_HZ, HIGH_HZ = 40.0, 11000.0
#: Quantisation of band levels: byte 255 is 0 dBFS, each step DB_STEP dB.
DB_STEP = 0.5
DB_FLOOR = -255 * DB_STEP
#: The envelope's hop: one min/max pair per this much audio.
ENVELOPE_HOP_SECONDS = 0.005
#: Points of the per-frame oscilloscope trace (wave style, line mode).
TRACE_SECONDS = 0.04


@dataclass(frozen=True)
class Analysis:
    """What the styles draw from. Index ``i`` of per-frame arrays is video frame ``i``."""

    fps: int
    duration: float  # seconds of audio decoded
    frames: int
    #: (frames, BANDS) uint8: band level in dB = DB_FLOOR + value * DB_STEP
    bands: np.ndarray
    #: (frames,) float32: RMS level of the frame's window in dBFS
    loudness: np.ndarray
    #: (hops, 2) float16: min and max of each ENVELOPE_HOP_SECONDS of audio
    envelope: np.ndarray
    #: (frames, points) int8, or None: the waveform around each frame's time
    trace: np.ndarray | None

    def save(self, path: Path) -> None:
        """Write the analysis as a compressed ``.npz`` (about 10 MB an hour): the
        features every window of a split render draws from."""
        arrays = {"bands": self.bands, "loudness": self.loudness, "envelope": self.envelope,
                  "meta": np.array([self.fps, self.frames], np.int64),
                  "duration": np.array([self.duration], np.float64)}
        if self.trace is not None:
            arrays["trace"] = self.trace
        with open(path, "wb") as out:
            np.savez_compressed(out, **arrays)

    @classmethod
    def load(cls, path: Path) -> Analysis:
        """The analysis ``save`` wrote, bit for bit."""
        with np.load(path, allow_pickle=False) as data:
            fps, frames = (int(v) for v in data["meta"])
            return cls(
                fps=fps, duration=float(data["duration"][0]), frames=frames,
                bands=data["bands"], loudness=data["loudness"], envelope=data["envelope"],
                trace=data["trace"] if "trace" in data.files else None,
            )

    def band_db(self, frame: int) -> np.ndarray:
        return DB_FLOOR + self.bands[frame].astype(np.float32) * DB_STEP

    @property
    def loudest_frame(self) -> int:
        return int(np.argmax(self.loudness)) if self.frames else 0

    def band_range(self) -> tuple[float, float]:
        """(quiet, loud) dB for scaling bars: the clip's own loud level, 48 dB of range.

        Relative to the clip, so a quiet podcast moves the bars as much as a mastered
        song; the 99th percentile of each frame's loudest band ignores a few clicks.
        """
        if not self.frames:
            return DB_FLOOR, 0.0
        loud = DB_FLOOR + float(np.percentile(self.bands.max(axis=1), 99)) * DB_STEP
        loud = max(loud, -60.0)
        return loud - 48.0, loud

    def overview(self, columns: int) -> np.ndarray:
        """(columns, 2) min/max of the whole clip, for the progress style."""
        hops = self.envelope.shape[0]
        out = np.zeros((columns, 2), np.float32)
        if hops == 0:
            return out
        edges = np.linspace(0, hops, columns + 1).astype(np.int64)
        edges = np.minimum(edges, hops - 1)
        env = self.envelope.astype(np.float32)
        lows = np.minimum.reduceat(env[:, 0], edges[:-1])
        highs = np.maximum.reduceat(env[:, 1], edges[:-1])
        out[:, 0], out[:, 1] = lows, highs
        return out


class _Rows:
    """An append-only array, allocated once for the expected length.

    Thousands of small per-block arrays joined at the end would hold the data
    twice at the peak, and freed small blocks are not returned to the system;
    one buffer (doubled in the rare case the estimate was short) keeps an hour's
    render within a few MB of a minute's.
    """

    def __init__(self, tail: tuple[int, ...], dtype: type, capacity: int) -> None:
        self._data = np.empty((max(capacity, 16), *tail), dtype)
        self.size = 0

    def extend(self, rows: np.ndarray) -> None:
        need = self.size + len(rows)
        if need > len(self._data):
            grown = np.empty((max(need, 2 * len(self._data)), *self._data.shape[1:]),
                             self._data.dtype)
            grown[: self.size] = self._data[: self.size]
            self._data = grown
        self._data[self.size : need] = rows
        self.size = need

    def array(self) -> np.ndarray:
        return self._data[: self.size]


class Analyzer:
    """Feed blocks of mono float32 samples; `finish` returns the `Analysis`.

    ``expected_seconds`` (from the clip window or the file's header) sizes the
    buffers up front; ``envelope`` and ``trace`` are only kept for the styles
    that draw them.
    """

    def __init__(
        self,
        fps: int,
        *,
        sample_rate: int = ANALYSIS_RATE,
        expected_seconds: float | None = None,
        envelope: bool = True,
        trace: bool = False,
    ):
        self.fps = fps
        self.rate = sample_rate
        self._window = np.hanning(FFT_SIZE).astype(np.float32)
        self._bands = _band_matrix(sample_rate)
        self._hop = max(1, round(sample_rate * ENVELOPE_HOP_SECONDS))
        self._trace_len = round(sample_rate * TRACE_SECONDS) if trace else 0
        # the stream as the windows see it: FFT_SIZE // 2 zeros in front, so frame 0's
        # window is centred on its time; ``_buffer`` holds it from ``_offset`` on
        self._buffer = np.zeros(FFT_SIZE // 2, np.float32)
        self._offset = 0
        self._samples = 0
        self._frame = 0
        self._env_done = 0  # samples of real audio already reduced into the envelope
        frames = math.ceil((expected_seconds or 60.0) * fps) + fps
        hops = math.ceil((expected_seconds or 60.0) / ENVELOPE_HOP_SECONDS) + 200
        self._keep_envelope = envelope
        self._bands_out = _Rows((BANDS,), np.uint8, frames)
        self._loud_out = _Rows((), np.float32, frames)
        self._env_out = _Rows((2,), np.float16, hops if envelope else 0)
        self._trace_out = _Rows((128,), np.int8, frames if trace else 0)

    @property
    def samples(self) -> int:
        """Samples fed so far."""
        return self._samples

    def feed(self, samples: np.ndarray) -> None:
        self._samples += samples.size
        self._buffer = np.concatenate([self._buffer, samples.astype(np.float32, copy=False)])
        self._run(final=False)

    def finish(self) -> Analysis:
        duration = self._samples / self.rate
        self._buffer = np.concatenate([self._buffer, np.zeros(FFT_SIZE, np.float32)])
        self._run(final=True)
        frames = _frame_count(duration, self.fps)
        return Analysis(
            fps=self.fps,
            duration=duration,
            frames=frames,
            bands=self._bands_out.array()[:frames],
            loudness=self._loud_out.array()[:frames],
            envelope=self._env_out.array(),
            trace=self._trace_out.array()[:frames] if self._trace_len else None,
        )

    def _centre(self, frame: int) -> int:
        """Sample index (real audio) at the middle of a frame's display time."""
        return round((frame + 0.5) * self.rate / self.fps)

    def _run(self, final: bool) -> None:
        end = self._offset + self._buffer.size  # in padded coordinates
        # frames whose window lies inside the buffer (padded start = centre)
        limit = _frame_count(self._samples / self.rate, self.fps) if final else None
        frames = []
        while limit is None or self._frame + len(frames) < limit:
            start = self._centre(self._frame + len(frames))
            if start + FFT_SIZE > end:
                break
            frames.append(start)
        if frames:
            self._frame += len(frames)
            starts = np.array(frames) - self._offset
            index = starts[:, None] + np.arange(FFT_SIZE)[None, :]
            windows = self._buffer[index]
            self._analyse(windows)
        # envelope over whole hops of real audio (padded coords: + FFT_SIZE // 2)
        available = min(self._samples, end - FFT_SIZE // 2)
        hops = (available - self._env_done) // self._hop
        if final and available > self._env_done:
            hops = -(-(available - self._env_done) // self._hop)
        if hops > 0:
            first = self._env_done + FFT_SIZE // 2 - self._offset
            chunk = self._buffer[first : first + hops * self._hop]
            if chunk.size < hops * self._hop:
                chunk = np.pad(chunk, (0, hops * self._hop - chunk.size))
            if self._keep_envelope:
                blocks = chunk.reshape(hops, self._hop)
                self._env_out.extend(
                    np.stack([blocks.min(axis=1), blocks.max(axis=1)], axis=1)
                )
            self._env_done += hops * self._hop
        # drop what no later frame or hop needs
        keep_from = min(self._centre(self._frame), self._env_done + FFT_SIZE // 2)
        drop = keep_from - self._offset
        if drop > 0:
            self._buffer = self._buffer[drop:]
            self._offset += drop

    def _analyse(self, windows: np.ndarray) -> None:
        spectrum = np.fft.rfft(windows * self._window, axis=1)
        # a full-scale sine peaks at FFT_SIZE / 4 through a Hann window: that is 0 dB
        power = (spectrum.real**2 + spectrum.imag**2) / (FFT_SIZE / 4) ** 2
        band_power = power @ self._bands
        db = 10.0 * np.log10(band_power + 1e-12)
        self._bands_out.extend(np.clip(np.rint((db - DB_FLOOR) / DB_STEP), 0, 255))
        centre = windows[:, FFT_SIZE // 4 : 3 * FFT_SIZE // 4]
        rms = np.sqrt(np.mean(centre * centre, axis=1) + 1e-12)
        self._loud_out.extend(20.0 * np.log10(rms))
        if self._trace_len:
            mid = FFT_SIZE // 2
            span = windows[:, mid - self._trace_len // 2 : mid + self._trace_len // 2]
            points = np.linspace(0, span.shape[1] - 1, 128).astype(np.intp)
            self._trace_out.extend(np.clip(np.rint(span[:, points] * 127), -127, 127))


def _frame_count(duration: float, fps: int) -> int:
    """Frames covering ``duration``; audio 1 ms past a frame boundary gets no frame
    (resampling can add a sample)."""
    return max(0, math.ceil(duration * fps - 1e-3))


def _band_matrix(rate: int) -> np.ndarray:
    """(bins, BANDS) matrix averaging FFT power bins into log-spaced bands.

    Low bands narrower than a bin take the nearest bin, so no band is empty.
    """
    freqs = np.fft.rfftfreq(FFT_SIZE, 1.0 / rate)
    edges = np.geomspace(LOW_HZ, min(HIGH_HZ, rate / 2), BANDS + 1)
    matrix = np.zeros((freqs.size, BANDS), np.float32)
    for band in range(BANDS):
        inside = np.nonzero((freqs >= edges[band]) & (freqs < edges[band + 1]))[0]
        if inside.size == 0:
            centre = math.sqrt(edges[band] * edges[band + 1])
            inside = np.array([int(np.argmin(np.abs(freqs - centre)))])
        # +3 dB per octave around 1 kHz: music and speech fall off about that fast,
        # so with the tilt the treble bars move as much as the bass ones
        tilt = 10 ** (0.3 * math.log2(math.sqrt(edges[band] * edges[band + 1]) / 1000.0))
        matrix[inside, band] = tilt / inside.size
    return matrix
