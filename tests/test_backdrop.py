"""Video backgrounds (render.backdrop): the uploaded video looped behind every frame.

Frames are compared raw, before any encoder, so nothing hides a wrong frame: the
background follows the video and loops; any frame (a window of a split render, a
thumbnail) is the one the unsplit render draws; blur and darkening do to a video
what they do to an image; artwork, titles and a style's static parts stay on top.
A render split into windows and joined (render.split) matches the unsplit one. Bad
videos fail ``render_video`` with ``invalid_video`` and leave neither a file nor an
ffmpeg behind; so does a cancel. Then ``python -m render``, the CLI, and one job each
way through the real API and worker. Canvases are small (320x180) and videos short,
to keep this quick. (Peak memory against the audio's length is measured by
``bench/render.py`` at 720p: a 20-minute render takes over 30 s even at 64x36.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import render.backdrop as backdrop_module
from render import split
from render.analysis import Analysis
from render.audio import ffmpeg_exe
from render.backdrop import Backdrop
from render.canvas import Planes
from render.engine import Scene, render_video
from render.errors import InvalidVideo, RenderCanceled
from render.scene import cover
from render.spec import Assets, RenderSpec
from tests.helpers.e2e import download, poll, submit, upload
from tests.helpers.golden import CAPTIONS, synth_signal
from tests.helpers.media import make_audio, make_video
from tests.helpers.samples import ARTWORK, SAMPLE

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"width": 320, "height": 180, "fps": 30}
#: A window as a worker of a split render draws it: 40 frames (the signal has 120).
WINDOW = 40


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("backdrop")
    still = folder / "still.png"
    picture = np.asarray(cover(Image.open(ARTWORK).convert("RGB"), 320, 180)).copy()
    picture[:, (np.arange(320) // 8) % 2 == 0] //= 2  # stripes: edges for the blur to soften
    Image.fromarray(picture).save(still)
    # the still as a video, losslessly (so only the colour conversion tells them apart)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-loop", "1", "-i", str(still), "-t", "0.2",
                    "-r", "30", "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p",
                    str(folder / "still.mp4")], check=True, timeout=60)
    srt = folder / "cue.srt"
    srt.write_text(CAPTIONS, encoding="utf-8")
    return {
        "signal": synth_signal(folder),
        "captions": srt,
        "still": still,
        "still.mp4": folder / "still.mp4",
        # 24 fps for 1.25 s under a 30 fps render: a loop of 38 frames, and a 4:3
        # picture cover-fitted to 16:9
        "loop": make_video(folder / "loop.webm", size="240x180", fps=24, seconds=1.25,
                           tone=None, codec="libvpx-vp9"),
        "clip": make_video(folder / "clip.mp4", size="320x180", seconds=1.0),
    }


@pytest.fixture(params=["one process", "passes"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of playing the loop: kept by ffmpeg's loop filter, or a pass per play
    (what a long loop at a large size gets)."""
    if request.param == "passes":
        monkeypatch.setattr(backdrop_module, "LOOP_BUFFER_BYTES", 0)
    return request.param


def spec_with(**options: object) -> RenderSpec:
    return RenderSpec(**SMALL, backgroundVideoKey="uploads/x/loop.webm", **options)


def read(backdrop: Backdrop, indices: list[int]) -> list[np.ndarray]:
    planes = Planes.empty(backdrop.width, backdrop.height)
    out = []
    for index in indices:
        backdrop.read_into(planes, index)
        out.append(planes.buffer.copy())
    return out


def ffmpeg_children() -> list[str]:
    """Command lines of this process's ffmpeg children still running."""
    out = subprocess.run(["ps", "-ww", "--ppid", str(os.getpid()), "-o", "args="],
                         capture_output=True, text=True, check=False).stdout
    return [line for line in out.splitlines() if "ffmpeg" in line]


# --- the frames --------------------------------------------------------------------


def test_the_background_follows_the_video_and_loops(media: dict[str, Path], mode: str) -> None:
    backdrop = Backdrop.open(media["loop"], spec_with())
    loop = backdrop.loop_frames
    assert loop == 38 and backdrop.loops_in_ffmpeg == (mode == "one process")
    try:
        frames = read(backdrop, list(range(2 * loop + 6)))
    finally:
        backdrop.close()
    assert ffmpeg_children() == []
    assert not np.array_equal(frames[0], frames[4])  # the picture moves
    for index in range(loop + 6):  # and plays again from its start, frame for frame
        assert np.array_equal(frames[index], frames[index + loop]), f"frame {index}"
    # the first frame is the video's first, cover-fitted (4:3 cropped to 16:9)
    first = Planes.empty(320, 180)
    first.buffer[:] = frames[0]
    assert first.to_rgb().shape == (180, 320, 3)


