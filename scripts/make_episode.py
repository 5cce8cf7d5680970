"""Synthesize ``samples/episode.mp3`` and ``samples/episode.srt``: speech over music.

    python -m scripts.make_episode      (needs espeak-ng: apt-get install espeak-ng)

A first-time creator's episode, as close to real as this repository can ship:
espeak-ng reads a short script (two voices), ``samples/sample.mp3`` plays under
it as a music bed, and the captions are timed from the speech itself, one cue
per paragraph, so several cues are far too long for two lines (as transcription
services export them). Everything is generated, so there are no licence
questions; the bundled ffmpeg mixes and encodes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import imageio_ffmpeg

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
#: (voice, paragraph): each paragraph is one cue.
SCRIPT: tuple[tuple[str, str], ...] = (
    ("en-us", "Welcome back to the Soundreel Show. Today we talk about how sound travels "
              "through water, air and steel, and why whales can hear each other across a "
              "whole ocean."),
    ("en-gb", "Thanks for having me."),
    ("en-gb", "Sound is a pressure wave. In water it moves more than four times faster "
              "than in air, and it loses far less energy on the way."),
    ("en-us", "So a song sung in the deep channel can carry for thousands of kilometres?"),
    ("en-gb", "Exactly, and that is why every audiogram of this episode needs captions "
              "that keep every single word."),
)
PAUSE = 0.45  # seconds between paragraphs
LEAD_IN = 1.0  # seconds of music before the first word
RATE = 22050


def speak(text: str, voice: str, out: Path) -> float:
    """``text`` read by espeak-ng into ``out`` (mono WAV); returns its length in seconds."""
    subprocess.run(  # noqa: S603
        ["espeak-ng", "-v", voice, "-s", "165", "-w", str(out), text],  # noqa: S607
        check=True,
    )
    with wave.open(str(out)) as audio:
        return audio.getnframes() / audio.getframerate()


def srt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def main() -> int:
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is missing: apt-get install espeak-ng")
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    with tempfile.TemporaryDirectory() as tmp:
        parts, cues, t = [], [], LEAD_IN
        for i, (voice, text) in enumerate(SCRIPT):
            part = Path(tmp) / f"part{i}.wav"
            length = speak(text, voice, part)
            parts.append((part, t))
            cues.append((t, t + length, text))
            t += length + PAUSE
        total = t + 1.0
        inputs: list[str] = []
        delays = []
        for i, (part, start) in enumerate(parts):
            inputs += ["-i", str(part)]
            ms = round(start * 1000)
            delays.append(f"[{i}:a]aresample={RATE},adelay={ms}:all=1[s{i}]")
        music = len(parts)
        voices = "".join(f"[s{i}]" for i in range(len(parts)))
        graph = ";".join([
            *delays,
            f"{voices}amix=inputs={len(parts)}:normalize=0[voice]",
            # the music bed: the sample looped, quiet under the voice
            f"[{music}:a]aloop=loop=-1:size=2e9,atrim=0:{total:.2f},aresample={RATE},"
            "volume=0.22[bed]",
            "[voice][bed]amix=inputs=2:normalize=0:duration=longest,"
            f"atrim=0:{total:.2f},afade=t=out:st={total - 1:.2f}:d=1[out]",
        ])  # fmt: skip
        subprocess.run(  # noqa: S603
            [ffmpeg, "-v", "error", "-y", *inputs, "-i", str(SAMPLES / "sample.mp3"),
             "-filter_complex", graph, "-map", "[out]", "-ac", "1", "-ar", "44100",
             "-c:a", "libmp3lame", "-b:a", "64k", "-fflags", "+bitexact",
             "-flags:a", "+bitexact", "-map_metadata", "-1", str(SAMPLES / "episode.mp3")],
            check=True,
        )  # fmt: skip
    srt = "\n".join(
        f"{n}\n{srt_time(start)} --> {srt_time(end)}\n{text}\n"
        for n, (start, end, text) in enumerate(cues, start=1)
    )
    (SAMPLES / "episode.srt").write_text(srt, encoding="utf-8")
    print(f"wrote samples/episode.mp3 ({total:.1f} s) and samples/episode.srt ({len(cues)} cues)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
