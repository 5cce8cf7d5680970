"""A full hour of audio: the video covers all of it, and memory does not grow with it.

Podcast episodes run an hour or more. The renderer streams the audio in blocks and
keeps only compact per-frame features (render.analysis), so an hour must render,
frame for frame, without the render process's memory growing with the length.
Rendered small (128x72, the lowest frame rate) so it fits in the test suite.

Peak memory is read from ``VmHWM`` in ``/proc/self/status`` inside the render
process, not from ``getrusage(RUSAGE_SELF).ru_maxrss``: on Linux a child's
``ru_maxrss`` starts at the peak of the process that forked it (the kernel carries
the pre-exec address space's high-water mark across ``exec``), so under pytest it
reports pytest's own size, and the comparison could never fail. ``VmHWM`` belongs
to the render process's own address space. Neither counts the ffmpeg children.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from render import RenderSpec
from render.audio import ffmpeg_exe
from tests.helpers.media import probe, stream

ROOT = Path(__file__).resolve().parent.parent
HOUR = 3600
MINUTE = 60
#: The smallest frame rate and a small canvas keep the hour under a minute here.
SPEC = RenderSpec(style="bars", width=128, height=72, fps=24, quality=35)
#: The hour may peak at most this much higher than a minute.
MAX_MEMORY_RATIO = 1.25

#: Renders argv[1] to argv[2] with the spec JSON in argv[3]; prints what it did as JSON.
RENDER = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    from render import RenderSpec, render_video

    spec = RenderSpec.model_validate_json(sys.argv[3])
    result = render_video(Path(sys.argv[1]), Path(sys.argv[2]), spec)
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    print(json.dumps({
        "frames": result.frames,
        "duration": result.duration,
        "peak_rss_kib": int(fields["VmHWM"].split()[0]),
        "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }))
    """
)


def sine_mp3(path: Path, seconds: int) -> Path:
    """A 220 Hz tone as a small mono MP3 (8 kHz, 16 kbit/s): an hour in ~7 MB, in seconds."""
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi",
         "-i", f"sine=frequency=220:duration={seconds}",
         "-ar", "8000", "-ac", "1", "-c:a", "libmp3lame", "-b:a", "16k", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path


def render_in_subprocess(audio: Path, out: Path) -> dict[str, Any]:
    """Render in a fresh Python process, so its peak memory is the render's alone."""
    done = subprocess.run(
        [sys.executable, "-c", RENDER, str(audio), str(out), SPEC.model_dump_json()],
        capture_output=True, text=True, cwd=ROOT, timeout=280, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("long")


@pytest.fixture(scope="module")
def hour(media: Path) -> tuple[Path, dict[str, Any]]:
    """An hour of audio rendered once: (the MP4, what the render process reported)."""
    out = media / "hour.mp4"
    return out, render_in_subprocess(sine_mp3(media / "hour.mp3", HOUR), out)


@pytest.fixture(scope="module")
def minute(media: Path) -> tuple[Path, dict[str, Any]]:
    out = media / "minute.mp4"
    return out, render_in_subprocess(sine_mp3(media / "minute.mp3", MINUTE), out)


@pytest.mark.timeout(900)  # the hour's render (a fixture) counts too
def test_an_hour_of_audio_renders_to_an_hour_of_video_frame_for_frame(
    hour: tuple[Path, dict[str, Any]],
) -> None:
    out, report = hour
    info = probe(out, count_packets=True)
    video, audio = stream(info, "video"), stream(info, "audio")

    assert float(info["format"]["duration"]) == pytest.approx(HOUR, abs=0.1)
    assert float(audio["duration"]) == pytest.approx(HOUR, abs=0.1)
    assert int(video["nb_read_packets"]) == HOUR * SPEC.fps == 86_400
    assert (video["width"], video["height"], video["avg_frame_rate"]) == (128, 72, "24/1")
    assert report["frames"] == 86_400
    assert report["duration"] == pytest.approx(HOUR, abs=0.01)


def test_peak_memory_of_an_hour_stays_close_to_that_of_a_minute(
    hour: tuple[Path, dict[str, Any]], minute: tuple[Path, dict[str, Any]]
) -> None:
    hour_kib, minute_kib = hour[1]["peak_rss_kib"], minute[1]["peak_rss_kib"]
    assert minute[1]["frames"] == MINUTE * SPEC.fps

    ratio = hour_kib / minute_kib
    assert ratio <= MAX_MEMORY_RATIO, (
        f"peak RSS of the render process: {hour_kib / 1024:.1f} MiB for an hour against "
        f"{minute_kib / 1024:.1f} MiB for a minute ({ratio:.3f}x, at most "
        f"{MAX_MEMORY_RATIO}x allowed): memory grows with the length of the audio"
    )


#: Splits: argv[1] "analyse" AUDIO FEATURES, or "window" FEATURES OUT FIRST STOP;
#: the spec JSON last. Prints the process's peak memory as JSON.
SPLIT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from render import RenderSpec
    from render.split import Window, analyse, render_window

    spec = RenderSpec.model_validate_json(sys.argv[-1])
    if sys.argv[1] == "analyse":
        analyse(Path(sys.argv[2]), spec, Path(sys.argv[3]))
    else:
        render_window(Path(sys.argv[2]), spec,
                      Window(0, int(sys.argv[4]), int(sys.argv[5])), Path(sys.argv[3]))
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    print(json.dumps({"peak_rss_kib": int(fields["VmHWM"].split()[0])}))
    """
)


def split_step(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", SPLIT, *args, SPEC.model_dump_json()],
                          capture_output=True, text=True, cwd=ROOT, timeout=280, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_window_of_a_split_hour_peaks_as_one_render_flat_in_its_length(
    hour: tuple[Path, dict[str, Any]], minute: tuple[Path, dict[str, Any]], media: Path,
) -> None:
    features = media / "hour.npz"
    split_step("analyse", str(media / "hour.mp3"), str(features))
    fps = SPEC.fps
    short = split_step("window", str(features), str(media / "w1.mp4"), str(30 * MINUTE * fps),
                       str(31 * MINUTE * fps))["peak_rss_kib"]
    long = split_step("window", str(features), str(media / "w20.mp4"), str(30 * MINUTE * fps),
                      str(50 * MINUTE * fps))["peak_rss_kib"]
    assert int(stream(probe(media / "w20.mp4", count_packets=True), "video")
               ["nb_read_packets"]) == 20 * MINUTE * fps
    single = minute[1]["peak_rss_kib"]
    assert long / short <= MAX_MEMORY_RATIO, (
        f"a 20-minute window peaked at {long / 1024:.1f} MiB, a 1-minute one at "
        f"{short / 1024:.1f} MiB: a window's memory grows with its length")
    assert long / single <= MAX_MEMORY_RATIO, (
        f"a window of an hour peaked at {long / 1024:.1f} MiB against {single / 1024:.1f} MiB "
        "for a whole one-minute render")
