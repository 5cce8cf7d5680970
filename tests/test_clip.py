"""The audiogram as a moviepy clip (render.clip): the engine's frames on demand, its
clip window as audio, inside moviepy compositions and written by moviepy, and
memory that does not grow with the length of the audio. Real moviepy, real ffmpeg."""

from __future__ import annotations

import gc
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from moviepy import ColorClip, CompositeVideoClip, concatenate_videoclips, vfx
from pydantic import ValidationError

from render import Assets, InvalidAudio, InvalidImage, RenderSpec, render_frames, render_video
from render.audio import ffmpeg_exe
from render.canvas import Planes
from render.clip import AudiogramClip, audiogram_clip, frame_index, write_options
from render.spec import FRAME_RATES
from tests.helpers.media import make_audio, probe, stream
from tests.helpers.samples import ARTWORK, CAPTIONS, SAMPLE

ROOT = Path(__file__).resolve().parent.parent
#: The PSNR at or above which a decoded frame is the clip's frame up to x264's loss.
SAME_FRAME_DB = 45.0


def decoded_frames(video: Path, indexes: list[int], width: int, height: int) -> list[np.ndarray]:
    """Frames ``indexes`` of ``video`` (by number, no seeking by time), turned into RGB
    as the clip turns its own (render.canvas): what differs is the encoder's loss."""
    select = "+".join(f"eq(n\\,{i})" for i in indexes)
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(video), "-vf", f"select={select}",
         "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1"],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    size = width * height * 3 // 2
    assert len(raw) == size * len(indexes)
    frames = []
    for number in range(len(indexes)):
        planes = Planes.empty(width, height)
        planes.buffer[:] = np.frombuffer(raw[number * size : (number + 1) * size], np.uint8)
        frames.append(planes.to_rgb())
    return frames


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def decoded_audio(path: Path, *args: str) -> np.ndarray:
    """Stereo 44.1 kHz samples of ``path`` as floats in -1..1, (n, 2)."""
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", *args, "-i", str(path), "-map", "0:a:0", "-ac", "2",
         "-ar", "44100", "-f", "s16le", "-c:a", "pcm_s16le", "pipe:1"],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, "<i2").reshape(-1, 2) / 32768.0


def test_every_frame_is_the_engines_in_order_and_out_of_order():
    # 25 fps: k / 25 * 25 falls below k for about one frame in twenty (k = 29 is the
    # first), so int(t * fps) would show frame 28 twice and never 29
    spec = RenderSpec(width=320, height=180, fps=25, title="Episode 12", start=2, end=5)
    clip = audiogram_clip(SAMPLE, spec, captions=CAPTIONS)
    assert (clip.size, clip.fps, clip.duration) == ((320, 180), 25, 3.0)
    middles = [(k + 0.5) / 25 for k in range(75)]
    engine = render_frames(SAMPLE, spec, middles, assets=Assets(captions=CAPTIONS))
    frames = list(clip.iter_frames())
    assert len(frames) == 75
    assert all(np.array_equal(ours, theirs) for ours, theirs in zip(frames, engine, strict=True))
    shuffled = list(range(75))
    random.Random(15).shuffle(shuffled)  # noqa: S311 - an order, not a secret
    for k in shuffled:
        assert np.array_equal(clip.get_frame(k / 25), engine[k]), k
        assert np.array_equal(clip.get_frame(middles[k]), engine[k]), k
    clip.close()


def test_a_time_on_a_frames_start_is_that_frame_at_every_frame_rate():
    for fps in FRAME_RATES:
        frames = 3600 * fps
        times = np.arange(frames) / fps
        assert [frame_index(t, fps, frames) for t in times] == list(range(frames)), fps
        # as a timeline sees it: the clip placed after a 7/3 s intro
        shifted = (np.arange(2000) + fps * 7 / 3) / fps - 7 / 3
        assert [frame_index(t, fps, frames) for t in shifted] == list(range(2000)), fps
    assert frame_index(-0.5, 30, 90) == 0 and frame_index(3.5, 30, 90) == 89


def test_frames_match_the_engines_mp4(tmp_path: Path):
    # x264 at the best quality a spec allows, 640x360: at smaller sizes text and artwork
    # edges alone cost x264 more than 45 dB
    spec = RenderSpec(width=640, height=360, style="wave", quality=14, title="Episode 12",
                      start=2, end=5)
    assets = Assets(artwork=ARTWORK, captions=CAPTIONS)
    result = render_video(SAMPLE, tmp_path / "engine.mp4", spec, assets=assets)
    clip = audiogram_clip(SAMPLE, spec, artwork=ARTWORK, captions=CAPTIONS)
    assert clip.duration == result.duration
    assert int(clip.duration * clip.fps) == result.frames
    indexes = [0, 1, 17, 44, 59, 60, 89]
    engine = decoded_frames(tmp_path / "engine.mp4", indexes, 640, 360)
    for index, theirs in zip(indexes, engine, strict=True):
        for t in (index / 30, (index + 0.5) / 30):
            assert psnr(clip.get_frame(t), theirs) >= SAME_FRAME_DB, (index, t)
    # the neighbouring frame is far off: the measure tells frames apart
    assert psnr(clip.get_frame(18 / 30), engine[2]) < SAME_FRAME_DB - 10
    clip.close()


