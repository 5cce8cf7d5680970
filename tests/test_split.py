"""A long render split across the fleet, for real: a private redis-server, the API,
Celery beat and workers. The clip is cut into windows of 5 s (SEGMENT_SECONDS) past
10 s (SPLIT_MIN_SECONDS), so the 20 s sample makes 4 windows; each is a task of its
own, and the join ends the job. Compared with an unsplit render of the same job:
the same duration, the same audio stream, and frames that differ only by encoding
noise."""

from __future__ import annotations

import statistics
import subprocess
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest

import devstack as st
from render.audio import ffmpeg_exe
from tests.helpers.e2e import AudioServer, download, poll, record, submit, upload, wait_for
from tests.helpers.media import frames_rgb, make_video, probe, rms, sound
from tests.helpers.samples import ARTWORK, CAPTIONS, SAMPLE
from tests.helpers.stacks import start_api

SPLIT = {"SPLIT_MIN_SECONDS": "10", "SEGMENT_SECONDS": "5", "LEASE_SECONDS": "6",
         "REAP_INTERVAL": "1"}
OPTIONS = {"width": 640, "height": 360, "fps": 30, "title": "Episode 12",
           "subtitle": "Split across the fleet"}


@pytest.fixture(scope="module")
def served() -> AudioServer:
    files = AudioServer()
    yield files
    files.shutdown()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, served: AudioServer):
    tmp_path = tmp_path_factory.mktemp("split")
    with ExitStack() as stack:
        redis_url = stack.enter_context(st.redis_server(tmp_path))
        running = start_api(stack, tmp_path, redis_url, **SPLIT,
                            ALLOW_PRIVATE_URLS=served.url.split("/")[2])
        running.procs["beat"] = stack.enter_context(st.beat(running.env, tmp_path))
        running.procs["w1"] = stack.enter_context(
            st.worker(running.env, tmp_path / "w1.log", name="w1"))
        yield running


def work_left(fleet, job_id: str) -> list[Path]:  # noqa: ANN001
    folder = fleet.workdir / "storage" / "work" / job_id
    return sorted(folder.iterdir()) if folder.exists() else []


def psnr_per_frame(a: Path, b: Path, log: Path) -> list[float]:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(a), "-i", str(b), "-lavfi",
                    f"[0:v][1:v]psnr=stats_file={log}", "-f", "null", "-"], check=True)
    values = []
    for line in log.read_text().splitlines():
        value = line.split("psnr_avg:")[1].split()[0]
        values.append(float("inf") if value == "inf" else float(value))
    return values


def audio_md5(video: Path) -> str:
    return subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(video), "-map", "0:a",
                           "-c", "copy", "-f", "md5", "-"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_a_long_render_is_split_joined_and_looks_like_an_unsplit_one(fleet, tmp_path):
    audio, artwork, captions = (upload(fleet, path) for path in (SAMPLE, ARTWORK, CAPTIONS))
    options = {**OPTIONS, "artworkKey": artwork, "captionsKey": captions}
    split_id = submit(fleet, {"kind": "render", "audioKey": audio, "options": options})["jobId"]
    split_job, seen = poll(fleet, split_id)
    whole_id = submit(fleet, {"kind": "render", "audioKey": audio,
                              "options": {**options, "split": False}})["jobId"]
    whole_job, _ = poll(fleet, whole_id)
    assert split_job["status"] == whole_job["status"] == "complete", split_job["error"]
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert split_job["segments"] == {"total": 5, "done": 5, "running": 0}
    assert whole_job["segments"] is None

    kept = record(fleet, split_id)
    assert [(w["first"], w["stop"], w.get("audio", False)) for w in kept.split["windows"]] == [
        (0, 150, False), (150, 300, False), (300, 450, False), (450, 600, False),
        (0, 0, True)]  # 4 windows, and the audio encoded once beside them
    assert all(w["done"] and w["attempts"] == 1 for w in kept.split["windows"])
    assert record(fleet, whole_id).split is None
    # every unit was sent when the job split: none waited for the reaper to send it
    assert "sent again" not in (fleet.workdir / "api.log").read_text()
    assert split_job["result"]["videoKey"] == f"renders/{split_id}/output.mp4"
    assert split_job["result"]["duration"] == whole_job["result"]["duration"]
    assert split_job["result"]["thumbnailKey"] == f"renders/{split_id}/thumbnail.jpg"

    joined = download(split_job, tmp_path / "split.mp4")
    whole = download(whole_job, tmp_path / "whole.mp4")
    a, b = probe(joined, count_packets=True), probe(whole, count_packets=True)
    assert a["format"]["duration"] == b["format"]["duration"]
    for kind in ("video", "audio"):
        (sa,), (sb,) = ([s for s in info["streams"] if s["codec_type"] == kind]
                        for info in (a, b))
        assert sa["nb_read_packets"] == sb["nb_read_packets"]
        assert sa["duration"] == sb["duration"]
    assert audio_md5(joined) == audio_md5(whole)  # the same AAC stream, no seam in it
    psnr = psnr_per_frame(joined, whole, tmp_path / "psnr.log")
    assert len(psnr) == 600
    assert min(psnr) >= 40 and statistics.median(psnr) >= 45
    # the index is at the front (+faststart): moov before mdat
    head = joined.read_bytes()[:200_000]
    assert 0 <= head.find(b"moov") < head.find(b"mdat")
    # the windows' intermediate objects are gone a lease after the job has ended
    wait_for(lambda: work_left(fleet, split_id) == [], 30, "work/ removed")


