"""A prepare reads the upload's header from the same ffmpeg run that decodes it
(render.audio.HeaderedStderr): one run of ffmpeg per prepare, the same checks as a
separate header read, and the same error messages."""

from __future__ import annotations

import io
import os
import subprocess
import wave
from pathlib import Path

import pytest

import render.audio
from render import InvalidAudio, prepare_audio
from render.audio import HeaderedStderr, header_duration, read_header
from render.errors import InvalidVideo, blames_input
from render.video import untrusted_video_input
from tests.helpers.media import make_audio


def headered(text: str) -> HeaderedStderr:
    return HeaderedStderr(io.BytesIO(text.encode()))


def test_one_ffmpeg_run_checks_and_decodes(tmp_path: Path, monkeypatch):
    audio = make_audio(tmp_path / "tone.mp3", "sine=frequency=300:duration=2")
    runs: list[list[str]] = []
    real = subprocess.Popen

    def counting(args, *rest, **kwargs):
        if render.audio.ffmpeg_exe() in args:  # not setpriv's one-off check
            runs.append(list(args))
        return real(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", counting)
    told: list[float] = []
    prepared = prepare_audio(audio, tmp_path / "out.wav", measured=told.append)
    assert len(runs) == 1, runs
    assert told == [pytest.approx(2.0, abs=0.05)]  # the header's length, from that run
    assert prepared.duration == pytest.approx(2.0, abs=0.03)
    with wave.open(str(tmp_path / "out.wav")) as written:
        assert (written.getframerate(), written.getnchannels()) == (44100, 1)


def test_the_header_is_the_inputs_and_the_tail_only_its_errors():
    stderr = headered(
        "[aist#0:0/pcm_s16le @ 0x55d0] [warning] Guessed Channel Layout: mono\n"
        "[info] Input #0, wav, from 'file:/tmp/x/input':\n"
        "[info]   Metadata:\n"
        "[info]     title           : Stream #0:0: Audio: pcm_s16le, 384000 Hz, 64 channels\n"
        "[info]   Duration: 00:01:02.50, bitrate: 705 kb/s\n"
        "[info]   Stream #0:0: Audio: pcm_s16le, 44100 Hz, stereo, s16, 1411 kb/s\n"
        "[info] Stream mapping:\n"
        "[info]   Stream #0:0 -> #0:0 (pcm_s16le (native) -> pcm_s16le (native))\n"
        "[info] Output #0, wav, to 'file:/tmp/x/audio.wav':\n"
        "[info]   Stream #0:0: Audio: pcm_s16le, 8000 Hz, 16 channels\n"
        "[in#0 @ 0x55a92b7cd200] [error] Error while decoding stream: Invalid data found\n"
        "[fatal] Conversion failed!\n"
    )
    header = stderr.header()  # a tag's value naming 64 channels fakes nothing
    assert header.splitlines() == [
        "  Duration: 00:01:02.50, bitrate: 705 kb/s",
        "  Stream #0:0: Audio: pcm_s16le, 44100 Hz, stereo, s16, 1411 kb/s",
    ]
    assert render.audio.header_seconds(header) == pytest.approx(62.5)
    assert stderr.lines() == [
        "[in#0 @ 0x55a92b7cd200] Error while decoding stream: Invalid data found",
        "Conversion failed!",
    ]


def test_a_refused_stream_stops_the_run():
    stderr = headered("[info]   Stream #0:0: Audio: pcm_s16le, 44100 Hz, 24 channels\n"
                      "[info] Stream mapping:\n")
    with pytest.raises(InvalidAudio, match="24 channels"):
        stderr.header()


def test_a_header_that_never_comes_is_refused(monkeypatch):
    monkeypatch.setattr(render.audio, "HEADER_SECONDS", 0.2)
    read, write = os.pipe()  # ffmpeg still probing: nothing said, nothing closed
    try:
        stderr = HeaderedStderr(os.fdopen(read, "rb"))
        with pytest.raises(InvalidAudio, match="header within 0.2 seconds"):
            stderr.header()
    finally:
        os.close(write)


def test_a_run_that_ends_early_has_an_empty_header_and_its_errors():
    stderr = headered("[in#0 @ 0x55] [error] Failed to find two consecutive MPEG audio frames.\n"
                      "[fatal] Error opening input files: Invalid data found\n")
    assert stderr.header() == ""
    error = InvalidAudio.from_ffmpeg(stderr.lines())
    assert "(ffmpeg: Invalid data found)" in error.message


@pytest.mark.parametrize("error", [InvalidAudio, InvalidVideo])
def test_a_separate_header_read_that_hangs_is_refused_with_the_inputs_error(
    tmp_path: Path, monkeypatch, error
):
    monkeypatch.setattr(render.audio, "HEADER_SECONDS", 0.5)
    fifo = tmp_path / "never.mp4"
    os.mkfifo(fifo)  # nobody writes: ffmpeg waits on opening it
    with pytest.raises(error, match="could not read the file's header within 0.5 seconds"):
        read_header(untrusted_video_input(fifo), error)


def test_the_first_audio_stream_is_checked_however_many_streams_come_before_it():
    others = "".join(f"[info]   Stream #0:{i}: Data: none\n" for i in range(200))
    stderr = headered(f"[info]   Duration: 00:00:01.00, bitrate: 1 kb/s\n{others}"
                      "[info]   Stream #0:200: Audio: pcm_s16le, 44100 Hz, 32 channels\n"
                      "[info]   Stream #0:201: Audio: pcm_s16le, 44100 Hz, mono\n"
                      "[info] Stream mapping:\n")
    with pytest.raises(InvalidAudio, match="32 channels"):
        stderr.header()


def test_tags_cannot_name_a_stream_or_an_error(tmp_path: Path):
    # a 16-channel file whose tag key reads as a stereo stream, and whose comment's
    # second line reads as an error: the real stream is the one checked
    audio = make_audio(
        tmp_path / "tagged.mov", "sine=frequency=300:duration=1", "-ac", "16",
        "-c:a", "pcm_s16le", "-movflags", "use_metadata_tags",
        "-metadata", "Stream #0:0: Audio: mp3, 44100 Hz, stereo=x",
        "-metadata", "comment=first\n[error] Invalid data found when processing input",
    )
    with pytest.raises(InvalidAudio, match="16 channels"):
        prepare_audio(audio, tmp_path / "out.wav")
    with pytest.raises(InvalidAudio, match="16 channels"):  # a render's separate read
        header_duration(audio)
    assert not (tmp_path / "out.wav").exists()


def test_continued_lines_keep_their_level_and_two_contexts_are_taken_off():
    stderr = headered(
        "[info]   Metadata:\n"
        "[info]     comment         : first\n"
        "                    : Stream #0:0: Audio: mp3, 44100 Hz, stereo\n"
        "                    : Error while decoding stream: Invalid data found\n"
        "[info]   Stream #0:0: Audio: pcm_s16le, 44100 Hz, mono, s16\n"
        "[info] Stream mapping:\n"
        "[aist#0:0/mp3 @ 0x55d1] [dec:mp3float @ 0x55d2] [error] Header missing\n"
        "[fatal] Conversion failed!\n"
    )
    assert stderr.header() == "  Stream #0:0: Audio: pcm_s16le, 44100 Hz, mono, s16"
    assert stderr.lines() == [
        "[aist#0:0/mp3 @ 0x55d1] [dec:mp3float @ 0x55d2] Header missing",
        "Conversion failed!",
    ]
    assert not blames_input(stderr.lines())  # nothing a tag said


def test_an_ffmpeg_that_cannot_be_executed_fails_as_popen_would(tmp_path: Path):
    binary = tmp_path / "ffmpeg"
    binary.write_bytes(b"")  # not executable
    with pytest.raises(PermissionError):
        render.audio.start_ffmpeg([str(binary), "-version"], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL)
