"""Uploaded videos (intros, outros, video backgrounds) before anything decodes them:
what the options accept, which uploads fit a video field, and what `probe_video`
refuses from the header alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from api.filetypes import mismatch, stored_type
from jobs.constants import ROLE_AUDIO, ROLE_VIDEO, upload_fits
from render.errors import InvalidVideo
from render.spec import Assets, RenderSpec
from render.video import MAX_BOOKEND_SECONDS, probe_video
from tests.helpers.media import make_audio, make_video


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    return {
        "mp4": make_video(folder / "intro.mp4", seconds=1.5),
        "webm": make_video(folder / "loop.webm", size="256x144", fps=25, tone=None,
                           codec="libvpx-vp9"),
        "mov": make_video(folder / "outro.mov", size="240x320", tone=None),
        "fast": make_video(folder / "fast.mp4", fps=240, seconds=0.5, tone=None),
        "huge": make_video(folder / "huge.mp4", size="4000x2000", fps=5, seconds=0.4, tone=None),
        "mpeg2": make_video(folder / "old.mp4", tone=None, codec="mpeg2video", seconds=0.5),
        "audio": make_audio(folder / "voice.mp4", "sine=duration=1", "-c:a", "aac"),
        "ac3": _with_sound(folder / "ac3.mp4", "ac3"),
        "u8": _with_sound(folder / "u8.mov", "pcm_u8"),
    }


def _with_sound(path: Path, codec: str) -> Path:
    """A short test-pattern video whose sound is ``codec``."""
    return make_audio(path, "testsrc2=size=160x90:rate=30:duration=0.5", "-f", "lavfi", "-i",
                      "sine=duration=0.5", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                      "-c:a", codec, "-shortest")


def test_a_video_header_is_read_without_decoding(videos: dict[str, Path]) -> None:
    intro = probe_video(videos["mp4"], "intro", max_seconds=MAX_BOOKEND_SECONDS)
    assert (intro.width, intro.height, intro.fps, intro.has_audio) == (320, 180, 30.0, True)
    assert intro.duration == pytest.approx(1.5, abs=0.05)
    loop = probe_video(videos["webm"], "backgroundVideo", max_seconds=600)
    assert (loop.width, loop.height, loop.fps, loop.has_audio) == (256, 144, 25.0, False)
    assert probe_video(videos["mov"], "outro", max_seconds=60).height == 320


@pytest.mark.parametrize(("name", "words"), [
    ("fast", "240 fps, over the limit of 120"),
    ("huge", "4000x2000: larger than 4K"),
    ("mpeg2", "encoded as mpeg2video, which is not supported"),
    ("audio", "it has no video stream"),
])
def test_videos_over_the_limits_are_refused_by_their_header(
    videos: dict[str, Path], name: str, words: str
) -> None:
    with pytest.raises(InvalidVideo, match=words) as caught:
        probe_video(videos[name], "intro", max_seconds=MAX_BOOKEND_SECONDS)
    assert caught.value.code == "invalid_video"
    assert "The intro" in caught.value.message


def test_a_videos_sound_is_checked_by_its_header_too(videos: dict[str, Path]) -> None:
    assert probe_video(videos["ac3"], "intro", max_seconds=60).has_audio
    with pytest.raises(InvalidVideo, match="sound is encoded as pcm_u8, which is not supp"):
        probe_video(videos["u8"], "outro", max_seconds=60)


def test_a_long_intro_and_garbage_are_refused(videos: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InvalidVideo, match=r"1\.5 s long, over the limit of 1 s"):
        probe_video(videos["mp4"], "intro", max_seconds=1)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(videos["mp4"].read_bytes()[:2000])
    with pytest.raises(InvalidVideo, match="could not be read as a video") as caught:
        probe_video(garbage, "outro", max_seconds=60)
    assert str(tmp_path) not in caught.value.message  # no worker paths in messages
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    with pytest.raises(InvalidVideo, match="The background video is empty"):
        probe_video(empty, "backgroundVideo", max_seconds=600)


def test_video_options_are_validated_and_named_as_assets() -> None:
    spec = RenderSpec.model_validate({
        "introKey": "uploads/a/intro.mp4", "outroKey": "uploads/b/outro.mov",
        "backgroundVideoKey": "uploads/c/loop.webm", "introFit": "fit",
        "fadeIn": 1.5, "fadeOut": 2,
    })
    assert spec.asset_keys == {"backgroundVideo": "uploads/c/loop.webm",
                               "intro": "uploads/a/intro.mp4", "outro": "uploads/b/outro.mov"}
    assets = Assets.of({"backgroundVideo": Path("b"), "intro": Path("i"), "outro": Path("o")})
    assert (assets.background_video, assets.intro, assets.outro) == (Path("b"), Path("i"),
                                                                      Path("o"))
    preview = spec.for_preview()
    assert preview.intro_key is None and preview.outro_key is None
    assert preview.background_video_key == spec.background_video_key
    # the bookends took the fades, so the preview's body has none
    assert (preview.fade_in, preview.fade_out) == (0, 0)
    plain = RenderSpec.model_validate({"fadeIn": 1, "fadeOut": 2, "end": 10}).for_preview()
    assert (plain.fade_in, plain.fade_out) == (1, 2)  # the whole clip: both ends
    cut = RenderSpec.model_validate({"fadeIn": 1, "fadeOut": 2, "end": 60}).for_preview()
    assert (cut.fade_in, cut.fade_out) == (1, 0)  # cut at 15 s: no fade at the cut
    for bad in ({"fadeIn": -1}, {"fadeOut": 11}, {"introFit": "stretch"},
                {"introKey": "../etc/passwd"},
                {"backgroundKey": "uploads/a/bg.png", "backgroundVideoKey": "uploads/b/v.mp4"}):
        with pytest.raises(ValidationError):
            RenderSpec.model_validate(bad)


def test_mp4_and_webm_uploads_serve_as_audio_or_video_and_mov_as_video_only() -> None:
    assert upload_fits(ROLE_VIDEO, "uploads/x/clip.mp4")
    assert upload_fits(ROLE_VIDEO, "uploads/x/clip.webm")
    assert upload_fits(ROLE_VIDEO, "uploads/x/clip.MOV")
    assert upload_fits(ROLE_AUDIO, "uploads/x/clip.mp4")
    assert not upload_fits(ROLE_AUDIO, "uploads/x/clip.mov")
    assert not upload_fits(ROLE_VIDEO, "uploads/x/cover.png")
    assert not upload_fits(ROLE_VIDEO, "uploads/x/voice.mp3")


def test_a_mov_upload_is_checked_by_its_first_bytes(videos: dict[str, Path]) -> None:
    head = videos["mov"].read_bytes()[:4096]
    assert mismatch(ROLE_VIDEO, ".mov", head, whole=False) is None
    assert stored_type(ROLE_VIDEO, ".mov", head) == "video/quicktime"
    png = b"\x89PNG\r\n\x1a\n" + bytes(100)
    problem = mismatch(ROLE_VIDEO, ".mov", png, whole=False)
    assert problem is not None and "a PNG image" in problem
