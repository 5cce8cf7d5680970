"""What the styles draw: golden frames, how the picture follows the sound, the
clip window, captions, sizes and presets, bad input, and where things go.

The golden frames in ``tests/golden`` are made by ``python -m tests.helpers.golden``;
rerun it on purpose after changing the look, and look at the new PNGs before
committing them.
"""

from __future__ import annotations

import functools
import itertools
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from render import (
    Assets,
    InvalidAudio,
    InvalidCaptions,
    InvalidImage,
    RenderError,
    RenderSpec,
    render_frames,
    render_video,
)
from render.audio import ffmpeg_exe
from render.engine import Scene
from render.layout import MIN_TEXT_SIDE, MIN_VIZ_SHARE, compute_layout
from render.spec import LAYOUTS, PRESETS, STYLES
from render.styles import Rect
from render.text import render_text_block, safe_area
from tests.helpers.golden import CASES, RATE, Case, render_case, synth_signal, write_wav
from tests.helpers.media import probe, stream

SMALL = {"width": 320, "height": 180, "fps": 30}
#: How far (max over R, G, B) a pixel must be from the background to count as drawn.
LIT = 40
#: Golden tolerances: FFT and float noise between numpy builds stays far below these;
#: a bar that moves or a colour that changes does not.
MAX_MEAN_DIFF = 1.0
MAX_FAR_FRACTION = 0.005
FAR = 24


# --- signals ------------------------------------------------------------------------


def tones(seconds: float) -> np.ndarray:
    """Sixteen log-spaced tones from 80 Hz to 8 kHz, so most bars have something to show;
    peak about 0.5."""
    t = np.arange(round(seconds * RATE)) / RATE
    freqs = np.geomspace(80, 8000, 16)
    phases = np.linspace(0, np.pi, freqs.size)  # spread out, so the peaks don't all align
    mix = sum(np.sin(2 * np.pi * f * t + p) for f, p in zip(freqs, phases, strict=True))
    return 0.5 * mix / np.abs(mix).max()


def seconds_of(samples: np.ndarray, start: float, end: float) -> np.ndarray:
    """A 0/1 mask over ``samples`` that is 1 from ``start`` to ``end`` seconds."""
    t = np.arange(samples.size) / RATE
    return ((t >= start) & (t < end)).astype(np.float64)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("styles")


@pytest.fixture(scope="module")
def golden_wav(media: Path) -> Path:
    return synth_signal(media)


@pytest.fixture(scope="module")
def quiet_then_loud(media: Path) -> Path:
    """The same tones for 4 s: the first 2 s 20 dB quieter than the last 2 s."""
    sound = tones(4.0)
    gain = 0.1 + 0.9 * seconds_of(sound, 2.0, 4.0)
    return write_wav(media / "quiet_then_loud.wav", sound * gain)


@pytest.fixture(scope="module")
def silence_then_sound(media: Path) -> Path:
    """2 s of digital silence, then 2 s of the tones."""
    sound = tones(4.0)
    return write_wav(media / "silence_then_sound.wav", sound * seconds_of(sound, 2.0, 4.0))


@pytest.fixture(scope="module")
def sound_from_one_second(media: Path) -> Path:
    """1 s of silence, then 3 s of the tones: a clip starting at 1 s starts with sound."""
    sound = tones(4.0)
    return write_wav(media / "sound_from_1s.wav", sound * seconds_of(sound, 1.0, 4.0))


# --- looking at frames --------------------------------------------------------------


