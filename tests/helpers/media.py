"""Looking inside media files from tests, with the system ffprobe.

The service itself never uses ffprobe (production has only the bundled ffmpeg);
tests use it as an independent judge of what the renderer wrote. The project
setup installs it (Debian's ffmpeg package) on fresh machines.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from render.audio import ffmpeg_exe


def ffprobe_exe() -> str:
    """The ffprobe to use; a clear error instead of a FileNotFoundError deep in a test."""
    for candidate in (shutil.which("ffprobe"), "/usr/bin/ffprobe"):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError("ffprobe not found: apt-get install ffmpeg to run these tests")


def probe(path: str | Path, *, count_packets: bool = False) -> dict[str, Any]:
    """ffprobe's view of ``path``: ``{"streams": [...], "format": {...}}`` as parsed JSON.

    ``count_packets`` reads the whole file to fill each stream's ``nb_read_packets``
    (an exact frame count that does not trust the container's header).
    """
    command = [ffprobe_exe(), "-v", "error", "-show_streams", "-show_format", "-of", "json"]
    if count_packets:
        command.append("-count_packets")
    result = subprocess.run(
        [*command, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"ffprobe could not read {path}: {result.stderr.strip()}")
    return json.loads(result.stdout)


def stream(info: dict[str, Any], codec_type: str) -> dict[str, Any]:
    """The one stream of ``codec_type`` ("video", "audio") in a probe result."""
    found = [s for s in info["streams"] if s["codec_type"] == codec_type]
    assert len(found) == 1, f"expected one {codec_type} stream, found {len(found)}"
    return found[0]


def long_audio(tmp_path: Path, seconds: int) -> Path:
    """``seconds`` of a 440 Hz tone as an MP3 in ``tmp_path``."""
    path = tmp_path / f"tone-{seconds}s.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                    f"sine=frequency=440:duration={seconds}", "-c:a", "libmp3lame", str(path)],
                   check=True)
    return path


def make_audio(path: Path, source: str, *args: str) -> Path:
    """Synthesize ``path`` from an ffmpeg lavfi ``source`` with the bundled ffmpeg."""
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", source, *args, str(path)],
        check=True,
        timeout=60,
    )
    return path


def make_video(path: Path, *, size: str = "320x180", fps: int = 30, seconds: float = 2.0,
               tone: float | None = 440.0, codec: str = "libx264") -> Path:
    """A test-pattern video (ffmpeg's testsrc2: moving colours and a frame counter) with a
    tone as its sound (``tone`` None: no audio stream), written with the bundled ffmpeg."""
    sound = ["-f", "lavfi", "-i", f"sine=frequency={tone}:duration={seconds}",
             "-c:a", "aac" if path.suffix != ".webm" else "libopus"] if tone else []
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi",
         "-i", f"testsrc2=size={size}:rate={fps}:duration={seconds}", *sound,
         "-c:v", codec, "-pix_fmt", "yuv420p", "-shortest", str(path)],
        check=True,
        timeout=60,
    )
    return path


def make_artwork(path: Path, size: int = 800) -> None:
    """A deterministic abstract cover: a gradient with soft circles."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    rgb = np.stack([0.95 - 0.5 * y, 0.35 + 0.4 * x * y, 0.55 + 0.4 * (1 - x)], axis=-1)
    for cx, cy, r, tint in ((0.3, 0.35, 0.22, (1.0, 0.8, 0.3)), (0.7, 0.65, 0.3, (0.2, 0.9, 0.8))):
        d = np.hypot(x - cx, y - cy)
        a = np.clip((r - d) / 0.03, 0, 1)[..., None] * 0.7
        rgb = rgb * (1 - a) + np.array(tint, np.float32) * a
    Image.fromarray(np.clip(rgb * 255, 0, 255).astype(np.uint8)).save(path)


def frames_rgb(video: Path, indices: list[int], size: tuple[int, int] = (320, 180)) -> list:
    """Frames ``indices`` of ``video`` as (H, W, 3) arrays, decoded by ffmpeg."""
    width, height = size
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(video), "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)
    return [frames[index].astype(int) for index in indices]


def sound(video: Path, rate: int = 48000) -> np.ndarray:
    """The video's sound as mono float samples."""
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(video), "-map", "0:a",
                          "-ac", "1", "-ar", str(rate), "-f", "f32le", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.float32)


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
