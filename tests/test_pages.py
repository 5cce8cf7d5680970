"""The browser pages on a live stack: the upload page and a job's status page.

The browser tests drive Debian's Chromium (``/usr/bin/chromium``) with Playwright
as a person would: type the key, choose the file, style, size and title, submit,
watch the status page until the video plays. Each state is screenshot into
``var/artifacts/browser/``. The plain-HTTP tests pin what the pages promise about
the share token, escaping and headers.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import requests

from config.settings import Settings
from devstack import Stack
from render.spec import RenderSpec
from security.secrets import share_token
from tests.helpers.e2e import poll, submit, upload
from tests.helpers.media import make_video
from tests.helpers.samples import ARTWORK, CAPTIONS, SAMPLE

pytest.importorskip("playwright")
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "var" / "artifacts" / "browser"
#: samples/sample.mp3 is 20 s long (samples/README.md).
SAMPLE_SECONDS = 20.0
XSS_TITLE = "<script>alert(1)</script>"

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and shutil.which("chromium") is None,
    reason="Debian's chromium is not installed (python3 dev.py setup installs it)",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")),
            headless=True,
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def context(browser: Browser) -> Iterator[BrowserContext]:
    """One browser profile for the module, so the API key typed once is remembered."""
    ctx = browser.new_context(viewport={"width": 1000, "height": 900})
    yield ctx
    ctx.close()


@pytest.fixture
def csp_violations() -> list[str]:
    """What the browser's console said about Content-Security-Policy (should be nothing)."""
    return []


@pytest.fixture
def page(context: BrowserContext, csp_violations: list[str]) -> Iterator[Page]:
    opened = context.new_page()

    def on_console(message) -> None:  # noqa: ANN001
        if "Content Security Policy" in message.text:
            csp_violations.append(message.text)

    opened.on("console", on_console)
    yield opened
    opened.close()


def fill_form(page: Page, stack: Stack, audio: Path, *, style: str, size: str, title: str) -> None:
    page.goto(stack.url("/"))
    if page.input_value("#api-key") != stack.api_key:
        page.fill("#api-key", stack.api_key)
    page.set_input_files("#audio", str(audio))
    page.select_option("#style", style)
    if re.fullmatch(r"\d+x\d+", size):
        page.select_option("#size", "custom")
        page.fill("#custom-size", size)
    else:
        page.select_option("#size", size)
    page.fill("#title", title)


def submit_form(page: Page) -> None:
    page.click("#submit")
    try:
        page.wait_for_url(re.compile(r"/jobs/[0-9a-f]{32}\?token=[0-9a-f]+$"), timeout=30_000)
    except PlaywrightTimeout:
        raise AssertionError(f"no status page; the form says {page.text_content('#form-error')!r} "
                             f"{page.text_content('#form-status')!r} at {page.url}"
                             ) from None


def shot(page: Page, name: str) -> Path:
    path = ARTIFACTS / name
    # Headless Chromium, after a full-page shot of a page taller than the window with an
    # input focused low on it, hit-tests the next click as if scrolled elsewhere: the
    # click on Render lands on the form. Nothing focused, nothing to scroll back to.
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.screenshot(path=str(path), full_page=True)
    return path


@needs_chromium
def test_upload_page_renders_a_job_whose_video_plays(
    local_stack: Stack, page: Page, csp_violations: list[str]
) -> None:
    fill_form(page, local_stack, SAMPLE, style="wave", size="320x240", title="Browser test")
    screenshots = [shot(page, "1-upload-form.png")]

    submit_form(page)
    assert page.text_content("h1") == "Browser test"
    screenshots.append(shot(page, "2-in-progress.png"))
    assert page.get_attribute("#job", "data-status") in ("queued", "running", "complete")

    seen: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        seen.append(int(page.eval_on_selector("#job-progress", "bar => bar.value")))
        status = page.get_attribute("#job", "data-status")
        if status == "complete":
            break
        assert status in ("queued", "running")
        time.sleep(0.1)
    page.wait_for_function("() => document.getElementById('job-progress').value === 100")
    seen.append(100)
    assert seen == sorted(seen), f"the bar went backwards: {seen}"
    assert page.text_content("#job-percent") == "100%"
    assert page.text_content("#job-status") == "complete"

    page.wait_for_selector("#job-video", state="visible")
    page.wait_for_function("() => document.getElementById('job-video').readyState >= 1",
                           timeout=30_000)
    duration = page.eval_on_selector("#job-video", "video => video.duration")
    assert duration == pytest.approx(SAMPLE_SECONDS, abs=0.5)
    page.eval_on_selector("#job-video", "video => video.play()")
    page.wait_for_function("() => document.getElementById('job-video').currentTime > 0.3",
                           timeout=15_000)
    assert page.eval_on_selector("#job-video", "video => video.error") is None
    page.eval_on_selector("#job-video", "video => { video.pause(); video.currentTime = 8; }")
    page.wait_for_function("() => document.getElementById('job-video').readyState >= 2")
    screenshots.append(shot(page, "3-complete.png"))

    link = page.get_attribute("#job-download", "href")
    assert link == page.get_attribute("#job-video", "src")
    video = requests.get(link, timeout=30)
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    assert csp_violations == []
    assert all(path.stat().st_size > 0 for path in screenshots)


