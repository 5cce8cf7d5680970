"""POST /v1/uploads refuses what its first bytes already show is wrong (an empty
file, a PNG named .mp3) and stores nothing; a job refuses an upload named in a
field it does not fit (a PNG as audioKey). Real files of every accepted ending,
made with the bundled ffmpeg and Pillow, are stored."""

from __future__ import annotations

import codecs
import io
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest
import redis
from PIL import Image

from api.filetypes import PEEK_BYTES, identify, is_text, mismatch
from devstack import Stack
from jobs.constants import (
    ROLE_AUDIO,
    ROLE_CAPTIONS,
    ROLE_IMAGE,
    ROLE_VIDEO,
    UPLOAD_EXTENSIONS,
    UPLOAD_ROLES,
    upload_redis_key,
)
from tests.helpers.e2e import upload
from tests.helpers.media import make_video
from tests.helpers.samples import ARTWORK, CAPTIONS, SAMPLE

SRT = "1\n00:00:00,500 --> 00:00:02,000\nCafé, naïve – “quoted”\n"
VTT = "WEBVTT\n\n00:00:00.500 --> 00:00:02.000\nHello\n"
JSON = ('{"segments": [{"start": 0.5, "end": 2.0, "text": " Hello",'
        ' "words": [{"word": " Hello", "start": 0.5, "end": 1.0}]}]}\n')


def make_file(directory: Path, extension: str) -> Path:
    """A small real file named ``tone{extension}``: audio and videos from ffmpeg's own
    encoders (chosen by the name, as ffmpeg does), images from Pillow, captions as text."""
    path = directory / f"tone{extension}"
    role = UPLOAD_ROLES[extension]
    if role == ROLE_VIDEO:
        make_video(path, size="64x64", seconds=0.5)
    elif role == ROLE_AUDIO:
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                        "sine=frequency=440:duration=0.5", "-y", str(path)], check=True)
    elif role == ROLE_IMAGE:
        image = Image.new("RGB", (32, 32), (200, 40, 90))
        image.save(path, format={"png": "PNG", "webp": "WEBP"}.get(extension[1:], "JPEG"))
    else:
        path.write_text({".vtt": VTT, ".json": JSON}.get(extension, SRT), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def real_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("uploads")
    return {extension: make_file(directory, extension) for extension in UPLOAD_EXTENSIONS}


def error_of(response) -> dict:  # noqa: ANN001
    return response.json()["error"]


def post(stack: Stack, name: str, data: bytes):  # noqa: ANN201
    return stack.client().post(stack.url("/v1/uploads"), files={"file": (name, io.BytesIO(data))},
                               timeout=30)


def stored(stack: Stack) -> tuple[set[Path], set[bytes]]:
    """Every stored upload file, and every upload record in Redis."""
    files = set((Path(stack.env["STORAGE_DIR"]) / "uploads").rglob("*"))
    client = redis.Redis.from_url(stack.redis_url)
    try:
        records = set(client.scan_iter(upload_redis_key("*")))
    finally:
        client.close()
    return files, records


# --- what the first bytes say (no stack) ------------------------------------------------------


def test_every_real_file_is_what_its_name_says(real_files: dict[str, Path]) -> None:
    for extension, path in real_files.items():
        head = path.read_bytes()[:PEEK_BYTES]
        role = UPLOAD_ROLES[extension]
        assert mismatch(role, extension, head, whole=len(head) < PEEK_BYTES) is None, extension
        if role != ROLE_CAPTIONS:
            assert identify(head) is not None and identify(head).fits(role), extension


def test_a_file_of_another_role_or_of_none_is_a_mismatch(real_files: dict[str, Path]) -> None:
    png = real_files[".png"].read_bytes()
    message = mismatch(ROLE_AUDIO, ".mp3", png, whole=True)
    assert message and "a PNG image" in message and "options.artworkKey" in message
    mp3 = real_files[".mp3"].read_bytes()[:PEEK_BYTES]
    assert "MPEG audio" in mismatch(ROLE_IMAGE, ".jpg", mp3, whole=False)
    assert "MPEG audio" in mismatch(ROLE_CAPTIONS, ".srt", mp3, whole=False)
    assert "not WAV, MP3" in mismatch(ROLE_AUDIO, ".wav", b"hello, I am a text file\n",
                                      whole=True)
    assert "not text" in mismatch(ROLE_CAPTIONS, ".vtt", b"WEBVTT\n\x00\x01\x02", whole=True)


def test_audio_under_another_audio_name_is_accepted(real_files: dict[str, Path]) -> None:
    """The worker decodes by content: an M4A saved as .mp3 renders, so it is taken."""
    m4a = real_files[".m4a"].read_bytes()[:PEEK_BYTES]
    assert mismatch(ROLE_AUDIO, ".mp3", m4a, whole=False) is None


def test_flac_after_an_id3_tag_is_flac(real_files: dict[str, Path]) -> None:
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x0a" + b"TIT2" + b"\x00" * 6
    head = tag + real_files[".flac"].read_bytes()[:100]
    assert identify(head).name == "FLAC audio"
    # a tag longer than the peek (cover art) is audio on its own word
    assert identify(b"ID3\x03\x00\x00\x01\x00\x00\x00" + b"\x00" * 200).role == ROLE_AUDIO


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "cp1252"])
def test_captions_in_every_encoding_the_renderer_reads_are_text(encoding: str) -> None:
    data = SRT.replace("“", '"').replace("”", '"').replace("–", "-").encode(encoding)
    assert is_text(data, whole=True)
    if encoding == "utf-16":
        assert data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))


