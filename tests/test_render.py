"""The pure render package: real ffmpeg, real files, checked with ffprobe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from render import (
    PREVIEW_SECONDS,
    InvalidAudio,
    PreparedAudio,
    RenderError,
    RenderFailed,
    RenderResult,
    RenderSpec,
    prepare_audio,
    render_video,
    write_peaks,
)
from render.analysis import ANALYSIS_RATE
from render.audio import decode_stream, ffmpeg_exe
from tests.helpers.media import make_audio, probe, stream

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "sample.mp3"
SMALL = RenderSpec(width=320, height=180, fps=30)


def frame_at(video: Path, seconds: float, spec: RenderSpec) -> np.ndarray:
    """The decoded RGB frame shown at ``seconds``, as a (height, width, 3) array."""
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-ss", str(seconds), "-i", str(video),
         "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(spec.height, spec.width, 3)


def ffmpeg_children() -> list[int]:
    """Pids of ffmpeg processes whose parent is this test process (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"ffmpeg" in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def tone_mp3(media: Path) -> Path:
    """3 s of stereo 440 Hz as a 44.1 kHz MP3: the common upload."""
    return make_audio(media / "tone.mp3", "sine=frequency=440:duration=3", "-ac", "2")


@pytest.fixture(scope="module")
def five_seconds(media: Path) -> Path:
    return make_audio(media / "five.wav", "sine=frequency=220:duration=5")


@pytest.fixture(scope="module")
def loud_then_silent(media: Path) -> Path:
    """2 s of a loud tone, then 2 s of silence."""
    source = "aevalsrc=exprs='if(lt(t,2),0.8*sin(2*PI*440*t),0)':d=4:s=44100"
    return make_audio(media / "loud_then_silent.wav", source)


@pytest.fixture(scope="module")
def corrupt(media: Path) -> Path:
    path = media / "upload.mp3"
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 20_000, np.uint8).tobytes())
    return path


# --- render_video -------------------------------------------------------------------


