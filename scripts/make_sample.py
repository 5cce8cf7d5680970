"""Synthesize ``samples/sample.mp3``: 20 s of music that makes a lively waveform.

Run ``python -m scripts.make_sample [out.mp3]``. Everything is generated here with
numpy (a fixed seed for the noise) and encoded with the bundled ffmpeg, so the
file is reproducible and free of licence questions. It is built to exercise a
renderer: a quiet intro, a groove with kick, hats and an arpeggio, a near-silent
breakdown, a loud ending and a long decay, panned across both channels.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np

RATE = 44100
SECONDS = 20.0
BEAT = 0.5  # 120 bpm
SEED = 20240611
OUT = Path(__file__).resolve().parents[1] / "samples" / "sample.mp3"

# A minor, F, C, G: two seconds (one bar) each, as MIDI note numbers
PROGRESSION = [(57, 60, 64), (53, 57, 60), (48, 52, 55), (55, 59, 62)]


def hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def timeline() -> np.ndarray:
    return np.arange(int(RATE * SECONDS)) / RATE


def add(track: np.ndarray, start: float, sound: np.ndarray, pan: float = 0.0) -> None:
    """Mix a mono ``sound`` into the stereo ``track`` at ``start`` s; pan -1 left .. 1 right."""
    first = int(start * RATE)
    sound = sound[: max(0, track.shape[0] - first)]
    left, right = np.sqrt((1 - pan) / 2), np.sqrt((1 + pan) / 2)
    track[first : first + sound.size, 0] += sound * left
    track[first : first + sound.size, 1] += sound * right


def pluck(note: float, length: float, brightness: float = 1.0) -> np.ndarray:
    """A decaying tone with a few harmonics, like a soft synth pluck."""
    t = np.arange(int(length * RATE)) / RATE
    f = hz(note)
    tone = sum(
        (brightness**k / k) * np.sin(2 * np.pi * f * k * t) * np.exp(-t * (3 + 2 * k))
        for k in range(1, 6)
    )
    attack = np.minimum(t / 0.005, 1.0)
    return tone * attack


def pad(notes: tuple[int, ...], length: float) -> np.ndarray:
    """A slow swelling chord, slightly detuned so it beats gently."""
    t = np.arange(int(length * RATE)) / RATE
    chord = sum(
        np.sin(2 * np.pi * hz(n) * t) + 0.5 * np.sin(2 * np.pi * hz(n + 0.08) * 2 * t)
        for n in notes
    )
    envelope = np.minimum(t / 0.6, 1.0) * np.minimum((length - t) / 0.6, 1.0)
    return chord * envelope / len(notes)


def kick(length: float = 0.35) -> np.ndarray:
    t = np.arange(int(length * RATE)) / RATE
    phase = 2 * np.pi * (45 * t + (120 - 45) / 30 * (1 - np.exp(-30 * t)))
    return np.sin(phase) * np.exp(-t * 9)


def noise_hit(rng: np.random.Generator, length: float, decay: float) -> np.ndarray:
    t = np.arange(int(length * RATE)) / RATE
    noise = np.diff(rng.standard_normal(t.size + 1))  # a crude high-pass: hiss, not rumble
    return noise * np.exp(-t * decay)


def snare(rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.25 * RATE)) / RATE
    body = np.sin(2 * np.pi * 185 * t) * np.exp(-t * 25)
    return 0.6 * body + 0.35 * noise_hit(rng, 0.25, 18)


def compose() -> np.ndarray:
    """The whole piece as float stereo, peak at -1 dBFS."""
    rng = np.random.default_rng(SEED)
    track = np.zeros((timeline().size, 2))
    beats = int(SECONDS / BEAT)
    for beat in range(beats):
        start = beat * BEAT
        bar, step = divmod(beat, 4)
        chord = PROGRESSION[bar % len(PROGRESSION)]
        intro, breakdown, finale = start < 4, 12 <= start < 14, start >= 14
        loud = 1.6 if finale else 1.0
        if step == 0 and start < 18:
            add(track, start, pad(chord, 2.0) * (0.3 if intro or breakdown else 0.25))
        if start >= 18:  # the last chord rings out
            if beat == 36:
                add(track, start, pad(PROGRESSION[0], 2.0) * 0.6)
            continue
        # an arpeggio in eighths, up through the chord and an octave, panned side to side
        for half in range(2):
            note = (chord + tuple(n + 12 for n in chord))[(2 * step + half) % 6]
            level = 0.25 if intro or breakdown else 0.4 * loud
            add(track, start + half * BEAT / 2, pluck(note + 12, 0.45) * level,
                pan=-0.6 if half else 0.6)  # fmt: skip
        if intro or breakdown:
            continue
        add(track, start, kick() * 0.45 * loud)
        add(track, start + BEAT / 2, noise_hit(rng, 0.08, 60) * 0.15 * loud, pan=0.4)
        add(track, start, pluck(chord[0] - 12, 0.45, brightness=0.5) * 0.4 * loud)
        if finale and step in (1, 3):
            add(track, start, snare(rng) * 0.7, pan=-0.1)
    track = np.tanh(1.5 * track / np.abs(track).max())  # gentle saturation: fuller, not flat
    return track * (10 ** (-1 / 20) / np.abs(track).max())


def encode(track: np.ndarray, out: Path) -> None:
    """MP3 at 128 kbps with the bundled ffmpeg; bitexact so reruns give the same bytes."""
    pcm = np.round(np.clip(track, -1, 1) * 32767).astype("<i2").tobytes()
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-v", "error", "-y",
        "-f", "s16le", "-ar", str(RATE), "-ac", "2", "-i", "pipe:0",
        "-c:a", "libmp3lame", "-b:a", "128k", "-map_metadata", "-1",
        "-fflags", "+bitexact", "-flags:a", "+bitexact", f"file:{out}",
    ]  # fmt: skip
    subprocess.run(
        command,
        input=pcm,
        check=True,
    )


def main(argv: list[str]) -> None:
    out = Path(argv[0]) if argv else OUT
    encode(compose(), out)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main(sys.argv[1:])
