"""End to end, no mocks: a private redis-server, the API under gunicorn, a real
`celery worker` process, and local or S3 (moto server) storage. Upload, submit,
poll until terminal, download the output with no credentials, probe it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.helpers.e2e import download, poll, run, submit, upload, wait_for_line
from tests.helpers.media import probe
from tests.helpers.samples import ARTWORK, CAPTIONS, SAMPLE


@pytest.fixture(scope="module")
def sample_duration() -> float:
    return float(probe(SAMPLE)["format"]["duration"])


@pytest.fixture(params=["local", "s3"])
def stack(request):
    return request.getfixturevalue(f"{request.param}_stack")


def streams(info: dict, kind: str) -> list[dict]:
    return [s for s in info["streams"] if s["codec_type"] == kind]


def assert_monotonic(seen: list[float]) -> None:
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    assert seen[-1] == 1.0


def expires_in(job: dict) -> timedelta:
    expires = datetime.fromisoformat(job["downloadUrlExpiresAt"].replace("Z", "+00:00"))
    return expires - datetime.now(UTC)


def test_render_produces_h264_aac_mp4_of_the_audio_length(stack, tmp_path, sample_duration):
    job, seen = run(stack, SAMPLE, {"kind": "render",
                                    "options": {"width": 640, "height": 360, "fps": 30}})
    assert job["status"] == "complete", job["error"]
    assert_monotonic(seen)
    assert job["result"]["videoKey"] == f"renders/{job['jobId']}/output.mp4"
    assert job["result"]["format"] == "mp4"
    assert abs(job["result"]["duration"] - sample_duration) < 0.1
    assert job["error"] is None and job["stage"] == "done"
    assert timedelta(days=6, hours=23) < expires_in(job) <= timedelta(days=7)

    info = probe(download(job, tmp_path / "out.mp4"))
    (video,), (audio,) = streams(info, "video"), streams(info, "audio")
    assert video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p"
    assert (video["width"], video["height"]) == (640, 360)
    assert audio["codec_name"] == "aac"
    assert abs(float(info["format"]["duration"]) - sample_duration) < 0.1


def test_preview_is_the_first_15_seconds_480_wide(stack, tmp_path):
    job, seen = run(stack, SAMPLE, {"kind": "preview",
                                    "options": {"width": 1280, "height": 720}})
    assert job["status"] == "complete", job["error"]
    assert_monotonic(seen)
    assert job["result"]["previewKey"] == f"previews/{job['jobId']}/preview.mp4"
    assert job["result"]["thumbnailKey"] == f"previews/{job['jobId']}/thumbnail.jpg"
    assert "videoKey" not in job["result"]
    assert timedelta(minutes=59) < expires_in(job) <= timedelta(hours=1)
    info = probe(download(job, tmp_path / "preview.mp4"))
    (video,) = streams(info, "video")
    assert (video["width"], video["height"]) == (480, 270)
    thumbnail = requests.get(job["thumbnailUrl"], timeout=30)
    assert thumbnail.status_code == 200 and thumbnail.content[:3] == b"\xff\xd8\xff"  # JPEG
    assert streams(info, "audio")[0]["codec_name"] == "aac"
    assert abs(float(info["format"]["duration"]) - 15.0) < 0.1


def test_prepare_stores_a_44100_hz_wav_with_its_duration(stack, tmp_path, sample_duration):
    job, seen = run(stack, SAMPLE, {"kind": "prepare"})
    assert job["status"] == "complete", job["error"]
    assert_monotonic(seen)
    assert job["result"]["preparedKey"] == f"prepared/{job['jobId']}/audio.wav"
    assert job["result"]["peaksKey"] == f"prepared/{job['jobId']}/peaks.json"
    assert job["result"]["format"] == "wav" and job["result"]["sampleRate"] == 44100
    assert abs(job["result"]["duration"] - sample_duration) < 0.1
    peaks = requests.get(job["peaksUrl"], timeout=30).json()
    assert peaks["version"] == 2 and peaks["bits"] == 8 and peaks["sample_rate"] == 44100
    assert peaks["length"] == -(-round(job["result"]["duration"] * 44100) // 512)
    assert len(peaks["data"]) == 2 * peaks["length"] and max(peaks["data"]) > 20
    info = probe(download(job, tmp_path / "audio.wav"))
    (audio,) = streams(info, "audio")
    assert audio["codec_name"] == "pcm_s16le" and audio["sample_rate"] == "44100"
    assert abs(float(info["format"]["duration"]) - job["result"]["duration"]) < 0.01


def test_output_key_is_honoured(local_stack, tmp_path):
    job, _ = run(local_stack, SAMPLE, {"kind": "preview", "outputKey": "clips/ep1/teaser.mp4",
                                       "options": {"width": 320, "height": 180}})
    assert job["status"] == "complete", job["error"]
    assert job["result"]["previewKey"] == "clips/ep1/teaser.mp4"
    assert probe(download(job, tmp_path / "t.mp4"))["format"]["format_name"].startswith("mov")


def test_corrupt_upload_fails_with_invalid_audio(stack, tmp_path):
    corrupt = tmp_path / "episode.mp3"
    corrupt.write_bytes(b"ID3" + bytes(range(256)) * 40)
    job, seen = run(stack, corrupt, {"kind": "render"})
    assert job["status"] == "failed"
    assert job["error"]["code"] == "invalid_audio"
    assert "could not be decoded" in job["error"]["message"].lower()
    assert "/tmp" not in job["error"]["message"]
    assert job["result"] is None and job["downloadUrl"] is None
    assert seen == sorted(seen)


def test_text_behind_a_wav_header_fails_with_invalid_audio(local_stack, tmp_path):
    # plain text named .wav is refused at upload (tests/test_uploads.py); text that
    # starts like a WAV passes that look, and only decoding shows it is not audio
    fake = tmp_path / "notes.wav"
    fake.write_bytes(b"RIFF\x24\x00\x00\x00WAVE" + b"this is not audio\n" * 100)
    job, _ = run(local_stack, fake, {"kind": "prepare"})
    assert job["status"] == "failed" and job["error"]["code"] == "invalid_audio"


def test_missing_input_fails_with_download_failed(local_stack):
    key = upload(local_stack, SAMPLE)
    (local_stack.workdir / "storage" / key).unlink()  # the object vanished after upload
    job = submit(local_stack, {"kind": "render", "audioKey": key})
    job, _ = poll(local_stack, job["jobId"])
    assert job["status"] == "failed" and job["error"]["code"] == "download_failed"
    assert "404" in job["error"]["message"]


def test_failure_reaches_the_api_through_the_failure_webhook(local_stack, tmp_path):
    corrupt = tmp_path / "bad.flac"
    corrupt.write_bytes(b"fLaC" + b"\x00" * 5000)
    job, _ = run(local_stack, corrupt, {"kind": "render"})
    assert job["status"] == "failed"
    api_log, worker_log = local_stack.workdir / "api.log", local_stack.workdir / "worker.log"
    wait_for_line(worker_log, f"job {job['jobId']} failed: invalid_audio")  # the errback ran
    wait_for_line(worker_log, f"job {job['jobId']}: reported failed")  # it was posted
    wait_for_line(api_log, f"job {job['jobId']} failed: ")  # and the API applied it


def test_worker_removes_its_temp_files_after_success_and_failure(local_stack, tmp_path):
    corrupt = tmp_path / "bad.ogg"
    corrupt.write_bytes(b"OggS" + b"\x01" * 3000)
    ok, _ = run(local_stack, SAMPLE, {"kind": "prepare"})
    bad, _ = run(local_stack, corrupt, {"kind": "prepare"})
    assert (ok["status"], bad["status"]) == ("complete", "failed")
    # (billiard keeps its own pymp-* directory there for the pool's life)
    assert list((local_stack.workdir / "tmp").glob("soundreel-*")) == []


def test_render_with_artwork_captions_title_and_clip_window(local_stack, tmp_path):
    art, srt = upload(local_stack, ARTWORK), upload(local_stack, CAPTIONS)
    job, _ = run(local_stack, SAMPLE, {"kind": "render", "options": {
        "preset": "square", "style": "circle", "artworkKey": art, "captionsKey": srt,
        "title": "Episode 1", "subtitle": "A test", "start": 2.0, "end": 7.0, "quality": 30,
    }})
    assert job["status"] == "complete", job["error"]
    assert abs(job["result"]["duration"] - 5.0) < 0.05
    info = probe(download(job, tmp_path / "clip.mp4"))
    (video,) = streams(info, "video")
    assert (video["width"], video["height"]) == (1080, 1080)
    assert abs(float(info["format"]["duration"]) - 5.0) < 0.1


@pytest.mark.parametrize(
    ("role", "name", "content", "code"),
    [
        ("captionsKey", "bad.srt", b"1\n00:00:01,000 -> nope\nhello\n", "invalid_captions"),
        # a PNG's signature passes the upload; only decoding shows the rest is not an image
        ("artworkKey", "cover.png", b"\x89PNG\r\n\x1a\nthis is not a png", "invalid_image"),
    ],
)
def test_bad_assets_fail_the_job_with_their_code(local_stack, tmp_path, role, name, content,
                                                 code):
    bad = tmp_path / name
    bad.write_bytes(content)
    job, _ = run(local_stack, SAMPLE, {"kind": "preview",
                                       "options": {role: upload(local_stack, bad)}})
    assert job["status"] == "failed" and job["error"]["code"] == code, job["error"]


def test_assets_of_another_tenant_are_refused(local_stack):
    art = upload(local_stack, ARTWORK)
    other = local_stack.client(local_stack.other_api_key)
    audio = other.post(local_stack.url("/v1/uploads"), timeout=10,
                       files={"file": ("a.mp3", SAMPLE.read_bytes())}).json()["audioKey"]
    response = other.post(local_stack.url("/v1/jobs"), timeout=10,
                          json={"audioKey": audio, "options": {"artworkKey": art}})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_upload"
    assert response.json()["error"]["field"] == "options.artworkKey"
