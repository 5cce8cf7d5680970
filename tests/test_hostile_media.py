"""Media that tries to make ffmpeg read something else, or too much, is refused
as invalid_audio before any decoding, and nothing is fetched or written."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest

from config.settings import Settings, SettingsError
from render import InvalidAudio, RenderSpec, prepare_audio, render_video
from tests.helpers.media import make_audio

SMALL = RenderSpec(width=160, height=90)


@pytest.fixture
def canary():
    """A local HTTP server that records every request made to it."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"\xff\xfb" * 1000)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", hits
    server.shutdown()


def hostile_files(tmp_path: Path, url: str) -> dict[str, Path]:
    files = {
        "hls-to-url": "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{url}/seg.mp3\n"
                      "#EXT-X-ENDLIST\n",
        "hls-to-local-file": "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n"
                             "file:///etc/passwd\n#EXT-X-ENDLIST\n",
        "concat-to-local-file": "ffconcat version 1.0\nfile '/etc/passwd'\n",
        "concat-to-url": "ffconcat version 1.0\nfile '{url}/c.mp3'\n",
        "sdp-to-network": "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\n"
                          "m=audio 5004 RTP/AVP 0\n",
    }
    paths = {}
    for name, text in files.items():
        path = tmp_path / f"{name}.mp3"
        path.write_text(text.format(url=url))
        paths[name] = path
    return paths


@pytest.mark.parametrize("name", ["hls-to-url", "hls-to-local-file", "concat-to-local-file",
                                  "concat-to-url", "sdp-to-network"])
def test_playlists_and_network_descriptions_are_refused_without_fetching(
    tmp_path: Path, canary, name: str
):
    url, hits = canary
    path = hostile_files(tmp_path, url)[name]
    out = tmp_path / "out.mp4"
    with pytest.raises(InvalidAudio) as caught:
        render_video(path, out, SMALL)
    assert caught.value.code == "invalid_audio"
    with pytest.raises(InvalidAudio):
        prepare_audio(path, tmp_path / "out.wav")
    assert hits == [] and not out.exists()
    assert "passwd" not in caught.value.message


def test_audio_longer_than_the_limit_is_refused_before_decoding(tmp_path: Path):
    audio = make_audio(tmp_path / "five.mp3", "sine=frequency=300:duration=5")
    with pytest.raises(InvalidAudio, match="longer than the limit"):
        render_video(audio, tmp_path / "out.mp4", SMALL, limit_seconds=2.0)
    with pytest.raises(InvalidAudio, match="longer than the limit"):
        prepare_audio(audio, tmp_path / "out.wav", limit_seconds=2.0)
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "out.wav").exists()
    # a clip window inside the limit is fine, even of a longer file
    spec = SMALL.model_copy(update={"start": 1.0, "end": 2.5})
    assert render_video(audio, tmp_path / "clip.mp4", spec, limit_seconds=2.0).frames == 45


def test_a_header_that_understates_the_length_does_not_get_past_the_limit(tmp_path: Path):
    # raw ADTS AAC has no duration in its header: ffmpeg can only estimate it
    audio = make_audio(tmp_path / "long.aac", "sine=frequency=300:duration=6", "-c:a", "aac")
    with pytest.raises(InvalidAudio, match="longer than the limit"):
        render_video(audio, tmp_path / "out.mp4", SMALL, limit_seconds=3.0)


def test_max_audio_seconds_setting():
    base = {"WORKER_TOKEN": "w" * 32}
    assert Settings.from_env(base).max_audio_seconds == 4 * 3600
    assert Settings.from_env({**base, "MAX_AUDIO_SECONDS": "90"}).max_audio_seconds == 90
    for bad in ("forever", "-1", "0", "1000001", "inf", "nan"):
        with pytest.raises(SettingsError, match="MAX_AUDIO_SECONDS"):
            Settings.from_env({**base, "MAX_AUDIO_SECONDS": bad})


@pytest.mark.parametrize(("args", "what"), [
    (["-ac", "16"], "16 channels"),
    (["-ar", "384000"], "384000 Hz"),
    (["-ar", "4000"], "4000 Hz"),
])
def test_streams_only_a_bomb_needs_are_refused_before_decoding(tmp_path: Path, args, what):
    audio = make_audio(tmp_path / "odd.wav", "sine=frequency=300:duration=1", *args)
    for produce in (lambda: render_video(audio, tmp_path / "out.mp4", SMALL),
                    lambda: prepare_audio(audio, tmp_path / "out.wav")):
        with pytest.raises(InvalidAudio, match=what) as caught:
            produce()
        assert caught.value.code == "invalid_audio"
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "out.wav").exists()


def test_ordinary_layouts_pass_the_stream_check(tmp_path: Path):
    for channels in ("1", "2", "6"):
        audio = make_audio(tmp_path / f"ok{channels}.wav", "sine=frequency=300:duration=1",
                           "-ac", channels, "-ar", "48000")
        assert render_video(audio, tmp_path / f"ok{channels}.mp4", SMALL).frames > 0
