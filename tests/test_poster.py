"""A render stores a JPEG of its loudest moment (thumbnailKey) and its status page
shows it as the video's poster: not frame 0, which is near silence and so an
almost empty picture. On the real stack."""

from __future__ import annotations

import html
import io
import re
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import requests
from PIL import Image

from devstack import Stack
from tests.helpers.e2e import download, run


def quiet_then_loud(path: Path) -> Path:
    """1.5 s of silence, then 1.5 s of loud pink noise (every band lit): frame 0 has
    nothing to draw, the loudest moment fills the picture with bars."""
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "anoisesrc=c=pink:a=0.8:d=1.5:r=44100:seed=7,adelay=1500",
                    "-y", str(path)], check=True)
    return path


def first_frame(video: Path) -> Image.Image:
    """Frame 0 of the video, decoded by ffmpeg."""
    png = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(video),
                          "-frames:v", "1", "-f", "image2pipe", "-c:v", "png", "-"],
                         check=True, capture_output=True).stdout
    return Image.open(io.BytesIO(png))


def lit(image: Image.Image) -> float:
    """The share of the picture that is bars: light (#f5f5f5) on the dark background."""
    return float((np.asarray(image.convert("L")) > 128).mean())


def brightness(image: Image.Image) -> float:
    return float(np.asarray(image.convert("L"), dtype=np.float64).mean())


def test_a_render_stores_its_loudest_moment_as_the_status_pages_poster(
    local_stack: Stack, tmp_path: Path
) -> None:
    job, _ = run(local_stack, quiet_then_loud(tmp_path / "swell.wav"), {
        "kind": "render", "options": {"width": 320, "height": 180, "fps": 24, "quality": 30},
    })
    assert job["status"] == "complete", job["error"]
    job_id = job["jobId"]
    assert job["result"]["thumbnailKey"] == f"renders/{job_id}/thumbnail.jpg"

    poster = requests.get(job["thumbnailUrl"], timeout=30)
    assert poster.status_code == 200
    assert poster.content.startswith(b"\xff\xd8\xff")
    image = Image.open(io.BytesIO(poster.content))
    assert image.format == "JPEG" and image.size == (320, 180)
    frame0 = first_frame(download(job, tmp_path / "video.mp4"))
    assert lit(frame0) < 0.1, "frame 0 (silence) should be the bare background and dots"
    assert lit(image) > 4 * lit(frame0) and lit(image) > 0.25, (lit(image), lit(frame0))
    assert brightness(image) > brightness(frame0) + 30

    page = requests.get(job["shareUrl"], timeout=30)
    assert page.status_code == 200
    found = re.search(r'<video id="job-video"[^>]*\sposter="([^"]+)"', page.text)
    assert found, "the status page's video has no poster"
    url = html.unescape(found.group(1))
    assert f"/renders/{job_id}/thumbnail.jpg" in url
    assert requests.get(url, timeout=30).content == poster.content
    token = job["shareUrl"].split("token=")[1]
    state = requests.get(local_stack.url(f"/jobs/{job_id}/status.json"),
                         headers={"X-Share-Token": token}, timeout=30).json()
    assert f"/renders/{job_id}/thumbnail.jpg" in state["result"]["posterUrl"]
