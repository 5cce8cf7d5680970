"""Peaks files: the min/max outline of prepared audio, in BBC audiowaveform's
JSON format (version 2), so waveform players (peaks.js, wavesurfer) and later
renders can draw the whole episode without decoding it again.

The WAV is read in blocks: memory stays flat for any length.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np

#: audiowaveform's default zoom is 256; 512 keeps an hour's file near 2 MB.
SAMPLES_PER_PIXEL = 512
BLOCK_PIXELS = 4096


def write_peaks(wav_path: Path, out_path: Path, *, samples_per_pixel: int = SAMPLES_PER_PIXEL):
    """Write ``{"version": 2, "channels": 1, "sample_rate", "samples_per_pixel", "bits": 8,
    "length", "data": [min0, max0, min1, max1, ...]}`` for a 16-bit PCM WAV (channels
    mixed to one). Returns the number of min/max pairs."""
    data: list[int] = []
    with wave.open(str(wav_path), "rb") as source:
        if source.getsampwidth() != 2:
            raise ValueError("write_peaks reads 16-bit PCM WAV files")
        channels, rate = source.getnchannels(), source.getframerate()
        while frames := source.readframes(samples_per_pixel * BLOCK_PIXELS):
            samples = np.frombuffer(frames, "<i2").reshape(-1, channels).mean(axis=1)
            pixels = -(-samples.size // samples_per_pixel)
            padded = np.zeros(pixels * samples_per_pixel, np.float32)
            padded[: samples.size] = samples
            if samples.size < padded.size:  # the last pixel: only its real samples count
                padded[samples.size :] = samples[-1]
            blocks = padded.reshape(pixels, samples_per_pixel)
            pairs = np.stack([blocks.min(axis=1), blocks.max(axis=1)], axis=1)
            scaled = np.clip(np.floor(pairs / 256.0), -128, 127).astype(int)
            data.extend(scaled.ravel().tolist())
    document = {
        "version": 2,
        "channels": 1,
        "sample_rate": rate,
        "samples_per_pixel": samples_per_pixel,
        "bits": 8,
        "length": len(data) // 2,
        "data": data,
    }
    Path(out_path).write_text(json.dumps(document, separators=(",", ":")))
    return len(data) // 2
