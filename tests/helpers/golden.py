"""Regenerate the golden frames in ``tests/golden`` on purpose, after a change to the look.

    .venv/bin/python -m tests.helpers.golden

For every case in ``CASES`` (each style in ``render.spec.STYLES``, an oscilloscope
``wave-line``, a long caption cue split into pages, the square layout with
artwork, a two-line title, a subtitle and captions, word-timed captions with the
word being said highlighted, and a looping video background under a title) it renders
the frames at the case's times (``TIMES`` by default) of a synthetic signal and writes
them as ``tests/golden/<case>-<t>.png``; ``python -m tests.helpers.golden <case>...``
writes only the cases named. ``tests/test_styles.py``
renders the same frames and compares them with these files, so a change that
moves a bar or shifts a colour fails there until someone looks at the new
pictures and reruns this script. Review the PNGs before committing them.

The signal is synthesised here with numpy, without randomness, and written as a
16-bit WAV, so the script and the test draw from the same bytes on every machine.
"""

from __future__ import annotations

import json
import sys
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from render.engine import render_frames
from render.spec import STYLES, Assets, RenderSpec
from tests.helpers.media import make_artwork, make_video

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden"
#: Seconds into the signal at which every case is drawn: in the first section, just
#: after a beat of the second, and in the third after the silent gap.
TIMES = (0.5, 1.7, 3.2)
RATE = 44100
SECONDS = 4.0
#: The silent gap, in seconds: the wave and progress styles show it.
GAP = (2.4, 2.8)

#: What every case shares: small, so the PNGs stay a few KiB.
BASE = {"width": 320, "height": 180, "fps": 30, "background": "#14161f"}


#: A cue far too long for two lines: it shows as pages, each for a share of its time.
LONG_CUE = (
    "Today we talk about how sound travels through water, air and steel, and why "
    "whales can hear each other across a whole ocean while we cannot hear a thing."
)
#: The captions file of the cases that have captions (times on the 4 s signal).
CAPTIONS = f"1\n00:00:00,200 --> 00:00:03,900\n{LONG_CUE}\n"
#: A word-timed transcript (Whisper's JSON) on the 4 s signal: a sentence of two
#: clauses, a word every 0.25 s from 0.2 s.
WORDS = "Sound travels four times faster in water, so whales hear each other from afar."
TRANSCRIPT = json.dumps({"segments": [{
    "start": 0.2, "end": 0.2 + 0.25 * len(WORDS.split()), "text": " " + WORDS,
    "words": [{"word": " " + word, "start": round(0.2 + 0.25 * i, 2),
               "end": round(0.2 + 0.25 * i + 0.22, 2)} for i, word in enumerate(WORDS.split())],
}]})


@dataclass(frozen=True)
class Case:
    """One golden: a name for its files, the spec drawn, at which times, with which files."""

    name: str
    spec: RenderSpec
    times: tuple[float, ...] = TIMES
    captions: bool = False
    artwork: bool = False
    #: the captions file's name and text, when not ``golden.srt`` with ``CAPTIONS``
    captions_file: tuple[str, str] | None = None
    background_video: bool = False

    def path(self, seconds: float) -> Path:
        return GOLDEN_DIR / f"{self.name}-{seconds:.1f}.png"

    def assets(self, directory: Path) -> Assets:
        """The case's captions, artwork and video, written into ``directory``."""
        captions = artwork = video = None
        if self.captions:
            name, text = self.captions_file or ("golden.srt", CAPTIONS)
            captions = Path(directory) / name
            captions.write_text(text, encoding="utf-8")
        if self.artwork:
            artwork = Path(directory) / "golden-artwork.png"
            if not artwork.exists():
                make_artwork(artwork, size=240)
        if self.background_video:
            video = Path(directory) / "golden-loop.mp4"
            if not video.exists():
                # 1.25 s at 24 fps under a 30 fps render: 1.7 s is in its second play
                make_video(video, size="240x180", fps=24, seconds=1.25, tone=None)
        return Assets(captions=captions, artwork=artwork, background_video=video)