def test_any_frame_asked_for_alone_is_the_one_the_whole_loop_shows(
    media: dict[str, Path], mode: str
) -> None:
    backdrop = Backdrop.open(media["loop"], spec_with())
    loop = backdrop.loop_frames
    try:
        sequential = read(backdrop, list(range(2 * loop)))
        for index in (loop + 7, 3, 20, 2 * loop - 1, 0, loop):  # thumbnails, windows
            (alone,) = read(backdrop, [index])
            assert np.array_equal(alone, sequential[index]), f"frame {index}"
    finally:
        backdrop.close()


@pytest.mark.parametrize(("style", "passes"), [("bars", False), ("progress", True)])
def test_every_window_draws_the_unsplit_frames_over_a_video(
    media: dict[str, Path], style: str, passes: bool, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if passes:  # the loop read by a pass per play, as a long loop at a large size is
        monkeypatch.setattr(backdrop_module, "LOOP_BUFFER_BYTES", 0)
    spec = RenderSpec(**{**SMALL, "width": 360, "height": 360}, style=style,
                      backgroundVideoKey="uploads/x/loop.webm", title="Episode 9",
                      artworkKey="uploads/x/art.png", captionsKey="uploads/x/cue.srt",
                      backgroundBlur=10, backgroundDarken=0.3)
    assets = Assets(background_video=media["loop"], artwork=ARTWORK, captions=media["captions"])
    planes = Planes.empty(360, 360)
    with Scene(media["signal"], spec, assets) as whole:
        unsplit = []
        for index in range(whole.frames):
            whole.draw(planes, index)
            unsplit.append(planes.buffer.copy())
        whole.analysis.save(tmp_path / "features.npz")
        frames = whole.frames
    for first in range(0, frames, WINDOW):  # each window as its own worker would
        with Scene.from_analysis(Analysis.load(tmp_path / "features.npz"), spec,
                                 assets) as window:
            for index in range(first, min(first + WINDOW, frames)):
                window.draw(planes, index)
                assert np.array_equal(planes.buffer, unsplit[index]), f"frame {index}"


def test_blur_and_darken_do_to_a_video_what_they_do_to_an_image(media: dict[str, Path]) -> None:
    looks = {}
    for blur, darken in ((0, 0), (20, 0), (0, 0.6), (40, 0.4)):
        look = {**SMALL, "style": "bars", "backgroundBlur": blur, "backgroundDarken": darken}
        with Scene(media["signal"], RenderSpec(**look, backgroundKey="u/x/still.png"),
                   Assets(background=media["still"])) as image:
            image.draw(planes := Planes.empty(320, 180), 10)
            from_image = planes.to_rgb().astype(np.float32)
        with Scene(media["signal"], RenderSpec(**look, backgroundVideoKey="u/x/still.mp4"),
                   Assets(background_video=media["still.mp4"])) as video:
            video.draw(planes, 10)
            from_video = planes.to_rgb().astype(np.float32)
        difference = np.abs(from_image - from_video).mean()
        # two approximations of one Gaussian (Pillow: box passes; ffmpeg: a recursive
        # filter) differ by a few levels on sharp stripes; colour conversion alone by 1
        limit = 3.5 if blur else 1.5
        assert difference < limit, f"blur {blur}, darken {darken}: {difference:.2f}"
        looks[blur, darken] = from_video[:40]  # above the animation: the background alone
    plain = looks[0, 0]
    # and they do something: darker by the factor asked, softer
    assert looks[0, 0.6].mean() == pytest.approx(plain.mean() * 0.4, rel=0.05)
    assert np.abs(looks[20, 0] - plain).mean() > 2
    edges = np.abs(np.diff(plain, axis=1)).mean()
    assert np.abs(np.diff(looks[20, 0], axis=1)).mean() < edges * 0.7


def test_artwork_and_titles_stay_on_top_of_the_moving_background(
    media: dict[str, Path],
) -> None:
    spec = spec_with(style="bars", title="Episode 9", subtitle="On top",
                     artworkKey="uploads/x/art.png")
    assets = Assets(background_video=media["clip"], artwork=ARTWORK)
    planes = Planes.empty(320, 180)
    with Scene(media["signal"], spec, assets) as scene:
        scene.draw(planes, 5)
        early, early_y = planes.to_rgb(), planes.y.copy()
        scene.draw(planes, 20)
        late, late_y = planes.to_rgb(), planes.y.copy()
        art, title = scene.layout.artwork, scene.layout.title
    untitled = spec.model_copy(update={"title": None, "subtitle": None})
    with Scene(media["signal"], untitled, assets) as scene:
        scene.draw(planes, 5)
        bare_y = planes.y.copy()
    assert art is not None and title is not None
    inside = (slice(art.y + 2, art.y + art.h - 2), slice(art.x + 4, art.x + art.w - 4))
    assert np.array_equal(early[inside], late[inside])  # the artwork does not move
    with Scene(media["signal"], spec.model_copy(update={"background_video_key": None}),
               Assets(artwork=ARTWORK)) as still:
        still.draw(planes, 5)
        over_colour = planes.to_rgb()
    assert np.abs(early[inside].astype(int) - over_colour[inside]).mean() < 2
    # outside the artwork and the animation the video moves
    corner = (slice(0, art.y), slice(0, 320))
    assert not np.array_equal(early[corner], late[corner])
    # the title's white letters are there over every frame
    text = (slice(title.rect.y, title.rect.y + title.rect.h),
            slice(title.rect.x, title.rect.x + title.rect.w))
    white = [(y[text] >= 230).sum() for y in (early_y, late_y, bare_y)]
    assert min(white[:2]) > white[2] + 40, white


def test_a_render_split_into_windows_and_joined_is_the_unsplit_render(
    media: dict[str, Path], tmp_path: Path
) -> None:
    """The split path for real (render.split: analyse, windows, the audio, the join) over
    a video background: the joined file decodes to the unsplit render's frames, up to
    x264's noise, and the seam (frame 150) is no worse than any other frame."""
    audio = make_audio(tmp_path / "ten.wav", "sine=frequency=330:duration=10")
    # 30 fps, so every frame a new picture; high quality, so little x264 noise
    spec = spec_with(style="bars", title="Split", backgroundDarken=0.2, quality=14)
    assets = Assets(background_video=media["clip"])
    whole = tmp_path / "whole.mp4"
    render_video(audio, whole, spec, assets=assets)
    result = split.analyse(audio, spec, tmp_path / "features.npz", assets=assets)
    windows = split.plan_windows(result.frames, spec.fps, 5)
    assert len(windows) == 2  # two GOPs of 150 frames
    parts = []
    for window in windows:
        parts.append(tmp_path / f"window-{window.index}.mp4")
        split.render_window(tmp_path / "features.npz", spec, window, parts[-1], assets=assets)
    split.encode_sound(audio, spec, result.duration, tmp_path / "sound.m4a")
    joined = tmp_path / "joined.mp4"
    split.join(parts, tmp_path / "sound.m4a", joined)
    a, b = decoded(joined), decoded(whole)
    assert a.shape == b.shape == (300, 180 * 3 // 2, 320)
    errors = np.abs(a.astype(np.int16) - b).mean(axis=(1, 2))
    assert errors.max() < 2.0, errors.max()  # each window its own encoder: x264's noise
    # while a background one frame off at the seam would be far off
    assert np.abs(a[150].astype(np.int16) - b[151]).mean() > 3 * errors.max()
    assert ffmpeg_children() == []


def decoded(video: Path) -> np.ndarray:
    """Every frame of ``video`` as raw yuv420p, (frames, rows of the three planes, width)."""
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(video), "-f", "rawvideo",
                          "-pix_fmt", "yuv420p", "pipe:1"], capture_output=True, check=True,
                         timeout=60).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, 180 * 3 // 2, 320)