def test_the_clip_composes_and_moviepy_writes_it_with_its_audio(tmp_path: Path):
    clip = audiogram_clip(SAMPLE, size=(320, 180), title="Episode 12", start=2, end=5)
    frames = list(clip.iter_frames())
    framed = CompositeVideoClip([
        ColorClip((360, 200), color=(0, 90, 200), duration=clip.duration),
        clip.with_position((20, 10)),
    ])
    for k in (0, 44, 89):
        picture = framed.get_frame(k / 30)
        assert np.array_equal(picture[10:190, 20:340], frames[k])
        assert (picture[:10] == (0, 90, 200)).all() and (picture[190:] == (0, 90, 200)).all()

    faded = clip.with_effects([vfx.FadeIn(0.5)])
    assert faded.get_frame(0).max() == 0 and np.array_equal(faded.get_frame(1), frames[30])
    later = clip.subclipped(1, 2)
    assert np.array_equal(later.get_frame(0.5), frames[45])

    card = ColorClip(clip.size, color=(200, 30, 30), duration=0.5)
    edit = concatenate_videoclips([card, clip])
    assert edit.duration == pytest.approx(3.5)
    for k in range(90):  # the timeline's time minus the card's: a hair off the frame's start
        assert np.array_equal(edit.get_frame(0.5 + k / 30), frames[k]), k

    out = tmp_path / "edit.mp4"
    edit.write_videofile(str(out), logger=None, temp_audiofile_path=str(tmp_path),
                         **write_options(clip.spec))
    info = probe(out, count_packets=True)
    video, audio = stream(info, "video"), stream(info, "audio")
    assert (video["codec_name"], video["pix_fmt"], video["width"], video["height"]) == (
        "h264", "yuv420p", 320, 180)
    assert (video["color_space"], video["color_primaries"], video["color_transfer"]) == (
        "bt709", "bt709", "bt709")
    assert int(video["nb_read_packets"]) == 105
    assert audio["codec_name"] == "aac"
    assert float(audio["duration"]) == pytest.approx(3.5, abs=0.05)
    written = decoded_frames(out, [5, 15 + 44], 320, 180)
    assert np.abs(written[0].astype(int) - (200, 30, 30)).max() <= 4  # the card
    assert psnr(written[1], frames[44]) >= 35  # x264 at CRF 23, from moviepy's RGB
    sound = decoded_audio(out)
    assert np.abs(sound[: int(0.45 * 44100)]).max() < 0.01  # the card is silent
    assert np.sqrt(np.mean(sound[int(0.6 * 44100) :] ** 2)) > 0.01  # the music follows
    clip.close()


def test_the_audio_is_the_clip_window_sample_for_sample():
    clip = audiogram_clip(SAMPLE, width=160, height=90, start=2.5, end=6)
    assert clip.duration == clip.audio.duration == 3.5
    ours = clip.audio.to_soundarray(fps=44100)
    window = decoded_audio(SAMPLE, "-ss", "2.5", "-t", "3.5")
    assert abs(len(ours) - len(window)) <= 1
    n = min(len(ours), len(window))
    assert np.abs(ours[:n] - window[:n]).max() <= 1 / 32768
    later = decoded_audio(SAMPLE, "-ss", "2.6", "-t", "3.5")
    assert np.abs(ours[:n] - later[:n]).max() > 0.1  # another window is another sound
    clip.close()


def test_windows_start_end_and_max_seconds():
    whole = audiogram_clip(SAMPLE, width=160, height=90)
    assert whole.duration == pytest.approx(20.0, abs=0.05)
    tail = audiogram_clip(SAMPLE, width=160, height=90, start=18)
    assert tail.duration == pytest.approx(whole.duration - 18, abs=1e-3)
    assert tail.audio.duration == tail.duration
    cut = audiogram_clip(SAMPLE, width=160, height=90, start=4, max_seconds=1.5)
    assert (cut.duration, cut.audio.duration) == (1.5, 1.5)
    for clip in (whole, tail, cut):
        clip.close()