def lit(frame: np.ndarray, rect: Rect, background: tuple[int, int, int]) -> np.ndarray:
    """(h, w) bool: the pixels of ``rect`` that are drawn over the background."""
    region = frame[rect.y : rect.y + rect.h, rect.x : rect.x + rect.w].astype(int)
    return np.abs(region - np.array(background)).max(axis=2) > LIT


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True in a 1-D bool array."""
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def compare(actual: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """(mean absolute difference over all channels, fraction of pixels off by more than FAR)."""
    diff = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
    return float(diff.mean()), float((diff.max(axis=2) > FAR).mean())


def matches_golden(actual: np.ndarray, expected: np.ndarray) -> bool:
    if actual.shape != expected.shape:
        return False
    mean, far = compare(actual, expected)
    return mean <= MAX_MEAN_DIFF and far <= MAX_FAR_FRACTION


def video_frame(video: Path, index: int, width: int, height: int) -> np.ndarray:
    """Frame ``index`` of ``video`` decoded to RGB."""
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(video), "-vf", f"select=eq(n\\,{index})",
         "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(height, width, 3)


def video_audio(video: Path, rate: int = 8000) -> np.ndarray:
    """The audio track of ``video`` decoded to mono float32 at ``rate``."""
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(video), "-map", "0:a:0", "-ac", "1",
         "-ar", str(rate), "-f", "f32le", "pipe:1"],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.float32)


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


# --- golden frames ------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_frames_match_the_golden_pictures(case: Case, golden_wav: Path, tmp_path: Path) -> None:
    failures = []
    frames = render_case(case, golden_wav)
    for seconds, actual in zip(case.times, frames, strict=True):
        golden = case.path(seconds)
        assert golden.exists(), f"{golden} is missing: run python -m tests.helpers.golden"
        expected = np.asarray(Image.open(golden).convert("RGB"))
        if matches_golden(actual, expected):
            continue
        written = tmp_path / golden.name.replace(".png", ".actual.png")
        Image.fromarray(actual).save(written)
        if actual.shape != expected.shape:
            failures.append(f"{golden.name}: size {actual.shape} != {expected.shape}")
            continue
        mean, far = compare(actual, expected)
        failures.append(
            f"{golden.name}: mean difference {mean:.2f} (max {MAX_MEAN_DIFF}), "
            f"{far:.2%} of pixels off by more than {FAR} (max {MAX_FAR_FRACTION:.1%}); "
            f"this render is {written}"
        )
    assert not failures, (
        "frames differ from tests/golden (if the new look is intended, rerun "
        "python -m tests.helpers.golden and review the PNGs):\n" + "\n".join(failures)
    )


def test_golden_check_fails_when_a_bar_moves_or_the_colour_changes(golden_wav: Path) -> None:
    case = next(case for case in CASES if case.name == "bars")
    expected = np.asarray(Image.open(case.path(1.7)).convert("RGB"))
    (same,) = render_frames(golden_wav, case.spec, [1.7])
    (recoloured,) = render_frames(
        golden_wav, case.spec.model_copy(update={"color": "#ffc040"}), [1.7]
    )
    moved = np.roll(same, 3, axis=1)  # a quarter of a bar's pitch to the right

    assert matches_golden(same, expected)
    assert not matches_golden(recoloured, expected)
    assert not matches_golden(moved, expected)


# --- the picture follows the sound --------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{"style": "bars"}, {"style": "mirror"}, {"style": "circle"}, {"style": "wave"},
     {"style": "wave", "filled": False}],
    ids=["bars", "mirror", "circle", "wave", "wave-line"],
)  # fmt: skip
def test_louder_sound_draws_bigger_shapes(options: dict, quiet_then_loud: Path) -> None:
    # bars scale to the clip's own loudness, so both levels are in one clip
    spec = RenderSpec(**SMALL, **options)
    viz = Scene(quiet_then_loud, spec).layout.viz
    quiet, loud = render_frames(quiet_then_loud, spec, [1.0, 3.0])

    quiet_lit = lit(quiet, viz, spec.background_rgb)
    loud_lit = lit(loud, viz, spec.background_rgb)
    assert loud_lit.sum() > 1.5 * quiet_lit.sum(), (quiet_lit.sum(), loud_lit.sum())
    if spec.style in ("bars", "mirror"):  # no bar shrinks when the same sound gets louder
        assert np.all(loud_lit.sum(axis=0) >= quiet_lit.sum(axis=0) - 1)


@pytest.mark.parametrize("style", ["bars", "mirror"])
def test_silence_shows_every_bar_at_the_same_minimal_height(
    style: str, silence_then_sound: Path
) -> None:
    spec = RenderSpec(**SMALL, style=style)
    viz = Scene(silence_then_sound, spec).layout.viz
    silent, sounding = render_frames(silence_then_sound, spec, [0.8, 3.0])

    heights = lit(silent, viz, spec.background_rgb).sum(axis=0)
    bars = [int(heights[start:stop].max()) for start, stop in runs(heights > 0)]
    assert len(bars) >= 16
    assert len(set(bars)) == 1, f"bars of different heights in silence: {bars}"
    assert bars[0] <= 0.08 * viz.h
    sounding_heights = lit(sounding, viz, spec.background_rgb).sum(axis=0)
    assert sounding_heights.max() > 4 * bars[0]  # the same bars do rise with sound


@pytest.mark.parametrize("filled", [True, False], ids=["wave", "wave-line"])
def test_silence_shows_the_wave_as_a_flat_line(filled: bool, silence_then_sound: Path) -> None:
    spec = RenderSpec(**SMALL, style="wave", filled=filled)
    viz = Scene(silence_then_sound, spec).layout.viz
    (silent,) = render_frames(silence_then_sound, spec, [0.8])

    drawn = lit(silent, viz, spec.background_rgb)
    rows = np.flatnonzero(drawn.any(axis=1))
    assert drawn.all(axis=0).sum() == 0  # nothing fills a column
    assert drawn.any(axis=0).mean() > 0.95  # the line runs across the whole width
    assert rows.size <= 4, f"the line is {rows.size} rows thick"
    assert abs((rows.mean() + 0.5) - viz.h / 2) <= 2  # on the centre line


def test_silence_shows_the_circle_as_a_thin_ring(silence_then_sound: Path) -> None:
    spec = RenderSpec(**SMALL, style="circle")
    viz = Scene(silence_then_sound, spec).layout.viz
    silent, sounding = render_frames(silence_then_sound, spec, [0.8, 3.0])

    def radii(frame: np.ndarray) -> np.ndarray:
        rows, cols = np.nonzero(lit(frame, viz, spec.background_rgb))
        return np.hypot(cols + 0.5 - viz.w / 2, rows + 0.5 - viz.h / 2)

    ring, bars = radii(silent), radii(sounding)
    assert ring.size > 0, "the idle ring is drawn"
    assert ring.max() - ring.min() <= 4, (ring.min(), ring.max())
    assert bars.max() - bars.min() > 4 * (ring.max() - ring.min() + 1)


def test_progress_draws_the_silent_part_as_a_flat_line(silence_then_sound: Path) -> None:
    spec = RenderSpec(**SMALL, style="progress", color="#ff7040")
    viz = Scene(silence_then_sound, spec).layout.viz
    (frame,) = render_frames(silence_then_sound, spec, [3.9])  # all played, in colour

    heights = lit(frame, viz, spec.background_rgb).sum(axis=0)
    silent_half = heights[: int(viz.w * 0.48)]
    sounding_half = heights[int(viz.w * 0.52) : int(viz.w * 0.95)]
    assert silent_half.max() <= 0.04 * viz.h, silent_half.max()
    assert sounding_half.max() > 0.5 * viz.h


@pytest.mark.parametrize("seconds", [0.0, 0.5, 1.0, 1.7, 2.0, 3.0, 3.5])
def test_progress_playhead_is_at_the_played_fraction_of_the_width(
    seconds: float, golden_wav: Path
) -> None:
    spec = RenderSpec(**SMALL, style="progress", color="#ff7040")  # text colour is white
    scene = Scene(golden_wav, spec)
    viz, duration = scene.layout.viz, scene.analysis.duration
    (frame,) = render_frames(golden_wav, spec, [seconds])

    region = frame[viz.y : viz.y + viz.h, viz.x : viz.x + viz.w].astype(int)
    white = (region.min(axis=2) >= 235).mean(axis=0) > 0.9  # a full-height white column
    heads = runs(white)
    assert len(heads) == 1, f"expected one playhead, found columns {heads}"
    expected = viz.x + seconds / duration * viz.w
    assert abs(viz.x + heads[0][0] - expected) <= 2, (viz.x + heads[0][0], expected)


# --- captions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "shown"),
    [(0.0, (1.0, 2.0)), (0.5, (0.5, 1.5))],
    ids=["whole-audio", "clip-from-0.5s"],
)
def test_captions_show_only_during_their_cue(
    start: float, shown: tuple[float, float], golden_wav: Path, tmp_path: Path
) -> None:
    srt = tmp_path / "talk.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:02,000\nHello, world\n")
    spec = RenderSpec(**SMALL, style="bars", start=start)
    assets = Assets(captions=srt)
    box = Scene(golden_wav, spec, assets).layout.captions
    assert box is not None
    # times on the clip's timeline; each is a few ms into a frame, clear of the edges
    times = [0.2, 0.48, 0.52, 0.98, 1.02, 1.48, 1.52, 1.98, 2.02, 2.5, 3.3]
    frames = render_frames(golden_wav, spec, times, assets=assets)

    for seconds, frame in zip(times, frames, strict=True):
        frame_start = int(seconds * spec.fps) / spec.fps
        inside = shown[0] <= frame_start < shown[1]
        drawn = lit(frame, box, spec.background_rgb).sum()
        if inside:
            assert drawn > 0.02 * box.w * box.h, f"no caption at {seconds} s"
        else:
            assert drawn == 0, f"caption pixels at {seconds} s, outside its cue"


# --- the clip window ----------------------------------------------------------------


def test_start_and_end_give_a_video_of_that_window_with_its_audio(
    sound_from_one_second: Path, tmp_path: Path
) -> None:
    spec = RenderSpec(**SMALL, style="bars", start=1.0, end=3.0)
    out = tmp_path / "window.mp4"
    result = render_video(sound_from_one_second, out, spec)

    info = probe(out, count_packets=True)
    assert float(info["format"]["duration"]) == pytest.approx(2.0, abs=0.05)
    assert float(stream(info, "audio")["duration"]) == pytest.approx(2.0, abs=0.05)
    assert int(stream(info, "video")["nb_read_packets"]) == 60
    assert result.frames == 60

    # the window really is offset: the first frame and the first 100 ms already sound
    viz = Scene(sound_from_one_second, spec).layout.viz
    whole = RenderSpec(**SMALL, style="bars")
    (idle,) = render_frames(sound_from_one_second, whole, [0.5])
    first = video_frame(out, 0, spec.width, spec.height)
    sounding, silent = lit(first, viz, spec.background_rgb), lit(idle, viz, spec.background_rgb)
    assert sounding.sum() > 3 * silent.sum(), (sounding.sum(), silent.sum())
    audio = video_audio(out)
    assert audio.size / 8000 == pytest.approx(2.0, abs=0.05)
    assert rms(audio[:800]) > 0.3 * rms(audio), "the video's audio starts silent"
    assert rms(audio[:800]) > 0.05


# --- presets and sizes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "size"), [("portrait", (1080, 1920)), ("square", (1080, 1080)),
                         ("landscape", (1920, 1080))],
)  # fmt: skip
def test_preset_sets_the_canvas_size(preset: str, size: tuple[int, int]) -> None:
    spec = RenderSpec(preset=preset)
    assert (spec.width, spec.height) == size
    # the same size given again is no conflict (an API client echoing the preset)
    assert RenderSpec.model_validate({"preset": preset, "width": spec.width}) == spec


@pytest.mark.parametrize(
    "size", [{"width": 1280}, {"height": 720}, {"width": 1920, "height": 1080}]
)
def test_preset_with_a_different_size_is_refused(size: dict[str, int]) -> None:
    with pytest.raises(ValidationError, match="either preset or width/height"):
        RenderSpec(preset="portrait", **size)


@pytest.mark.parametrize(
    ("field", "value"),
    [("width", 321), ("height", 181), ("width", 5000), ("height", 5000), ("width", 0),
     ("height", 0), ("width", -2)],
)  # fmt: skip
def test_impossible_sizes_are_refused_naming_the_field(field: str, value: int) -> None:
    with pytest.raises(ValidationError) as caught:
        RenderSpec(**{field: value})
    errors = caught.value.errors()
    assert [error["loc"] for error in errors] == [(field,)]


# --- bad input ----------------------------------------------------------------------


def expect_render_error(
    error_type: type[RenderError], audio: Path, out: Path, spec: RenderSpec,
    assets: Assets | None = None,
) -> RenderError:  # fmt: skip
    """Render, expecting ``error_type``; no file is left behind either way."""
    with pytest.raises(error_type) as caught:
        render_video(audio, out, spec, assets=assets)
    assert not out.exists()
    error = caught.value
    assert str(error) == error.message and error.message.strip()
    assert "Traceback" not in error.message and str(out.parent) not in error.message
    return error


@pytest.mark.parametrize("kind", ["corrupt", "zero-length"])
def test_unreadable_audio_is_invalid_audio(kind: str, tmp_path: Path) -> None:
    audio = tmp_path / "episode.mp3"
    if kind == "corrupt":
        audio.write_bytes(b"ID3\x03\x00\x00\x00" + bytes(range(256)) * 64)
    else:
        audio.write_bytes(b"")

    error = expect_render_error(InvalidAudio, audio, tmp_path / "out.mp4", RenderSpec(**SMALL))
    assert error.code == "invalid_audio"
    assert "Upload a" in error.message  # says what to do


@pytest.mark.parametrize("role", ["artwork", "background"])
def test_an_image_that_is_not_an_image_is_invalid_image_naming_its_role(
    role: str, golden_wav: Path, tmp_path: Path
) -> None:
    fake = tmp_path / "cover.png"
    fake.write_bytes(b"<html>this is not an image</html>\n")

    error = expect_render_error(
        InvalidImage, golden_wav, tmp_path / "out.mp4", RenderSpec(**SMALL),
        Assets(**{role: fake}),
    )  # fmt: skip
    assert error.code == "invalid_image"
    assert f"The {role} image" in error.message


def test_captions_with_a_bad_timestamp_are_invalid_captions_naming_the_line(
    golden_wav: Path, tmp_path: Path
) -> None:
    srt = tmp_path / "talk.srt"
    srt.write_text(
        "1\n00:00:00,500 --> 00:00:01,500\nFirst\n\n"
        "2\n00:00:02,000 -> 00:00:03,000\nSecond\n"  # line 6: a one-dash arrow
    )
    error = expect_render_error(
        InvalidCaptions, golden_wav, tmp_path / "out.mp4", RenderSpec(**SMALL),
        Assets(captions=srt),
    )  # fmt: skip
    assert error.code == "invalid_captions"
    assert "line 6" in error.message


def test_start_past_the_end_of_the_audio_is_invalid_audio_about_the_start(
    golden_wav: Path, tmp_path: Path
) -> None:
    spec = RenderSpec(**SMALL, start=10.0)
    error = expect_render_error(InvalidAudio, golden_wav, tmp_path / "out.mp4", spec)
    assert error.code == "invalid_audio"
    assert "starts at 10 s, after the end of the audio" in error.message


# --- layout -------------------------------------------------------------------------


def overlap(a: Rect, b: Rect) -> bool:
    return a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h


#: Every canvas the layouts must serve: the presets, the default, 4:5, and previews.
LAYOUT_SIZES = [*PRESETS.values(), (1280, 720), (1080, 1350), (480, 270), (480, 480), (480, 854)]
#: A title long enough to take two lines on every canvas, and a subtitle.
LONG_TITLE = "Episode 42: How sound travels under water, and why whales hear it"
SUBTITLE = "The Soundreel Show with Ada and Grace"


@pytest.mark.parametrize(
    ("width", "height"), LAYOUT_SIZES, ids=[f"{w}x{h}" for w, h in LAYOUT_SIZES]
)
def test_layout_boxes_stay_in_the_safe_area_and_never_overlap(width: int, height: int) -> None:
    """Every style x layout x (artwork, title, subtitle, captions) on this canvas."""
    problems = []
    x0, y0, x1, y1 = safe_area(width, height)
    for layout, style, artwork, title, subtitle, captions in itertools.product(
        LAYOUTS, STYLES, *[(False, True)] * 4
    ):
        spec = RenderSpec(
            width=width, height=height, layout=layout, style=style,
            title=LONG_TITLE if title else None, subtitle=SUBTITLE if subtitle else None,
        )  # fmt: skip
        boxes = compute_layout(spec, has_artwork=artwork, has_captions=captions)
        named = boxes.boxes()
        case = f"{layout}/{style}/art={artwork},title={title},sub={subtitle},cap={captions}"
        text = min(width, height) >= MIN_TEXT_SIDE
        expected = {"viz"} | {
            name for name, wanted in (
                ("artwork", artwork and layout == "standard" and style != "circle"),
                ("title", title and text), ("subtitle", subtitle and text),
                ("captions", captions and text),
            ) if wanted
        }  # fmt: skip
        if named.keys() != expected:
            problems.append(f"{case}: boxes {sorted(named)}, expected {sorted(expected)}")
        for name, box in named.items():
            if not (x0 <= box.x and y0 <= box.y and box.x + box.w <= x1 and box.y + box.h <= y1):
                problems.append(f"{case}: {name} {box} leaves {(x0, y0, x1, y1)}")
        for (name_a, a), (name_b, b) in itertools.combinations(named.items(), 2):
            if overlap(a, b):
                problems.append(f"{case}: {name_a} {a} overlaps {name_b} {b}")
        safe_h = y1 - y0
        if boxes.viz.h < MIN_VIZ_SHARE * safe_h - 2 and style != "circle":
            problems.append(f"{case}: the animation has {boxes.viz.h / safe_h:.0%} of the height")
        for box in (boxes.title, boxes.subtitle):
            if box is not None:
                drawn = text_block_size(box.lines, box.size, box.rect.w, box.bold)
                if drawn[0] > box.rect.h or drawn[1] > box.rect.w:
                    problems.append(f"{case}: {box.lines} drawn {drawn} overflows {box.rect}")
    assert not problems, "\n".join(problems[:40])


@functools.cache
def text_block_size(
    lines: tuple[str, ...], size: int, width: int, bold: bool
) -> tuple[int, int]:
    """(height, width) of the block the renderer draws for a title or subtitle."""
    block = render_text_block(lines, font_size=size, max_width=width, bold=bold)
    return block.shape[0], block.shape[1]


def test_a_long_title_keeps_its_words_on_two_lines_on_every_preset() -> None:
    for preset in PRESETS:
        spec = RenderSpec(preset=preset, title=LONG_TITLE, subtitle=SUBTITLE)
        boxes = compute_layout(spec, has_artwork=False, has_captions=True)
        assert boxes.title is not None and boxes.subtitle is not None
        assert len(boxes.title.lines) == 2
        assert " ".join(boxes.title.lines).split() == LONG_TITLE.split()


@pytest.mark.parametrize("style", ["bars", "mirror", "circle", "wave"])
def test_the_animation_never_draws_outside_its_box(style: str, quiet_then_loud: Path,
                                                   tmp_path: Path) -> None:  # fmt: skip
    """The square layout with everything: frames differ only inside the animation's box
    and the caption box, however loud the sound (the tallest bars stay clear of the text)."""
    srt = tmp_path / "cue.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:04,000\nOne cue for the whole clip.\n")
    artwork = tmp_path / "art.png"
    Image.new("RGB", (64, 64), (200, 40, 90)).save(artwork)
    spec = RenderSpec(
        width=480, height=480, style=style, title=LONG_TITLE, subtitle=SUBTITLE,
        artworkKey="x/art.png", captionsKey="x/cue.srt",
    )  # fmt: skip
    assets = Assets(artwork=artwork, captions=srt)
    layout = Scene(quiet_then_loud, spec, assets).layout
    frames = render_frames(quiet_then_loud, spec, [0.5, 2.5, 3.0, 3.5], assets=assets)
    changed = np.zeros(frames[0].shape[:2], bool)
    for frame in frames[1:]:
        changed |= np.abs(frame.astype(int) - frames[0].astype(int)).max(axis=2) > 0
    allowed = np.zeros_like(changed)
    viz = layout.viz
    allowed[viz.y : viz.y + viz.h, viz.x : viz.x + viz.w] = True
    assert changed.any(), "the animation did not move"
    assert not (changed & ~allowed).any(), "pixels changed outside the animation's box"
