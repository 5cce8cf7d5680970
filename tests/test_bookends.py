"""Intros, outros and fades (render.compose): composed with moviepy, joined to a body
that is never re-encoded, one soundtrack over all of it; through render_video, the
real API and worker and a split render (tests/test_split.py, on its fleet). Small
canvases and short clips throughout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from render import RenderSpec, render_video
from render.audio import ffmpeg_exe
from render.errors import InvalidVideo, RenderCanceled
from render.spec import Assets
from tests.helpers.media import frames_rgb, make_video, probe, rms, sound
from tests.helpers.samples import SAMPLE

FPS = 30
BASE = {"width": 320, "height": 180, "fps": FPS, "background": "#106030", "end": 2}
#: Frames of the 2 s body, the 1 s intro and the 0.6 s outro at 30 fps.
BODY, INTRO, OUTRO = 60, 30, 18


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bookends")
    return {
        # 4:3 with a 1 kHz tone: covering the 16:9 canvas crops its top and bottom
        "intro": make_video(folder / "intro.mp4", size="320x240", seconds=1.0, tone=1000),
        # portrait and silent, at another frame rate: fitting leaves wide side borders
        "outro": make_video(folder / "outro.mov", size="180x320", fps=25, seconds=0.6,
                            tone=None),
        "long": make_video(folder / "long.mp4", size="32x32", fps=1, seconds=61, tone=None),
        # a sounding outro, for the fade that is not its own
        "loud-outro": make_video(folder / "loud.mp4", size="320x180", seconds=0.6, tone=500),
    }


def spec_of(**options: object) -> RenderSpec:
    return RenderSpec(**{**BASE, **options})


def packet_hashes(video: Path) -> list[str]:
    """The MD5 of each video packet, as stored (``-c copy``: nothing decoded), without
    its parameter sets: the join repeats the SPS and PPS in-band where each part
    starts; every slice is the same bytes."""
    out = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(video), "-map", "0:v",
                          "-c", "copy", "-bsf:v", "filter_units=remove_types=7|8",
                          "-f", "framemd5", "-"], capture_output=True,
                         text=True, check=True).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines()
            if line and not line.startswith("#")]


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name not in keep)


def test_intro_and_outro_are_placed_around_the_body_with_their_sound(
    videos: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out.mp4"
    spec = spec_of(introKey="u/intro.mp4", outroKey="u/outro.mov", introFit="fit")
    result = render_video(SAMPLE, out, spec,
                          assets=Assets(intro=videos["intro"], outro=videos["outro"]))
    assert result.frames == INTRO + BODY + OUTRO
    assert result.duration == pytest.approx((INTRO + BODY + OUTRO) / FPS, abs=1e-9)
    plain = render_video(SAMPLE, tmp_path / "plain.mp4", spec_of())
    assert result.loudest == pytest.approx(plain.loudest + INTRO / FPS)  # the thumbnail's
    (tmp_path / "plain.mp4").unlink()
    info = probe(out, count_packets=True)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    assert int(video["nb_read_packets"]) == INTRO + BODY + OUTRO
    assert (video["width"], video["height"], video["pix_fmt"]) == (320, 180, "yuv420p")
    assert float(info["format"]["duration"]) == pytest.approx(result.duration, abs=0.03)
    assert leftovers(tmp_path, {"out.mp4"}) == []  # no part, list or soundtrack left

    intro, body, outro = frames_rgb(out, [INTRO // 2, INTRO + BODY // 2, INTRO + BODY + 7])
    # fit: the 4:3 intro is 240x180 between 40 px borders of the background colour,
    # the portrait outro 101x180 between 109 px ones
    bg = np.array([16, 96, 48])
    for frame, inside, border in ((intro, 45, 35), (outro, 112, 105)):
        for x in (3, border, 319 - border, 316):
            assert np.abs(frame[90, x] - bg).max() < 40, (x, frame[90, x])
        for x in (inside, 160, 319 - inside):
            assert np.abs(frame[90, x] - bg).max() > 60, (x, frame[90, x])
    # the body is the audiogram on its background, not a bookend
    assert np.abs(body[5, 5] - bg).max() < 40

    samples = sound(out)
    tone = samples[4800:43200]  # 0.1..0.9 s: the intro's 1 kHz tone
    assert rms(tone) > 0.05  # lavfi sine: amplitude 1/8, RMS 0.088
    spectrum = np.abs(np.fft.rfft(tone))
    assert abs(np.argmax(spectrum) * 48000 / len(tone) - 1000) < 5
    start = (INTRO + BODY) * 48000 // FPS
    assert rms(samples[start + 2400:start + 21600]) < 1e-3  # the silent outro is silence


def test_cover_crops_the_intro_to_the_canvas(videos: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cover.mp4"
    render_video(SAMPLE, out, spec_of(introKey="u/intro.mp4", end=0.5),
                 assets=Assets(intro=videos["intro"]))
    (frame,) = frames_rgb(out, [5])
    bg = np.array([16, 96, 48])
    # the picture reaches every edge: no border of the background colour
    for y, x in ((90, 1), (90, 318), (1, 160), (178, 160)):
        assert np.abs(frame[y, x] - bg).max() > 60, (y, x, frame[y, x])
    # the same intro decoded straight, scaled to 320 wide and cropped to the middle
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(videos["intro"]), "-vf",
                          "scale=320:240,crop=320:180", "-frames:v", "6", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    direct = np.frombuffer(raw, np.uint8).reshape(-1, 180, 320, 3)[5].astype(int)
    assert np.abs(frame - direct).mean() < 12  # encoding noise, no shift or stretch


def test_the_body_is_not_re_encoded(videos: dict[str, Path], tmp_path: Path) -> None:
    plain = tmp_path / "plain.mp4"
    render_video(SAMPLE, plain, spec_of())
    composed = tmp_path / "composed.mp4"
    render_video(SAMPLE, composed, spec_of(introKey="u/intro.mp4", outroKey="u/outro.mov"),
                 assets=Assets(intro=videos["intro"], outro=videos["outro"]))
    body = packet_hashes(plain)
    assert len(body) == BODY
    assert packet_hashes(composed)[INTRO:INTRO + BODY] == body


def test_fades_on_the_body_and_on_the_bookends(
    videos: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "fades.mp4"
    render_video(SAMPLE, out, spec_of(fadeIn=0.5, fadeOut=0.5, end=3, background="#c0c0c0"))
    first, mid, last = frames_rgb(out, [0, 45, 89])
    assert first.max() < 20  # from black
    assert mid.mean() > 150  # the light background at full level
    assert last.mean() < mid.mean() / 5  # to black
    samples = sound(out)
    assert rms(samples[:240]) < 0.01 * rms(samples[24000:72000])  # 5 ms in: near silence
    assert rms(samples[-240:]) < 0.05 * rms(samples[24000:72000])

    # with an intro, the fade in is the intro's (moviepy's FadeIn), the body's is not faded
    out = tmp_path / "intro-fade.mp4"
    render_video(SAMPLE, out, spec_of(introKey="u/intro.mp4", fadeIn=0.5, end=1,
                                      background="#c0c0c0"),
                 assets=Assets(intro=videos["intro"]))
    first, intro_mid, body_first = frames_rgb(out, [0, 20, INTRO])
    assert first.max() < 20 and intro_mid.mean() > 60
    assert body_first.mean() > 150
    samples = sound(out)
    assert rms(samples[:240]) < 0.02 * rms(samples[28800:43200])


def test_a_bookend_takes_only_the_fade_on_its_side(
    videos: dict[str, Path], tmp_path: Path
) -> None:
    """The fade in is the first part's, the fade out the last part's: an outro with no
    intro does not fade its sound in, an intro with no outro does not fade its out."""
    loud = rms(sound(videos["loud-outro"]))
    out = tmp_path / "outro-fade-in.mp4"
    render_video(SAMPLE, out, spec_of(outroKey="u/outro.mp4", fadeIn=1, end=1),
                 assets=Assets(outro=videos["loud-outro"]))
    samples = sound(out)
    assert rms(samples[:240]) < 0.05 * rms(samples[24000:48000])  # the body fades in
    outro_start = BODY // 2 * 48000 // FPS  # 1 s of body
    assert rms(samples[outro_start:outro_start + 2400]) > 0.7 * loud  # the outro does not

    out = tmp_path / "intro-fade-out.mp4"
    render_video(SAMPLE, out, spec_of(introKey="u/intro.mp4", fadeOut=1, end=1),
                 assets=Assets(intro=videos["intro"]))
    samples = sound(out)
    intro_end = INTRO * 48000 // FPS
    tone = rms(sound(videos["intro"]))
    assert rms(samples[intro_end - 2400:intro_end]) > 0.7 * tone  # the intro does not
    assert rms(samples[-240:]) < 0.05 * rms(samples[intro_end:intro_end + 9600])


def test_a_fade_longer_than_the_body_spans_it_in_picture_and_sound(tmp_path: Path) -> None:
    out = tmp_path / "long-fade.mp4"
    render_video(SAMPLE, out, spec_of(fadeIn=10, end=1, background="#c0c0c0"))
    (last,) = frames_rgb(out, [29])
    assert last.mean() > 150  # at full level by the body's last frame, as the sound is


def test_a_bad_intro_is_invalid_video_and_leaves_nothing(
    videos: dict[str, Path], tmp_path: Path
) -> None:
    garbage = tmp_path / "noise.mp4"
    garbage.write_bytes(np.random.default_rng(7).bytes(20_000))
    # header fine, picture data destroyed: found while decoding, not by the probe
    broken = tmp_path / "broken.mp4"
    data = bytearray(make_video(tmp_path / "source.mp4", seconds=1.0).read_bytes())
    middle = len(data) // 3
    data[middle:2 * middle] = np.random.default_rng(8).bytes(middle)
    broken.write_bytes(data)
    cases = [(garbage, "could not be read as a video"),
             (videos["long"], "61.0 s long, over the limit of 60 s"),
             (broken, "could not be decoded")]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for intro, words in cases:
        with pytest.raises(InvalidVideo, match=words) as caught:
            render_video(SAMPLE, out_dir / "out.mp4", spec_of(introKey="u/i.mp4"),
                         assets=Assets(intro=intro))
        assert caught.value.code == "invalid_video"
        assert str(tmp_path) not in caught.value.message
        assert leftovers(out_dir, set()) == []


def test_a_canceled_composition_stops_and_leaves_nothing(
    videos: dict[str, Path], tmp_path: Path
) -> None:
    asked = 0

    def stop() -> bool:
        nonlocal asked
        asked += 1
        return asked > 50  # inside the intro's frames

    with pytest.raises(RenderCanceled):
        render_video(SAMPLE, tmp_path / "out.mp4", spec_of(introKey="u/intro.mp4"),
                     assets=Assets(intro=videos["intro"]), should_stop=stop)
    assert leftovers(tmp_path, set()) == []
    children = subprocess.run(["ps", "--ppid", str(os.getpid()), "-o", "comm="],
                              capture_output=True, text=True, check=False).stdout
    assert "ffmpeg" not in children


def test_python_m_render_writes_the_composed_file(videos: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cli.mp4"
    result = subprocess.run(
        [sys.executable, "-m", "render", str(SAMPLE), "-o", str(out), "--size", "320x180",
         "--end", "1", "--intro", str(videos["intro"]), "--outro", str(videos["outro"]),
         "--intro-fit", "fit", "--fade-in", "0.5", "--fade-out", "0.5", "-q"],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    frames = INTRO + FPS + OUTRO
    assert f"{frames / FPS:.2f} s" in result.stdout and f"{frames} frames" in result.stdout
    counted = next(s for s in probe(out, count_packets=True)["streams"]
                   if s["codec_type"] == "video")
    assert int(counted["nb_read_packets"]) == frames


def test_a_decoder_that_hangs_after_its_picture_is_killed_and_the_video_refused(
    videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from render import compose

    spec = spec_of(introKey="uploads/x/intro.mp4")
    intro = compose.Bookends.of(spec, Assets(intro=videos["intro"])).intro
    assert intro is not None
    frames = compose.UploadFrames(intro, FPS, (320, 240), lambda index: None)
    frames.close()
    # a decoder that has closed its output and never exits
    frames._process = subprocess.Popen(["sh", "-c", "exec >&-; exec sleep 60"],
                                       stderr=subprocess.PIPE)
    monkeypatch.setattr(compose, "DECODER_EXIT_SECONDS", 0.5)
    with pytest.raises(InvalidVideo, match="did not exit after its last frame"):
        frames._check()
    assert frames._process.poll() is not None  # killed, not left behind