def test_close_and_collection_remove_the_temporary_wav():
    clip = audiogram_clip(SAMPLE, width=160, height=90, end=1)
    wav = Path(clip.audio.filename)
    assert wav.is_file()
    clip.close()
    assert not wav.exists() and clip.audio is None
    with audiogram_clip(SAMPLE, width=160, height=90, end=1) as clip:
        wav = Path(clip.audio.filename)
    assert not wav.exists()
    clip = audiogram_clip(SAMPLE, width=160, height=90, end=3)
    wav = Path(clip.audio.filename)
    copy = clip.subclipped(0.5, 2.5)
    del clip
    gc.collect()
    assert wav.is_file()  # the copy still reads it
    assert copy.audio.to_soundarray(fps=44100).shape == (2 * 44100, 2)
    del copy
    gc.collect()
    assert not wav.exists()


def test_bad_input_is_refused_with_the_engines_errors(tmp_path: Path):
    not_audio = tmp_path / "notes.mp3"
    not_audio.write_text("ffconcat version 1.0\nfile '/etc/passwd'\n")
    with pytest.raises(InvalidAudio) as caught:
        audiogram_clip(not_audio, width=160, height=90)
    assert caught.value.code == "invalid_audio" and "passwd" not in caught.value.message
    with pytest.raises(InvalidAudio, match="after the end of the audio"):
        audiogram_clip(SAMPLE, width=160, height=90, start=30)
    with pytest.raises(InvalidImage):
        audiogram_clip(SAMPLE, width=160, height=90, artwork=not_audio)
    with pytest.raises(FileNotFoundError):
        audiogram_clip(tmp_path / "missing.mp3")
    with pytest.raises(ValidationError, match="colour"):
        audiogram_clip(SAMPLE, colour="#fff")
    with pytest.raises(ValidationError, match="width"):
        audiogram_clip(SAMPLE, size=(161, 90))
    with pytest.raises(TypeError, match="not both"):
        audiogram_clip(SAMPLE, RenderSpec(), style="wave")
    with pytest.raises(ValueError, match="artwork"):
        audiogram_clip(SAMPLE, RenderSpec(artworkKey="uploads/a/cover.png"))


MEMORY_PROBE = """
import json, resource, sys
from render.clip import audiogram_clip
with audiogram_clip(sys.argv[1], width=64, height=36, fps=24) as clip:
    frames = sum(1 for _ in clip.iter_frames())
    print(json.dumps({"frames": frames, "duration": clip.duration,
                      "kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def test_memory_stays_flat_while_moviepy_iterates_a_long_clip(tmp_path: Path):
    peaks = {}
    for minutes in (1, 10):
        audio = make_audio(
            tmp_path / f"{minutes}min.mp3",
            f"sine=frequency=220:beep_factor=4:sample_rate=8000:duration={minutes * 60}",
            "-b:a", "8k",
        )
        out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(audio)], cwd=ROOT,
                             capture_output=True, text=True, check=True, timeout=120)
        measured = json.loads(out.stdout.splitlines()[-1])
        assert measured["frames"] == int(measured["duration"] * 24) >= minutes * 60 * 24 - 24
        peaks[minutes] = measured["kib"]
    # holding the frames would add 14,400 x 6.9 KB = 99 MB to the long one's peak
    assert peaks[10] / peaks[1] <= 1.2, peaks


def test_importing_render_does_not_import_moviepy():
    probe_code = ("import sys, render\nassert 'moviepy' not in sys.modules\n"
                  "from render import audiogram_clip\nassert 'moviepy' in sys.modules")
    subprocess.run([sys.executable, "-c", probe_code], cwd=ROOT, check=True, timeout=60)
    with audiogram_clip(SAMPLE, width=160, height=90, end=0.5) as clip:
        assert isinstance(clip, AudiogramClip)


def test_the_readme_example_runs(tmp_path: Path):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Use the audiogram in your own moviepy edit"):]
    code = section[section.index("```python\n") + 10 : section.index("\n```\n")]
    # the same code on a small canvas and a short window, its files found from anywhere
    small = code.replace("size=(1280, 720)", "size=(320, 180)").replace("end=15", "end=2")
    for folder in ("samples/", "render/fonts/"):
        small = small.replace(f'"{folder}', f'"{ROOT / folder}/')
    assert small.count(str(ROOT)) == 4 and "size=(320, 180)" in small and "end=2" in small
    subprocess.run([sys.executable, "-c", small], cwd=tmp_path, env={"PYTHONPATH": str(ROOT)},
                   capture_output=True, check=True, timeout=120)
    info = probe(tmp_path / "episode-edit.mp4")
    assert float(stream(info, "video")["duration"]) == pytest.approx(4.0, abs=0.05)
    assert float(stream(info, "audio")["duration"]) == pytest.approx(4.0, abs=0.05)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["episode-edit.mp4"]
