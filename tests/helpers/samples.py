"""The sample files shipped in ``samples/``."""

from __future__ import annotations

from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
SAMPLE = SAMPLES / "sample.mp3"
ARTWORK = SAMPLES / "artwork.png"
CAPTIONS = SAMPLES / "sample.srt"