@needs_chromium
def test_failed_job_page_says_why(
    local_stack: Stack, page: Page, csp_violations: list[str], tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.mp3"
    corrupt.write_bytes(b"ID3 this is not audio at all " * 200)
    page.goto(local_stack.url("/"))
    assert page.input_value("#api-key") == local_stack.api_key, "the key was not remembered"
    fill_form(page, local_stack, corrupt, style="bars", size="square", title="Broken upload")
    submit_form(page)

    page.wait_for_function("() => document.getElementById('job').dataset.status === 'failed'",
                           timeout=60_000)
    assert page.is_visible("#job-error")
    assert page.text_content("#job-error-heading") == "This job failed."
    assert page.text_content("#job-error-code") == "invalid_audio"
    assert page.text_content("#job-error-message").strip()
    assert not page.is_visible("#job-video")
    path = shot(page, "4-failed.png")
    assert path.stat().st_size > 0
    assert csp_violations == []


def api_requests(page: Page) -> list[str]:
    """Every call the page makes to the API from now on (``POST /v1/uploads`` ...)."""
    calls: list[str] = []
    page.on("request", lambda r: calls.append(f"{r.method} {r.url}") if "/v1/" in r.url
            else None)
    return calls


@needs_chromium
def test_upload_page_sends_every_field(local_stack: Stack, page: Page, tmp_path: Path) -> None:
    """Captions, artwork and a background image are uploaded first; their keys, the
    colours and the rest reach the job's options."""
    background = tmp_path / "backdrop.png"
    background.write_bytes(ARTWORK.read_bytes())
    fill_form(page, local_stack, SAMPLE, style="wave", size="320x240", title="Every field")
    page.fill("#subtitle", "A subtitle")
    page.set_input_files("#artwork", str(ARTWORK))
    page.set_input_files("#captions", str(CAPTIONS))
    page.click("#look-options summary")
    page.fill("#color", "#ffcc00")
    page.check("#color2-on")
    page.fill("#color2", "#ff6b6b")
    page.fill("#text-color", "#fafafa")
    page.fill("#background", "#101828")
    page.check("#background2-on")
    page.fill("#background2", "#3a2e5c")
    page.set_input_files("#background-image", str(background))
    page.fill("#background-blur", "6")
    page.fill("#background-darken", "0.3")
    page.select_option("#layout", "minimal")
    page.uncheck("#rounded")
    page.uncheck("#filled")
    page.click("#more-options summary")
    page.fill("#start", "2")
    page.fill("#end", "9.5")
    page.select_option("#fps", "24")
    page.fill("#quality", "28")
    page.select_option("#kind", "preview")
    output_key = f"page-tests/{time.time_ns()}.mp4"
    page.fill("#output-key", output_key)
    page.fill("#timeout", "600")
    shot(page, "5-every-field.png")
    submit_form(page)

    job_id = re.search(r"/jobs/([0-9a-f]{32})\?", page.url)[1]
    job = local_stack.client().get(local_stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()
    assert job["kind"] == "preview" and job["audioKey"].endswith("/sample.mp3")
    options = job["options"]
    stored = local_stack.workdir / "storage"
    for field, path in (("artworkKey", ARTWORK), ("captionsKey", CAPTIONS),
                        ("backgroundKey", background)):
        assert re.fullmatch(rf"uploads/[0-9a-f]{{32}}/{re.escape(path.name)}", options[field])
        assert (stored / options[field]).read_bytes() == path.read_bytes()
    assert {name: options[name] for name in (
        "style", "width", "height", "title", "subtitle", "color", "color2", "textColor",
        "background", "background2", "backgroundBlur", "backgroundDarken", "layout",
        "rounded", "filled", "start", "end", "fps", "quality")} == {
        "style": "wave", "width": 320, "height": 240, "title": "Every field",
        "subtitle": "A subtitle", "color": "#ffcc00", "color2": "#ff6b6b",
        "textColor": "#fafafa", "background": "#101828", "background2": "#3a2e5c",
        "backgroundBlur": 6.0, "backgroundDarken": 0.3, "layout": "minimal",
        "rounded": False, "filled": False, "start": 2.0, "end": 9.5, "fps": 24, "quality": 28}
    timeout = (datetime.fromisoformat(job["deadlineAt"])
               - datetime.fromisoformat(job["createdAt"])).total_seconds()
    assert timeout == pytest.approx(600, abs=2)
    page.wait_for_function("() => document.getElementById('job').dataset.status === 'complete'",
                           timeout=120_000)
    done = local_stack.client().get(local_stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()
    assert done["result"]["previewKey"] == output_key


@needs_chromium
def test_upload_page_sends_the_video_fields(local_stack: Stack, page: Page,
                                            tmp_path: Path) -> None:
    """An intro, an outro and a background video are uploaded first; their keys, the fit
    and the fades reach the job, and the video it makes is intro + audiogram + outro."""
    intro = make_video(tmp_path / "intro.mp4", size="160x120", seconds=1.0)
    outro = make_video(tmp_path / "outro.mov", size="160x120", seconds=1.0, tone=None)
    loop = make_video(tmp_path / "loop.webm", size="160x90", fps=25, seconds=1.0, tone=None,
                      codec="libvpx-vp9")
    fill_form(page, local_stack, SAMPLE, style="bars", size="320x240", title="Bookends")
    page.click("#video-options summary")
    page.set_input_files("#intro", str(intro))
    page.set_input_files("#outro", str(outro))
    page.select_option("#intro-fit", "fit")
    page.fill("#fade-in", "0.5")
    page.fill("#fade-out", "1")
    page.set_input_files("#background-video", str(loop))
    page.click("#more-options summary")
    page.fill("#end", "3")
    shot(page, "7-video-fields.png")
    submit_form(page)

    job_id = re.search(r"/jobs/([0-9a-f]{32})\?", page.url)[1]
    job = local_stack.client().get(local_stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()
    options = job["options"]
    stored = local_stack.workdir / "storage"
    for field, path in (("introKey", intro), ("outroKey", outro), ("backgroundVideoKey", loop)):
        assert re.fullmatch(rf"uploads/[0-9a-f]{{32}}/{re.escape(path.name)}", options[field])
        assert (stored / options[field]).read_bytes() == path.read_bytes()
    assert {name: options[name] for name in ("introFit", "fadeIn", "fadeOut", "end")} == {
        "introFit": "fit", "fadeIn": 0.5, "fadeOut": 1.0, "end": 3.0}
    page.wait_for_function("() => document.getElementById('job').dataset.status === 'complete'",
                           timeout=120_000)
    done = local_stack.client().get(local_stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()
    assert done["result"]["duration"] == pytest.approx(1.0 + 3.0 + 1.0, abs=0.1)


@needs_chromium
@pytest.mark.parametrize(("fields", "message"), [
    ({"#audio": ARTWORK}, "Audio file: artwork.png is an image, not audio (.wav, .mp3"),
    ({"#captions": ARTWORK},
     "Captions: artwork.png is an image, not captions (.srt, .vtt, .json)."),
    ({"#artwork": SAMPLE}, "Artwork image: sample.mp3 is audio, not an image"),
    ({"#custom-size": "321x240"}, "Width and height must be even"),
    ({"#start": "5", "#end": "3"}, "The clip must end after it starts."),
    ({"#quality": "50"}, "Quality (x264 CRF): give a number from 14 to 40."),
], ids=["png-as-audio", "png-as-captions", "mp3-as-artwork", "odd-width", "end-before-start",
        "quality"])
def test_upload_page_refuses_bad_input_before_uploading(
    local_stack: Stack, page: Page, fields: dict[str, Path | str], message: str
) -> None:
    fill_form(page, local_stack, SAMPLE, style="bars", size="320x240", title="refused")
    page.click("#look-options summary")
    page.click("#more-options summary")
    for selector, value in fields.items():
        if isinstance(value, Path):
            page.set_input_files(selector, str(value))
        else:
            page.fill(selector, value)
    calls = api_requests(page)
    page.click("#submit")
    page.wait_for_selector("#form-error", state="visible")
    assert message in page.text_content("#form-error")
    assert calls == []  # nothing uploaded, nothing submitted
    assert page.url == local_stack.url("/")


@needs_chromium
def test_upload_page_shows_the_apis_refusal(local_stack: Stack, page: Page) -> None:
    """What only the API knows (its SSRF guard refuses a loopback link) is shown as it
    said it, with its code."""
    page.goto(local_stack.url("/"))
    page.fill("#audio-url", "http://127.0.0.1:9/talk.mp3")
    page.click("#submit")
    page.wait_for_selector("#form-error", state="visible")
    error = page.text_content("#form-error")
    assert error.startswith("Job refused: audioUrl: ") and error.endswith("(forbidden_url)")
    assert page.url == local_stack.url("/")


# --- plain HTTP -------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_job(local_stack: Stack) -> dict:
    """A finished job titled with markup, and its share link."""
    job = submit(local_stack, {
        "kind": "preview", "audioKey": upload(local_stack, SAMPLE),
        "options": {"width": 320, "height": 240, "title": XSS_TITLE},
    })
    done, _ = poll(local_stack, job["jobId"], timeout=120)
    assert done["status"] == "complete", done
    return job


def test_status_page_needs_the_right_token(local_stack: Stack, shared_job: dict) -> None:
    job_id, link = shared_job["jobId"], shared_job["shareUrl"]
    assert link.startswith(local_stack.url(f"/jobs/{job_id}?token="))
    assert requests.get(link, timeout=10).status_code == 200
    other_token = share_token(Settings.from_env(local_stack.env), "f" * 32)  # another job's

    for url in (
        local_stack.url(f"/jobs/{job_id}"),
        local_stack.url(f"/jobs/{job_id}?token="),
        local_stack.url(f"/jobs/{job_id}?token=0123456789abcdef0123456789abcdef"),
        local_stack.url(f"/jobs/{job_id}?token={other_token}"),
        local_stack.url(f"/jobs/{'0' * 32}?token={other_token}"),
    ):
        response = requests.get(url, timeout=10)
        assert response.status_code == 404, url
        assert response.headers["Content-Type"].startswith("text/html")
        assert "Job not found" in response.text
        assert response.headers["Referrer-Policy"] == "no-referrer"


def test_status_json_is_a_token_scoped_subset(local_stack: Stack, shared_job: dict) -> None:
    job_id, token = shared_job["jobId"], shared_job["shareUrl"].split("token=")[1]
    url = local_stack.url(f"/jobs/{job_id}/status.json")
    by_query = requests.get(url, params={"token": token}, timeout=10)
    by_header = requests.get(url, headers={"X-Share-Token": token}, timeout=10)
    for response in (by_query, by_header):
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        state = response.json()
        assert set(state) == {"jobId", "kind", "status", "stage", "progress", "eta",
                              "queuePosition", "error", "downloadUrl", "result", "terminal"}
        assert state["status"] == "complete" and state["progress"] == 1.0
        assert state["result"]["duration"] == pytest.approx(15.0, abs=0.1)
        assert state["downloadUrl"]
    assert requests.get(url, timeout=10).status_code == 404
    wrong = requests.get(url, headers={"X-Share-Token": "0" * 32}, timeout=10)
    assert wrong.status_code == 404 and wrong.json()["error"]["code"] == "not_found"


def test_pages_send_a_strict_content_security_policy(local_stack: Stack, shared_job: dict):
    for url in (local_stack.url("/"), shared_job["shareUrl"]):
        response = requests.get(url, timeout=10)
        assert response.status_code == 200
        csp = response.headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["default-src"] == "'none'"
        assert directives["script-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        # no inline script: every <script> has a src on this origin
        scripts = re.findall(r"<script\b[^>]*>", response.text)
        assert scripts and all(re.search(r'src="/static/[\w.]+\.js"', s) for s in scripts)
    assert requests.get(shared_job["shareUrl"], timeout=10).headers["Cache-Control"] == "no-store"


def test_upload_page_offers_every_option(local_stack: Stack) -> None:
    """Everything a job takes is reachable from the page."""
    html = requests.get(local_stack.url("/"), timeout=10).text
    options = set(re.findall(r'data-(?:key-)?option="(\w+)"', html))
    aliases = {field.alias or name for name, field in RenderSpec.model_fields.items()}
    assert options | {"preset", "width", "height"} == aliases  # the size control sets those
    assert set(re.findall(r'data-field="(\w+)"', html)) == {
        "kind", "outputKey", "webhookUrl", "timeoutSeconds"}
    assert 'id="audio-url"' in html and 'data-upload="audio"' in html


def test_status_page_escapes_the_title(shared_job: dict) -> None:
    html = requests.get(shared_job["shareUrl"], timeout=10).text
    assert XSS_TITLE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_share_tokens_never_reach_the_logs(local_stack: Stack, shared_job: dict) -> None:
    token = shared_job["shareUrl"].split("token=")[1]
    assert requests.get(shared_job["shareUrl"], timeout=10).status_code == 200
    time.sleep(0.5)  # gunicorn writes its access line after the answer
    for log in ("api.log", "worker.log"):
        text = (local_stack.workdir / log).read_text(errors="replace")
        assert token not in text and "token=" not in text, log  # nor the browser tests' tokens


def test_the_status_page_names_every_stage_and_no_other():
    from api.pages import STAGE_LABELS
    from jobs.constants import STAGES

    assert set(STAGE_LABELS) == set(STAGES)