def test_a_split_render_from_an_audio_url_fetches_it_once(fleet, served):
    before = served.gets
    job_id = submit(fleet, {"kind": "render", "audioUrl": served.url,
                            "options": {"width": 320, "height": 180}})["jobId"]
    done, _ = poll(fleet, job_id)
    assert done["status"] == "complete", done["error"]
    assert done["segments"]["total"] == 5 and abs(done["result"]["duration"] - 20.0) < 0.1
    # the job's task fetched it; the audio unit read the copy under work/, gone now
    assert served.gets - before == 1
    wait_for(lambda: work_left(fleet, job_id) == [], 30, "work/ removed")


def test_jobs_with_an_intro_and_outro_whole_and_split(fleet, tmp_path):
    """Uploaded intro and outro through the API (tests/test_bookends.py covers the
    composition): a job rendered whole and one split into windows, whose join composes
    them; both durations count them."""
    intro = make_video(tmp_path / "intro.mp4", size="320x240", seconds=1.0, tone=1000)
    outro = make_video(tmp_path / "outro.mov", size="180x320", fps=25, seconds=0.6, tone=500)
    audio = upload(fleet, SAMPLE)
    options = {"width": 320, "height": 180, "introKey": upload(fleet, intro),
               "outroKey": upload(fleet, outro), "fadeOut": 1}
    # 5 s: rendered whole; 12 s, past SPLIT_MIN_SECONDS: split into windows
    whole_id, split_id = (
        submit(fleet, {"kind": "render", "audioKey": audio,
                       "options": {**options, "end": end}})["jobId"] for end in (5, 12))
    for job_id, body in ((whole_id, 150), (split_id, 360)):
        job, seen = poll(fleet, job_id)
        assert job["status"] == "complete", job["error"]
        assert seen == sorted(seen) and seen[-1] == 1.0
        frames = 30 + body + 18  # 1 s of intro, the clip, 0.6 s of outro at 30 fps
        assert job["result"]["duration"] == round(frames / 30, 3)
        video = download(job, tmp_path / f"{job_id}.mp4")
        counted = next(s for s in probe(video, count_packets=True)["streams"]
                       if s["codec_type"] == "video")
        assert int(counted["nb_read_packets"]) == frames
        samples = sound(video)
        assert rms(samples[4800:43200]) > 0.05  # the intro's tone, before the body
        assert rms(samples[-480:]) < 0.01  # faded out at the end of the outro
        intro_frame, body_frame = frames_rgb(video, [10, 40])
        assert np.abs(intro_frame - body_frame).mean() > 20  # the intro, then the body
    assert record(fleet, whole_id).split is None
    assert record(fleet, split_id).split is not None
    wait_for(lambda: work_left(fleet, split_id) == [], 30, "work/ removed")