def test_render_video_writes_h264_aac_mp4_of_the_audio_duration(
    tone_mp3: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.mp4"
    result = render_video(tone_mp3, out, SMALL)

    info = probe(out, count_packets=True)
    video, audio = stream(info, "video"), stream(info, "audio")
    assert "mp4" in info["format"]["format_name"]
    assert video["codec_name"] == "h264"
    assert video["pix_fmt"] == "yuv420p"
    assert (video["width"], video["height"]) == (320, 180)
    assert video["avg_frame_rate"] == "30/1"
    assert int(video["nb_read_packets"]) == 90
    assert audio["codec_name"] == "aac"
    assert audio["channels"] == 2
    assert abs(float(info["format"]["duration"]) - 3.0) < 0.1
    assert abs(float(audio["duration"]) - 3.0) < 0.1
    assert result == RenderResult(duration=pytest.approx(3.0, abs=0.01), width=320, height=180,
                                  fps=30, frames=90, loudest=result.loudest)  # fmt: skip


@pytest.mark.parametrize(("seconds", "fps", "frames"), [(2.5, 24, 60), (2.51, 24, 61)])
def test_frame_count_is_duration_times_fps_rounded_up(
    seconds: float, fps: int, frames: int, tmp_path: Path
) -> None:
    source = make_audio(tmp_path / "in.wav", f"sine=frequency=330:duration={seconds}")
    out = tmp_path / "out.mp4"
    result = render_video(source, out, SMALL.model_copy(update={"fps": fps}))

    video = stream(probe(out, count_packets=True), "video")
    assert result.frames == frames
    assert int(video["nb_read_packets"]) == frames


def test_preview_is_limited_to_max_seconds(five_seconds: Path, tmp_path: Path) -> None:
    out = tmp_path / "preview.mp4"
    result = render_video(five_seconds, out, SMALL, max_seconds=2.0)

    info = probe(out, count_packets=True)
    assert abs(float(info["format"]["duration"]) - 2.0) < 0.1
    assert abs(float(stream(info, "audio")["duration"]) - 2.0) < 0.1
    assert int(stream(info, "video")["nb_read_packets"]) == 60
    assert result.duration == pytest.approx(2.0, abs=0.01)
    assert result.frames == 60


def test_max_seconds_past_the_end_keeps_the_audio_duration(
    five_seconds: Path, tmp_path: Path
) -> None:
    out = tmp_path / "preview.mp4"
    result = render_video(five_seconds, out, SMALL.for_preview(), max_seconds=PREVIEW_SECONDS)

    assert abs(float(probe(out)["format"]["duration"]) - 5.0) < 0.1
    assert result.frames == 150


def test_frames_draw_the_waveform_in_the_spec_colours_where_there_is_sound(
    loud_then_silent: Path, tmp_path: Path
) -> None:
    spec = RenderSpec(width=320, height=180, style="wave", color="#ffcc00", background="#102040")
    out = tmp_path / "out.mp4"
    render_video(loud_then_silent, out, spec)
    colour, background = np.array(spec.rgb), np.array(spec.background_rgb)

    def near(pixel: np.ndarray, rgb: np.ndarray) -> bool:
        return bool(np.abs(pixel.astype(int) - rgb).max() <= 16)

    loud = frame_at(out, 1.0, spec)  # the window around 1 s is all tone
    assert near(loud[90, 160], colour)  # the centre of the band
    assert near(loud[40, 160], colour)  # well above the centre: the band is tall
    assert near(loud[3, 160], background)  # headroom above the peaks
    assert near(loud[176, 160], background)

    quiet = frame_at(out, 3.5, spec)  # the window around 3.5 s is silence
    assert near(quiet[40, 160], background)
    assert near(quiet[140, 160], background)
    assert quiet[84:92, 160].astype(int).sum(axis=1).max() > background.sum() + 100  # the line


def test_progress_is_monotonic_and_reaches_one(tone_mp3: Path, tmp_path: Path) -> None:
    seen: list[float] = []
    render_video(tone_mp3, tmp_path / "out.mp4", SMALL, progress=seen.append)

    assert seen[0] == 0.0
    assert seen[-1] == 1.0
    assert all(a < b for a, b in zip(seen, seen[1:], strict=False))
    assert 10 <= len(seen) <= 101  # about once per percent, not once per frame


@pytest.mark.parametrize(
    ("window", "covered"),
    [({}, 5.0), ({"start": 1.5}, 3.5), ({"start": 1.0, "end": 3.0}, 2.0),
     ({"start": 4.0, "end": 30.0}, 1.0)],
)
def test_measured_is_told_the_seconds_the_video_covers_before_decoding(
    five_seconds: Path, tmp_path: Path, window: dict[str, float], covered: float
) -> None:
    told: list[tuple[float, int]] = []
    blocks: list[None] = []  # should_stop is asked once per decoded block (and frame)

    def should_stop() -> bool:
        blocks.append(None)
        return False

    spec = SMALL.model_copy(update=window)
    render_video(five_seconds, tmp_path / "out.mp4", spec, should_stop=should_stop,
                 measured=lambda seconds: told.append((seconds, len(blocks))))
    assert len(told) == 1
    assert told[0][0] == pytest.approx(covered, abs=0.05)
    assert told[0][1] == 0 and blocks  # told before the first block was decoded


def test_prepare_tells_measured_the_headers_length(five_seconds: Path, tmp_path: Path) -> None:
    told: list[float] = []
    prepare_audio(five_seconds, tmp_path / "out.wav", measured=told.append)
    assert told == [pytest.approx(5.0, abs=0.05)]


def test_corrupt_input_is_invalid_audio(corrupt: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(InvalidAudio) as caught:
        render_video(corrupt, out, SMALL)

    error = caught.value
    assert error.code == "invalid_audio"
    assert str(error) == error.message
    assert "could not be decoded as audio" in error.message
    assert "Invalid data found" in error.message  # ffmpeg's reason, for people
    assert "Upload a WAV, MP3" in error.message  # what to do about it
    assert str(corrupt.parent) not in error.message  # no worker temp paths
    assert not out.exists()


@pytest.mark.parametrize("kind", ["empty file", "video without audio"])
def test_inputs_without_audio_are_invalid_audio(kind: str, tmp_path: Path) -> None:
    if kind == "empty file":
        source = tmp_path / "empty.mp3"
        source.write_bytes(b"")
    else:
        source = make_audio(tmp_path / "silent_film.mp4", "testsrc=duration=1:size=64x64")

    with pytest.raises(InvalidAudio) as rendering:
        render_video(source, tmp_path / "out.mp4", SMALL)
    with pytest.raises(InvalidAudio) as preparing:
        prepare_audio(source, tmp_path / "out.wav")

    assert rendering.value.message == preparing.value.message
    expected = "contains no audio" if kind == "empty file" else "has no audio stream"
    assert expected in rendering.value.message


def test_encoder_failure_is_render_failed_with_ffmpegs_reason(
    tone_mp3: Path, tmp_path: Path
) -> None:
    out = tmp_path / "missing-dir" / "out.mp4"
    with pytest.raises(RenderFailed) as caught:
        render_video(tone_mp3, out, SMALL)

    assert caught.value.code == "render_failed"
    assert "ffmpeg: " in caught.value.message
    assert "No such file or directory" in caught.value.message
    assert str(tmp_path) not in caught.value.message
    assert len(caught.value.message) < 650
    assert ffmpeg_children() == []


def test_an_exception_mid_render_kills_ffmpeg_and_removes_the_partial_file(
    five_seconds: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.mp4"

    def cancel(fraction: float) -> None:
        if fraction >= 0.5:
            assert ffmpeg_children(), "ffmpeg should be encoding by now"
            raise KeyboardInterrupt  # what a worker's soft time limit looks like

    with pytest.raises(KeyboardInterrupt):
        render_video(five_seconds, out, SMALL, progress=cancel)

    assert ffmpeg_children() == []
    assert not out.exists()


# --- prepare_audio ------------------------------------------------------------------


def test_prepare_writes_44100_hz_wav_with_duration(tmp_path: Path) -> None:
    source = make_audio(
        tmp_path / "in.flac", "sine=frequency=440:duration=2.5:sample_rate=48000", "-ac", "2"
    )
    out = tmp_path / "prepared.wav"
    result = prepare_audio(source, out)

    with wave.open(str(out), "rb") as written:
        assert written.getframerate() == 44100
        assert written.getsampwidth() == 2
        assert written.getnchannels() == 2
        frames = written.getnframes()
    assert frames == pytest.approx(2.5 * 44100, abs=2)
    assert result == PreparedAudio(duration=frames / 44100, sample_rate=44100, channels=2)
    assert stream(probe(out), "audio")["codec_name"] == "pcm_s16le"


@pytest.mark.parametrize(("layout", "channels"), [("mono", 1), ("stereo", 2), ("5.1", 2)])
def test_prepare_keeps_mono_and_stereo_and_downmixes_more_channels(
    layout: str, channels: int, tmp_path: Path
) -> None:
    source = make_audio(
        tmp_path / "in.wav",
        "sine=frequency=440:duration=1",
        "-af",
        f"aformat=channel_layouts={layout}",
    )
    result = prepare_audio(source, tmp_path / "out.wav")

    assert result.channels == channels
    assert result.duration == pytest.approx(1.0, abs=0.001)


def test_prepare_reports_progress_to_one_and_corrupt_input_as_invalid_audio(
    corrupt: Path, tmp_path: Path
) -> None:
    seen: list[float] = []
    prepare_audio(SAMPLE, tmp_path / "sample.wav", progress=seen.append)
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert all(a < b for a, b in zip(seen, seen[1:], strict=False))

    out = tmp_path / "bad.wav"
    with pytest.raises(InvalidAudio, match="could not be decoded as audio"):
        prepare_audio(corrupt, out)
    assert not out.exists()


# --- audio decoding -----------------------------------------------------------------


def decoded(path: Path, **window: float) -> np.ndarray:
    """Every sample ``decode_stream`` hands its sink, joined (small test files only)."""
    blocks: list[np.ndarray] = []
    decode_stream(path, sample_rate=ANALYSIS_RATE, sink=lambda b: blocks.append(
        np.frombuffer(b, np.float32)), start=window.get("start", 0.0),
        duration=window.get("duration"))
    return np.concatenate(blocks)


def test_decode_streams_mono_float_samples_of_a_window(five_seconds: Path) -> None:
    whole = decoded(five_seconds)
    window = decoded(five_seconds, start=1.0, duration=0.5)

    assert whole.dtype == np.float32
    assert whole.size / ANALYSIS_RATE == pytest.approx(5.0, abs=0.001)
    assert window.size / ANALYSIS_RATE == pytest.approx(0.5, abs=0.001)
    assert window.size == pytest.approx(0.5 * ANALYSIS_RATE, abs=2)
    assert 0.05 < float(np.abs(window).max()) <= 1.0


def test_sample_is_twenty_seconds_of_stereo_mp3(tmp_path: Path) -> None:
    info = probe(SAMPLE)
    assert stream(info, "audio")["codec_name"] == "mp3"
    assert stream(info, "audio")["channels"] == 2
    assert decoded(SAMPLE).size / ANALYSIS_RATE == pytest.approx(20.0, abs=0.05)
    assert SAMPLE.stat().st_size < 400_000


# --- spec and errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("width", 321), ("height", 99), ("color", "red"), ("background", "#12345"), ("fps", 29)],
)
def test_spec_rejects_odd_width_and_bad_colour(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        RenderSpec(**{field: value})
    assert caught.value.errors()[0]["loc"] == (field,)


def test_render_errors_carry_a_stable_code_and_their_message() -> None:
    assert issubclass(InvalidAudio, RenderError) and issubclass(RenderFailed, RenderError)
    error = RenderFailed("Encoding the video failed (ffmpeg: boom).")
    assert (error.code, error.message, str(error)) == (
        "render_failed", "Encoding the video failed (ffmpeg: boom).",
        "Encoding the video failed (ffmpeg: boom).",
    )  # fmt: skip


# --- the CLI ------------------------------------------------------------------------


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "render", *map(str, args)],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip


def test_cli_renders_a_file(tone_mp3: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.mp4"
    done = run_cli(tone_mp3, "-o", out, "--size", "320x180", "--fps", "24", "--color", "#fff")

    assert done.returncode == 0, done.stderr
    assert "100%" in done.stderr  # the progress bar
    assert f"wrote {out}" in done.stdout
    video = stream(probe(out), "video")
    assert (video["width"], video["height"], video["avg_frame_rate"]) == (320, 180, "24/1")


def test_cli_prepare_writes_a_wav(tone_mp3: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.wav"
    done = run_cli(tone_mp3, "-o", out, "--prepare", "--quiet")

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    with wave.open(str(out), "rb") as written:
        assert written.getframerate() == 44100


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--size", "321x180"], "invalid option width: must be even"),
        (["--color", "blue"], "invalid option color"),
        (["--size", "big"], "expected WIDTHxHEIGHT"),
        (["--fps", "29"], "invalid option fps"),
    ],
)
def test_cli_exits_2_on_invalid_options(
    args: list[str], expected: str, tone_mp3: Path, tmp_path: Path
) -> None:
    done = run_cli(tone_mp3, "-o", tmp_path / "x.mp4", *args)
    assert done.returncode == 2
    assert expected in done.stderr
    assert not (tmp_path / "x.mp4").exists()


def test_cli_exits_2_with_the_error_code_on_invalid_audio(corrupt: Path, tmp_path: Path) -> None:
    done = run_cli(corrupt, "-o", tmp_path / "x.mp4")
    assert done.returncode == 2
    assert "error invalid_audio: The uploaded file could not be decoded" in done.stderr


def test_loudest_moment_is_found_for_the_thumbnail(tmp_path: Path) -> None:
    """A quiet tone with a loud burst from 3.0 to 3.5 s: the thumbnail time is in the burst."""
    audio = make_audio(
        tmp_path / "burst.wav",
        "sine=frequency=330:duration=6",
        "-af",
        "volume='if(between(t,3,3.5),1.0,0.05)':eval=frame",
    )
    result = render_video(audio, tmp_path / "out.mp4", SMALL)
    assert 3.0 <= result.loudest <= 3.5


def test_peaks_file_is_audiowaveform_json_of_min_max_pairs(tmp_path: Path) -> None:
    audio = make_audio(tmp_path / "tone.wav", "sine=frequency=440:duration=2")
    wav, peaks = tmp_path / "prepared.wav", tmp_path / "peaks.json"
    prepare_audio(audio, wav)
    pairs = write_peaks(wav, peaks, samples_per_pixel=441)
    document = json.loads(peaks.read_text())
    assert pairs == document["length"] == 200  # 88200 samples / 441
    assert document["version"] == 2 and document["bits"] == 8 and document["channels"] == 1
    data = document["data"]
    assert len(data) == 400 and all(-128 <= v <= 127 for v in data)
    lows, highs = data[0::2], data[1::2]
    assert all(lo <= hi for lo, hi in zip(lows, highs, strict=True))
    assert min(lows) < -10 and max(highs) > 10  # a tone at ffmpeg's default -18 dBFS-ish level