def test_python_m_render_takes_a_background_video(media: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    done = subprocess.run(
        [sys.executable, "-m", "render", str(media["signal"]), "-o", str(out), "--size",
         "320x180", "--background-video", str(media["loop"]), "--background-blur", "4",
         "--end", "1"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert decoded(out).shape[0] == 30


# --- bad videos, cancel --------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_videos(media: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("bad")
    garbled = folder / "garbled.mp4"
    good = media["clip"].read_bytes()
    # the index (moov, at the end) stays, every frame's bytes (mdat) are noise
    start, index = good.find(b"mdat") + 4, good.rfind(b"moov") - 4
    noise = np.random.default_rng(7).integers(0, 256, index - start, np.uint8).tobytes()
    garbled.write_bytes(good[:start] + noise + good[index:])
    garbage = folder / "garbage.webm"
    garbage.write_bytes(b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 20)
    return {
        "not a video": (garbage, "could not be read as a video"),
        "over 4K": (make_video(folder / "huge.mp4", size="4000x2000", fps=5, seconds=0.4,
                               tone=None), "larger than 4K"),
        "unknown codec": (make_video(folder / "old.mp4", tone=None, codec="mpeg2video",
                                     seconds=0.4), "not supported"),
        "over 10 minutes": (make_video(folder / "long.mp4", size="32x32", fps=1, seconds=601,
                                       tone=None), "over the limit of 600 s"),
        "frames of noise": (garbled, "could not be decoded"),
    }


@pytest.mark.parametrize("case", ["not a video", "over 4K", "unknown codec", "over 10 minutes",
                                  "frames of noise"])
def test_a_bad_background_video_fails_the_render_with_invalid_video(
    media: dict[str, Path], bad_videos: dict, case: str, tmp_path: Path
) -> None:
    video, words = bad_videos[case]
    out = tmp_path / "out.mp4"
    with pytest.raises(InvalidVideo, match=words) as caught:
        render_video(media["signal"], out, spec_with(), assets=Assets(background_video=video))
    assert caught.value.code == "invalid_video"
    assert "background video" in caught.value.message
    assert str(video.parent) not in caught.value.message  # no worker paths
    assert not out.exists() and ffmpeg_children() == []


def test_a_cancel_stops_the_video_reader_too(media: dict[str, Path], tmp_path: Path) -> None:
    asked = iter(range(1000))
    out = tmp_path / "out.mp4"
    with pytest.raises(RenderCanceled):
        render_video(media["signal"], out, spec_with(),
                     assets=Assets(background_video=media["loop"]),
                     should_stop=lambda: next(asked) > 40)  # some frames in
    assert not out.exists() and ffmpeg_children() == []


# --- through the service --------------------------------------------------------------


def test_a_job_with_an_uploaded_background_video_renders(local_stack, media, tmp_path) -> None:
    background = upload(local_stack, media["loop"])
    audio = upload(local_stack, SAMPLE)
    job = submit(local_stack, {"kind": "render", "audioKey": audio, "options": {
        **SMALL, "backgroundVideoKey": background, "backgroundDarken": 0.2, "title": "Loop",
        "start": 1.0, "end": 4.0}})
    job, _ = poll(local_stack, job["jobId"])
    assert job["status"] == "complete", job["error"]
    assert abs(job["result"]["duration"] - 3.0) < 0.05
    video = download(job, tmp_path / "out.mp4")
    frames = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(video), "-vf",
                             "select='eq(n\\,0)+eq(n\\,20)'", "-fps_mode", "passthrough",
                             "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"],
                            capture_output=True, check=True).stdout
    first, later = np.frombuffer(frames, np.uint8).reshape(2, 180, 320)
    top = (slice(0, 30), slice(0, 320))  # above the titles: only the video
    assert np.abs(first[top].astype(int) - later[top]).mean() > 5  # it moves
    assert list((local_stack.workdir / "tmp").glob("soundreel-*")) == []


def test_the_cli_uploads_a_background_video_and_renders_over_it(local_stack, media,
                                                                tmp_path) -> None:
    out = tmp_path / "cli.mp4"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SOUNDREEL_")},
           "SOUNDREEL_URL": local_stack.base_url, "SOUNDREEL_API_KEY": local_stack.api_key}
    done = subprocess.run(
        [sys.executable, "-m", "client.cli", "render", str(SAMPLE), "-o", str(out), "--size",
         "320x180", "--end", "2", "--background-video", str(media["clip"])],
        env=env, cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL,
        timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert decoded(out).shape[0] == 60


def test_a_job_with_a_bad_background_video_fails_invalid_video(local_stack, bad_videos) -> None:
    huge, _ = bad_videos["over 4K"]
    background = upload(local_stack, huge)
    audio = upload(local_stack, SAMPLE)
    job = submit(local_stack, {"kind": "preview", "audioKey": audio,
                               "options": {**SMALL, "backgroundVideoKey": background}})
    job, _ = poll(local_stack, job["jobId"])
    assert job["status"] == "failed" and job["error"]["code"] == "invalid_video", job["error"]
    assert "larger than 4K" in job["error"]["message"]
