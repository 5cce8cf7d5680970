"""The ``soundreel`` console script, driven as a person or a script would drive it:
as a subprocess against the live stack (gunicorn, redis-server, a Celery worker),
and in a real terminal (tmux) for the progress bar and the Ctrl-C prompt."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from client import cli as cli_module
from client.roles import ROLE_EXTENSIONS
from client.sdk import Client
from devstack import Stack
from jobs.constants import UPLOAD_EXTENSIONS
from render.spec import RenderSpec
from tests.helpers.e2e import wait_for
from tests.helpers.media import probe, stream
from tests.helpers.samples import ARTWORK, CAPTIONS, SAMPLE

BIN = Path(sys.executable).parent
#: The installed console script; ``python -m client.cli`` when the venv predates it.
CLI = [str(BIN / "soundreel")] if (BIN / "soundreel").exists() else [sys.executable, "-m",
                                                                     "client.cli"]
#: Small and quick: the sample (20 s) at 320x240, 24 fps.
SMALL = ["--size", "320x240", "--fps", "24"]
#: Slow enough to interrupt: 720p at 60 fps.
SLOW = ["--size", "1280x720", "--fps", "60"]
JOB_ID = re.compile(r"\b[0-9a-f]{32}\b")


@pytest.fixture(scope="module")
def env(local_stack: Stack) -> dict[str, str]:
    """The environment a user sets: where the API is and their key (nothing else of ours)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SOUNDREEL_")}
    return {**base, "SOUNDREEL_URL": local_stack.base_url,
            "SOUNDREEL_API_KEY": local_stack.api_key, "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def client(local_stack: Stack) -> Client:
    return Client(local_stack.base_url, local_stack.api_key)


def soundreel(*args: str | Path, env: dict[str, str], timeout: float = 120,
              cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI with no terminal (stdin closed, output captured), as a script would."""
    return subprocess.run([*CLI, *map(str, args)], env=env, cwd=cwd, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=timeout, check=False)


def assert_key_not_shown(result: subprocess.CompletedProcess[str], key: str) -> None:
    assert key not in result.stdout and key not in result.stderr


@pytest.fixture(scope="module")
def rendered(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> tuple[
    subprocess.CompletedProcess[str], Path
]:
    out = tmp_path_factory.mktemp("cli") / "episode.mp4"
    result = soundreel("render", SAMPLE, "-o", out, *SMALL, "--style", "bars",
                       "--title", "Episode 12", env=env)
    return result, out


def test_render_downloads_the_video_and_prints_its_path(rendered, env):
    result, out = rendered
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)  # stdout is only the path, for scripts
    info = probe(out)
    assert "mp4" in info["format"]["format_name"]
    assert float(info["format"]["duration"]) == pytest.approx(20.0, abs=0.3)
    video = stream(info, "video")
    assert (video["width"], video["height"], video["r_frame_rate"]) == (320, 240, "24/1")
    # without a terminal, progress is plain lines on stderr, no escape codes
    assert "complete 100%" in result.stderr
    assert "\x1b[" not in result.stderr
    assert_key_not_shown(result, env["SOUNDREEL_API_KEY"])


def test_render_saves_next_to_the_audio_by_default(env, tmp_path):
    audio = tmp_path / "talk.mp3"
    shutil.copyfile(SAMPLE, audio)
    result = soundreel("render", audio.name, "--kind", "preview", *SMALL, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "talk.mp4"
    assert float(probe(tmp_path / "talk.mp4")["format"]["duration"]) == pytest.approx(15, abs=0.3)


def test_no_wait_prints_the_job_id_and_status_follows_the_job(env, client):
    submitted = soundreel("render", SAMPLE, "--no-wait", *SMALL, env=env)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert JOB_ID.fullmatch(job_id)

    now = soundreel("status", job_id, env=env)
    assert now.returncode == 0, now.stderr
    assert re.search(r"^status\s+(queued|running|complete)$", now.stdout, re.M), now.stdout

    client.wait(job_id, timeout=180)
    done = soundreel("status", job_id, env=env)
    assert done.returncode == 0
    assert re.search(r"^status\s+complete$", done.stdout, re.M)
    assert re.search(r"^progress\s+100%$", done.stdout, re.M)
    assert re.search(r"^download\s+http", done.stdout, re.M)
    as_json = soundreel("status", job_id, "--json", env=env)
    assert json.loads(as_json.stdout)["jobId"] == job_id


def test_cancel_stops_a_job_and_a_second_cancel_is_refused(env, client):
    job_id = soundreel("render", SAMPLE, "--no-wait", *SLOW, env=env).stdout.strip()
    canceled = soundreel("cancel", job_id, env=env)
    assert canceled.returncode == 0, canceled.stderr
    assert canceled.stdout.strip() == f"{job_id} canceled"
    assert client.job(job_id)["status"] == "canceled"

    status = soundreel("status", job_id, env=env)
    assert status.returncode == 1
    assert re.search(r"^status\s+canceled$", status.stdout, re.M)

    again = soundreel("cancel", job_id, env=env)
    assert again.returncode == 1
    assert again.stderr.startswith("error: job_finished: ")


def test_corrupt_audio_fails_with_exit_1_and_the_error_code(env, tmp_path):
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"ID3" + os.urandom(20_000))
    result = soundreel("render", bad, *SMALL, env=env)
    assert result.returncode == 1
    assert "error: invalid_audio: " in result.stderr
    assert not (tmp_path / "broken.mp4").exists()


def test_a_missing_api_key_is_a_usage_error(env):
    without = {k: v for k, v in env.items() if k != "SOUNDREEL_API_KEY"}
    result = soundreel("render", SAMPLE, env=without)
    assert result.returncode == 2
    assert "SOUNDREEL_API_KEY is not set" in result.stderr


def test_a_wrong_api_key_fails_without_showing_it(env):
    wrong = "sk_wrong_" + uuid.uuid4().hex
    result = soundreel("jobs", env={**env, "SOUNDREEL_API_KEY": wrong})
    assert result.returncode == 1
    assert result.stderr.startswith("error: unauthorized: ")
    assert_key_not_shown(result, wrong)


@pytest.mark.parametrize("args", [
    [],
    ["render"],
    ["render", SAMPLE, "--size", "1280by720"],
    ["render", SAMPLE, "--size", "321x240"],
    ["render", SAMPLE, "--start", "5", "--end", "3"],
    ["render", SAMPLE, "--kind", "prepare", "--style", "wave"],
    ["render", "no-such-file.mp3"],
    ["status"],
    ["render", SAMPLE, "--color", "red"],
    ["render", SAMPLE, "--background", "#12"],
    ["render", SAMPLE, "--quality", "50"],
    ["render", SAMPLE, "--layout", "fancy"],
    ["render", SAMPLE, "--output-key", "uploads/x.mp4"],
    ["render", SAMPLE, "--webhook-url", "ftp://example.com/hook"],
    ["render", SAMPLE, "--kind", "prepare", "--captions", CAPTIONS],
], ids=["nothing", "no-audio", "bad-size", "odd-size", "end-before-start", "prepare-options",
        "missing-file", "status-no-id", "colour-name", "short-hex", "quality", "layout",
        "reserved-output-key", "ftp-webhook", "prepare-captions"])
def test_usage_errors_exit_2_before_anything_is_sent(args, env):
    result = soundreel(*args, env={**env, "SOUNDREEL_URL": "http://127.0.0.1:9"})
    assert result.returncode == 2, result.stderr
    assert "error" in result.stderr and "unreachable" not in result.stderr


def uploads_in(stack: Stack) -> list[str]:
    """The uploads the local store holds (one directory per upload)."""
    return sorted(p.name for p in (stack.workdir / "storage" / "uploads").iterdir())


def test_render_uploads_captions_artwork_and_background_and_sends_every_option(
    env, client, local_stack
):
    result = soundreel(
        "render", SAMPLE, "--no-wait", "--kind", "preview", *SMALL,
        "--captions", CAPTIONS, "--artwork", ARTWORK, "--background", ARTWORK,
        "--color", "#FFCC00", "--color2", "#ff6b6b", "--background2", "#203040",
        "--text-color", "#fff", "--layout", "minimal", "--quality", "30", "--no-rounded",
        "--no-filled", "--background-blur", "8", "--background-darken", "0.4",
        "--subtitle", "A subtitle", "--output-key", f"cli-tests/{uuid.uuid4().hex}.mp4",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    job = client.job(result.stdout.strip())
    options = job["options"]
    stored = local_stack.workdir / "storage"
    for field, path in (("captionsKey", CAPTIONS), ("artworkKey", ARTWORK),
                        ("backgroundKey", ARTWORK), ):
        key = options[field]
        assert re.fullmatch(rf"uploads/[0-9a-f]{{32}}/{re.escape(path.name)}", key), key
        assert (stored / key).read_bytes() == path.read_bytes()  # the file, as uploaded
    assert options["artworkKey"] != options["backgroundKey"]  # two uploads
    assert job["audioKey"].endswith("/sample.mp3") and job["audioKey"] not in (
        options["captionsKey"], options["artworkKey"], options["backgroundKey"])
    assert {name: options[name] for name in (
        "color", "color2", "background", "background2", "textColor", "layout", "quality",
        "rounded", "filled", "backgroundBlur", "backgroundDarken", "subtitle", "width",
        "height", "fps")} == {
        "color": "#ffcc00", "color2": "#ff6b6b", "background": "#14161f",  # the default
        "background2": "#203040", "textColor": "#fff", "layout": "minimal", "quality": 30,
        "rounded": False, "filled": False, "backgroundBlur": 8.0, "backgroundDarken": 0.4,
        "subtitle": "A subtitle", "width": 320, "height": 240, "fps": 24}
    # the worker could use every file: the preview renders
    done = client.wait(job["jobId"], timeout=180)
    assert done["status"] == "complete", done.get("error")


def test_background_takes_a_colour_as_well_as_an_image(env, client):
    result = soundreel("render", SAMPLE, "--no-wait", "--kind", "preview", *SMALL,
                       "--background", "#102030", env=env)
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    options = client.job(job_id)["options"]
    assert (options["background"], options["backgroundKey"]) == ("#102030", None)
    assert client.wait(job_id, timeout=180)["status"] == "complete"


def test_no_cache_asks_for_a_fresh_render(env, client):
    result = soundreel("render", SAMPLE, "--no-wait", "--kind", "preview", *SMALL,
                       "--no-cache", "--no-split", env=env)
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    assert client.job(job_id)["options"]["cache"] is False
    assert client.job(job_id)["options"]["split"] is False
    assert client.wait(job_id, timeout=180)["status"] == "complete"


@pytest.mark.parametrize(("args", "code", "message"), [
    ([ARTWORK], "unsupported_media_type", "AUDIO: artwork.png is an image, not audio"),
    ([CAPTIONS], "unsupported_media_type", "AUDIO: sample.srt is captions, not audio"),
    ([SAMPLE, "--artwork", SAMPLE], "unsupported_media_type",
     "--artwork: sample.mp3 is audio, not an image"),
    ([SAMPLE, "--captions", ARTWORK], "unsupported_media_type",
     "--captions: artwork.png is an image, not captions (.srt, .vtt, .json)"),
    ([SAMPLE, "--background", CAPTIONS], "unsupported_media_type",
     "--background: sample.srt is captions, not an image"),
    ([SAMPLE, "--captions", "missing.srt"], "file_not_found", "--captions: missing.srt: no such"),
    ([SAMPLE, "--background", "1e90ff"], "file_not_found",
     "--background: 1e90ff: no such file (give a hex colour like #14161f, or an image file)"),
    (["https://example.com/cover.png"], "unsupported_media_type",
     "AUDIO: cover.png is an image, not audio"),
], ids=["png-as-audio", "srt-as-audio", "mp3-as-artwork", "png-as-captions",
        "srt-as-background", "missing-captions", "colour-without-hash", "png-url-as-audio"])
def test_a_file_of_the_wrong_kind_exits_2_and_uploads_nothing(
    args, code, message, env, client, local_stack
):
    client.upload(CAPTIONS)  # so the store's upload folder exists and an upload would show
    before = uploads_in(local_stack)
    assert before
    result = soundreel("render", *args, "--no-wait", env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {code}: "), result.stderr
    assert message in result.stderr
    assert result.stdout == ""
    assert uploads_in(local_stack) == before


def test_an_audio_url_is_sent_as_audio_url_without_uploading(env, local_stack):
    before = uploads_in(local_stack)
    # the API's SSRF guard refuses a loopback URL: proof that audioUrl reached it
    result = soundreel("render", "http://127.0.0.1:9/talk.mp3", "--no-wait", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("error: forbidden_url: audioUrl: "), result.stderr
    assert uploads_in(local_stack) == before


def test_every_render_option_has_a_flag():
    """Everything a job's options take is reachable from the CLI."""
    aliases = {field.alias or name for name, field in RenderSpec.model_fields.items()}
    assert aliases == set(cli_module.OPTION_FLAGS)
    render = cli_module.build_parser()._subparsers._group_actions[0].choices["render"]
    flags = {flag for action in render._actions for flag in action.option_strings}
    assert set(cli_module.OPTION_FLAGS.values()) | set(
        flag for flag in cli_module.REQUEST_FLAGS.values() if flag.startswith("--")) <= flags


def test_the_cli_takes_every_file_the_api_accepts_in_some_role():
    assert {ext for exts in ROLE_EXTENSIONS.values() for ext in exts} == UPLOAD_EXTENSIONS


def test_jobs_lists_the_rendered_job(rendered, env):
    job_id = JOB_ID.search(rendered[0].stderr)[0]
    table = soundreel("jobs", "--status", "complete", "--kind", "render", env=env)
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if job_id in line)
    assert row.split()[1:5] == ["render", "complete", "done", "100%"]
    page = json.loads(soundreel("jobs", "--limit", "100", "--json", env=env).stdout)
    assert job_id in [job["jobId"] for job in page["jobs"]]


def test_interrupt_without_a_terminal_leaves_the_job_running(env, client, tmp_path):
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        proc = subprocess.Popen([*CLI, "render", str(SAMPLE), "-o", str(tmp_path / "x.mp4"),
                                 *SLOW], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        job_id = wait_for(lambda: (m := JOB_ID.search(log.read_text())) and m[0], 30, "job id")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        assert f"job {job_id} keeps running" in log.read_text()
        assert client.job(job_id)["status"] in ("queued", "running")
    finally:
        if proc.poll() is None:
            proc.kill()
    client.cancel(job_id)


# --- in a real terminal ---------------------------------------------------------------


class Terminal:
    """A private tmux server running one command in a 120x30 pane that stays after it
    exits, so the screen and the exit status can be read."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        if shutil.which("tmux") is None:
            pytest.fail("tmux is not installed: `python3 dev.py setup` installs it "
                        "(or apt-get install -y tmux)")
        self.env = env
        self.server = f"soundreel-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        conf = cwd / "tmux.conf"
        conf.write_text("set -g remain-on-exit on\n")
        self.tmux("-f", str(conf), "new-session", "-d", "-s", "cli", "-x", "120", "-y", "30",
                  "-c", str(cwd), shlex.join(command))
        pid, socket = self.tmux("display", "-p", "#{pid} #{socket_path}").split()
        self.server_pid, self.socket = int(pid), Path(socket)

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.server, *args], env=self.env, check=True,
                              capture_output=True, text=True, timeout=10).stdout

    def screen(self) -> str:
        """What the terminal shows, with its scrollback: tmux's "Pane is dead" line
        sometimes scrolls the first line of a short screen out of view."""
        return self.tmux("capture-pane", "-p", "-S", "-", "-t", "cli").strip("\n")

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "cli", *keys)

    def exit_status(self) -> int | None:
        # Debian's tmux (built with libutempter) can miss the SIGCHLD of a pane's
        # process and leave it a zombie, never "dead" (tmux/tmux#311, #4559): nudge it.
        os.kill(self.server_pid, signal.SIGCHLD)
        dead, _, status = self.tmux("display", "-p", "-t", "cli",
                                    "#{pane_dead}:#{pane_dead_status}").strip().partition(":")
        return int(status) if dead == "1" and status else None

    def watch(self, done: Callable[[str], bool], timeout: float, what: str) -> list[str]:
        """Every distinct screen until ``done(screen)``; fail after ``timeout`` s."""
        screens: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if not screens or screens[-1] != screen:
                screens.append(screen)
            if done(screen):
                return screens
            time.sleep(0.1)
        raise AssertionError(f"{what} not on screen within {timeout} s:\n{screens[-1]}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.server, "kill-server"], env=self.env,
                       capture_output=True, check=False, timeout=10)
        self.socket.unlink(missing_ok=True)


@pytest.fixture
def terminal(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[list[str]], Terminal]]:
    opened: list[Terminal] = []

    def open_(command: list[str]) -> Terminal:
        opened.append(Terminal(command, env, tmp_path))
        return opened[-1]

    yield open_
    for term in opened:
        term.close()


BAR_LINE = re.compile(r"^(?P<stage>[a-z_ ]+?)\s+━+[╸━╺ ]*\s+(?P<pct>\d+)%", re.M)


def test_render_in_a_terminal_shows_a_live_bar_that_ends_at_100(terminal, tmp_path):
    out = tmp_path / "terminal.mp4"
    term = terminal([*CLI, "render", str(SAMPLE), "-o", str(out), "--size", "640x360",
                     "--fps", "24"])
    screens = term.watch(lambda s: term.exit_status() is not None, 90, "the command's end")
    assert term.exit_status() == 0, screens[-1]
    final = term.screen()
    bars = {m["stage"].strip(): int(m["pct"]) for m in BAR_LINE.finditer(final)}
    assert bars.get("complete") == 100, final
    assert str(out) in final.splitlines()
    assert JOB_ID.search(final.splitlines()[0])  # the job's id stays above the bar
    assert out.stat().st_size > 0
    # it was live: earlier screens showed the job on its way, below 100 %
    earlier = [int(m["pct"]) for s in screens[:-1] for m in BAR_LINE.finditer(s)
               if m["stage"].strip() != "download"]
    assert earlier and min(earlier) < 100, screens


def test_ctrl_c_in_a_terminal_asks_and_cancels_on_yes(terminal, client, tmp_path):
    term = terminal([*CLI, "render", str(SAMPLE), "-o", str(tmp_path / "no.mp4"), *SLOW])
    term.watch(lambda s: BAR_LINE.search(s) is not None, 30, "the progress bar")
    term.send("C-c")
    screen = term.watch(lambda s: "[y/N]" in s, 10, "the cancel prompt")[-1]
    job_id = re.search(rf"Cancel job ({JOB_ID.pattern})\? \[y/N\]", screen)[1]
    term.send("y", "Enter")
    term.watch(lambda s: term.exit_status() is not None, 30, "the command's end")
    assert term.exit_status() == 1
    assert "error: canceled: " in term.screen()
    assert client.job(job_id)["status"] == "canceled"
    assert not (tmp_path / "no.mp4").exists()