def test_a_character_cut_at_the_end_of_the_peek_is_still_text() -> None:
    head = ("a" * (PEEK_BYTES - 1) + "é").encode()[:PEEK_BYTES]  # é cut after its first byte
    assert is_text(head, whole=False)
    assert not is_text(head[:-1] + b"\x81", whole=True)  # undefined in cp1252, not UTF-8


@pytest.mark.parametrize("head", [
    b"\xff\xfb\x90\x64",        # MPEG-1 layer III, 128 kb/s, 44.1 kHz
    b"\xff\xf3\x48\xc4",        # MPEG-2 layer III
    b"\xff\xf1\x50\x80",        # ADTS AAC-LC, 44.1 kHz
])
def test_raw_frames_without_a_tag_are_audio(head: bytes) -> None:
    assert identify(head).role == ROLE_AUDIO


@pytest.mark.parametrize("head", [
    b"\xff\xeb\x90\x64",        # version bits 01: reserved
    b"\xff\xfb\xf0\x64",        # bitrate index 15: reserved
    b"\xff\xfb\x9c\x64",        # sample rate index 3: reserved
    b"\xff\xd8\xff\xe0",        # a JPEG, not an MPEG frame
])
def test_reserved_frame_headers_are_not_audio(head: bytes) -> None:
    found = identify(head)
    assert found is None or found.role != ROLE_AUDIO


# --- POST /v1/uploads ------------------------------------------------------------------------


def test_real_files_of_every_accepted_ending_are_stored(local_stack: Stack,
                                                         real_files: dict[str, Path]) -> None:
    assert set(real_files) == UPLOAD_EXTENSIONS
    for path in real_files.values():
        upload(local_stack, path)  # asserts 201 and the size


def test_an_empty_file_is_refused_and_nothing_is_stored(local_stack: Stack) -> None:
    before = stored(local_stack)
    response = post(local_stack, "episode.mp3", b"")
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["field"]) == ("empty_file", "file")
    assert "0 bytes" in error["message"] and "choose the file again" in error["message"]
    assert stored(local_stack) == before


def test_a_png_named_mp3_is_refused_and_nothing_is_stored(local_stack: Stack) -> None:
    before = stored(local_stack)
    response = post(local_stack, "episode.mp3", ARTWORK.read_bytes())
    assert response.status_code == 415
    error = error_of(response)
    assert (error["code"], error["field"]) == ("content_mismatch", "file")
    assert "a PNG image" in error["message"]
    for name, data in (("cover.png", SAMPLE.read_bytes()), ("talk.srt", ARTWORK.read_bytes()),
                       ("talk.wav", CAPTIONS.read_bytes())):
        refused = post(local_stack, name, data)
        assert refused.status_code == 415 and error_of(refused)["code"] == "content_mismatch"
    assert stored(local_stack) == before


# --- POST /v1/jobs -----------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "sample"), [
    ("audioKey", ARTWORK),
    ("audioKey", CAPTIONS),
    ("artworkKey", SAMPLE),
    ("backgroundKey", CAPTIONS),
    ("captionsKey", ARTWORK),
])
def test_an_upload_in_a_field_it_does_not_fit_is_refused_at_submission(
    local_stack: Stack, field: str, sample: Path
) -> None:
    key = upload(local_stack, sample)
    if field == "audioKey":
        body, named = {"audioKey": key}, "audioKey"
    else:
        body = {"audioKey": upload(local_stack, SAMPLE), "options": {field: key}}
        named = f"options.{field}"
    response = local_stack.client().post(local_stack.url("/v1/jobs"), json=body, timeout=10)
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["field"]) == ("wrong_upload_kind", named)
    assert error["message"].startswith(named)