def _cases() -> tuple[Case, ...]:
    options: dict[str, dict[str, object]] = {
        # a vertical gradient, rounded ends (the default)
        "bars": {"color": "#ffb020", "color2": "#ff3060"},
        # square ends, one colour
        "mirror": {"color": "#40d0ff", "rounded": False},
        # the filled waveform with a gradient
        "wave": {"color": "#80ff90", "color2": "#2080ff"},
        "circle": {"color": "#f5f5f5"},
        "progress": {"color": "#ff7040"},
    }
    cases = [Case(style, RenderSpec(**BASE, style=style, **options[style])) for style in STYLES]
    cases.append(Case("wave-line", RenderSpec(**BASE, style="wave", filled=False, color="#ffe040")))
    # a long cue in pages: the first page, a middle one and the last
    cases.append(Case(
        "caption-pages",
        RenderSpec(**{**BASE, "width": 360, "height": 360}, style="bars", color="#ffb020"),
        times=(0.5, 2.0, 3.8),
        captions=True,
    ))
    # the square layout with everything: no box may run into another
    cases.append(Case(
        "square-layout",
        RenderSpec(
            **{**BASE, "width": 360, "height": 360}, style="bars", color="#ffb020",
            color2="#ff3060", title="Episode 42: How sound travels under water",
            subtitle="The Soundreel Show", artworkKey="golden/artwork.png",
            captionsKey="golden/captions.srt",
        ),
        times=(1.7,),
        captions=True,
        artwork=True,
    ))  # fmt: skip
    # word-timed captions: the word being said in the highlight colour, the rest white
    cases.append(Case(
        "word-captions",
        RenderSpec(**{**BASE, "width": 360, "height": 360}, style="bars", color="#40d0ff",
                   captionsKey="golden/talk.json"),
        times=(1.3, 2.3),  # "faster" (1.2 to 1.42 s), "whales" (2.2 to 2.42 s)
        captions=True,
        captions_file=("golden.json", TRANSCRIPT),
    ))  # fmt: skip
    # a looping video background, blurred and darkened, under the bars and a title
    cases.append(Case(
        "video-background",
        RenderSpec(**BASE, style="bars", color="#ffb020", title="Episode 42",
                   backgroundVideoKey="golden/loop.mp4", backgroundBlur=8,
                   backgroundDarken=0.3),
        background_video=True,
    ))  # fmt: skip
    return tuple(cases)


CASES = _cases()


def signal() -> np.ndarray:
    """The golden signal as float mono in [-1, 1]: three sections that light up different bars.

    0-1.2 s: a low chord (110, 220, 330 Hz) pulsing four times a second;
    1.2-2.4 s: a high chord (1.5, 3, 6 kHz) with a kick-like sweep every half second;
    2.4-2.8 s: silence; 2.8-4 s: a rising sweep (200 Hz to 4 kHz) over a 5 Hz tremolo.
    """
    t = np.arange(round(RATE * SECONDS)) / RATE
    out = np.zeros_like(t)

    first = t < 1.2
    chord = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((110, 220, 330), start=1))
    pulse = 0.2 + 0.8 * np.abs(np.sin(np.pi * 4 * t)) ** 3  # four swells a second
    out += np.where(first, 0.45 * chord * pulse, 0.0)

    second = (t >= 1.2) & (t < GAP[0])
    high = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((1500, 3000, 6000), start=1))
    since_beat = np.mod(t - 1.2, 0.5)
    kick = np.sin(2 * np.pi * (50 * since_beat + 60 * (1 - np.exp(-25 * since_beat))))
    kick *= np.exp(-8 * since_beat)
    out += np.where(second, 0.3 * high * (0.4 + 0.6 * np.exp(-6 * since_beat)) + 0.5 * kick, 0.0)

    third = t >= GAP[1]
    local = t - GAP[1]
    length = SECONDS - GAP[1]
    # instantaneous frequency rises exponentially from 200 Hz to 4 kHz over the section
    growth = np.log(4000 / 200) / length
    phase = 2 * np.pi * 200 * (np.exp(growth * local) - 1) / growth
    tremolo = 0.55 + 0.45 * np.sin(2 * np.pi * 5 * local)
    out += np.where(third, 0.6 * np.sin(phase) * tremolo, 0.0)

    # 5 ms fades at every section edge, so no click lights up every band
    fade = np.ones_like(t)
    for edge in (1.2, GAP[0], GAP[1]):
        fade = np.minimum(fade, np.clip(np.abs(t - edge) / 0.005, 0.0, 1.0))
    return np.clip(out * fade, -1.0, 1.0)


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    """``samples`` (float mono, [-1, 1]) as a 16-bit PCM WAV."""
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


def synth_signal(directory: Path) -> Path:
    """Write the golden signal as ``golden.wav`` in ``directory`` and return its path."""
    return write_wav(Path(directory) / "golden.wav", signal())


def render_case(case: Case, wav: Path) -> list[np.ndarray]:
    """The case's frames at its times, as (H, W, 3) RGB arrays."""
    return render_frames(wav, case.spec, list(case.times), assets=case.assets(wav.parent))


def main(names: list[str]) -> int:
    """Write the golden frames of the cases named (every case when none is)."""
    unknown = set(names) - {case.name for case in CASES}
    if unknown:
        sys.exit(f"no such case: {', '.join(sorted(unknown))}")
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wav = synth_signal(Path(tmp))
        for case in (case for case in CASES if not names or case.name in names):
            for seconds, frame in zip(case.times, render_case(case, wav), strict=True):
                path = case.path(seconds)
                Image.fromarray(frame).save(path, optimize=True)
                print(f"wrote {path.relative_to(GOLDEN_DIR.parents[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
