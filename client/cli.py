"""``soundreel``: render audio into video from a terminal, through a soundreel API.

    soundreel render talk.mp3 -o talk.mp4 --style bars --size 1080x1920 --title "Episode 12"
    soundreel render talk.mp3 --artwork cover.png --captions talk.srt --background bg.jpg \
        --color '#ffcc00' --color2 '#ff6b6b' --text-color '#fff' --layout minimal
    soundreel render https://example.com/talk.mp3   # fetched by the worker, not uploaded
    soundreel render talk.mp3 --no-wait          # prints the job id
    soundreel status <jobId>
    soundreel cancel <jobId>
    soundreel jobs [--status S] [--kind K] [--limit N]

Every option a job takes has a flag, named as ``python -m render`` names it
(``--color2``, ``--background-blur``, ``--rounded/--no-rounded`` ...). Files are
checked before anything is sent: a missing file, or one of the wrong kind for its
role (an image as AUDIO, audio as ``--artwork``, a ``.png`` as ``--captions``), is
``error: <code>: <message>`` and exit 2 with nothing uploaded. Then AUDIO and
the ``--captions``, ``--artwork`` and ``--background`` files are uploaded and their
keys passed in the job's options (``--background`` takes a hex colour or an image);
an http(s) AUDIO is passed as ``audioUrl`` and fetched by the worker instead.

Settings come from the environment: ``SOUNDREEL_API_KEY`` (required) and
``SOUNDREEL_URL`` (default ``http://127.0.0.1:8000``). The key is never printed.

Output: what a script wants (the output path, a job id, the table of jobs) goes to
stdout; the progress bar, prompts and errors go to stderr. Exit codes: 0 the job
completed (or the command did what it was asked), 1 the job failed, was canceled
or timed out, or the API refused or could not be reached (``error: <code>:
<message>``), 2 a usage error or a missing setting, 130 interrupted with the job
left running.

Ctrl-C while a job renders asks ``Cancel job <id>? [y/N]`` when stdin is a
terminal; ``y`` cancels it, anything else leaves it running. Without a terminal
(a script, CI) the job is left running and its id printed: a script being stopped
should not destroy work it cannot ask about.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from api.schemas import JobRequest
from client.roles import (
    ARTWORK,
    AUDIO,
    BACKGROUND,
    BACKGROUND_VIDEO,
    CAPTIONS,
    INTRO,
    OUTRO,
    ROLE_FIELDS,
    ROLE_KINDS,
    kind_of,
    role_problem,
)
from client.sdk import ApiError, Client, ClientError, Unreachable
from jobs.constants import (
    COMPLETE,
    KINDS,
    MAX_TIMEOUT_SECONDS,
    MIN_TIMEOUT_SECONDS,
    QUEUED,
    RUNNING,
    STATES,
    TERMINAL_STATES,
)
from render.spec import DEFAULT_QUALITY, FITS, FRAME_RATES, LAYOUTS, PRESETS, STYLES

DEFAULT_URL = "http://127.0.0.1:8000"
#: Exit codes (see the module docstring).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: Seconds between polls while waiting for a job.
POLL_INTERVAL = 0.5
#: The flag that sets each render option (every RenderSpec field, by its API name), to
#: read it and to name it in a usage error. Named as ``python -m render`` names them.
OPTION_FLAGS = {
    "preset": "--preset", "width": "--size", "height": "--size", "fps": "--fps",
    "quality": "--quality", "style": "--style", "color": "--color", "color2": "--color2",
    "rounded": "--rounded", "filled": "--filled", "background": "--background",
    "background2": "--background2", "backgroundKey": "--background",
    "backgroundBlur": "--background-blur", "backgroundDarken": "--background-darken",
    "artworkKey": "--artwork", "title": "--title", "subtitle": "--subtitle",
    "textColor": "--text-color", "layout": "--layout", "captionsKey": "--captions",
    "captionsHighlight": "--captions-highlight",
    "start": "--start", "end": "--end", "cache": "--cache", "split": "--split",
    "backgroundVideoKey": "--background-video", "introKey": "--intro", "outroKey": "--outro",
    "introFit": "--intro-fit", "fadeIn": "--fade-in", "fadeOut": "--fade-out",
}
#: Options not read straight from their flag: the size, and the files uploaded first.
COMPOUND_OPTIONS = frozenset({"width", "height", "background", "backgroundKey", "artworkKey",
                              "captionsKey", "backgroundVideoKey", "introKey", "outroKey"})
#: The flag of each job request field besides the options, for the same purpose.
REQUEST_FLAGS = {"audioUrl": "AUDIO", "outputKey": "--output-key",
                 "webhookUrl": "--webhook-url", "timeoutSeconds": "--timeout"}
#: The flag that uploads each role's file.
FILE_FLAGS = {AUDIO: "AUDIO", CAPTIONS: "--captions", ARTWORK: "--artwork",
              BACKGROUND: "--background", BACKGROUND_VIDEO: "--background-video",
              INTRO: "--intro", OUTRO: "--outro"}
#: Stand-ins for upload keys while a request is checked, before anything is uploaded.
PLACEHOLDER_KEY = "uploads/local/{role}"
URL = re.compile(r"^https?://[^/\s]+", re.IGNORECASE)


class UsageError(Exception):
    """Bad arguments or settings found after parsing: exit 2, like argparse's own."""


class InputError(UsageError):
    """A file that cannot be used as given (missing, or the wrong kind for its role):
    exit 2 with ``error: <code>: <message>``, before anything is uploaded."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class CliSettings:
    """The CLI's environment, read once."""

    url: str
    api_key: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> CliSettings:
        key = environ.get("SOUNDREEL_API_KEY", "").strip()
        if not key:
            raise UsageError(
                "SOUNDREEL_API_KEY is not set: export SOUNDREEL_API_KEY=<your API key> "
                "(and SOUNDREEL_URL if the API is not at " + DEFAULT_URL + ")"
            )
        url = environ.get("SOUNDREEL_URL", "").strip() or DEFAULT_URL
        if not re.match(r"^https?://[^/\s]+", url):
            raise UsageError(f"SOUNDREEL_URL must be an http(s) URL like {DEFAULT_URL}")
        return cls(url=url.rstrip("/"), api_key=key)


def say(message: str) -> None:
    """A message for the person (errors, hints) on stderr, never wrapped or styled."""
    print(message, file=sys.stderr, flush=True)


# --- the progress display --------------------------------------------------------


class NoteColumn(ProgressColumn):
    """Where the job stands besides its percentage: place in the queue, or ETA."""

    def render(self, task: Task) -> Text:
        return Text(str(task.fields.get("note", "")), style="progress.remaining")


def describe(job: Mapping[str, Any]) -> tuple[str, float, str]:
    """The stage label, progress fraction and note to show for a polled job."""
    status = job.get("status") or "?"
    stage = job.get("stage") or status
    progress = float(job.get("progress") or 0.0)
    note = ""
    if status == COMPLETE:
        stage, progress = COMPLETE, 1.0
    elif status in TERMINAL_STATES:
        stage = status.replace("_", " ")
    elif status == QUEUED and isinstance(job.get("queuePosition"), int):
        ahead = job["queuePosition"]
        note = "next in queue" if ahead == 0 else f"{ahead} ahead in queue"
    if status in (QUEUED, RUNNING) and isinstance(job.get("eta"), int | float):
        eta = f"ETA {clock(job['eta'])}"
        note = f"{note}, {eta}" if note else eta
    return stage, min(max(progress, 0.0), 1.0), note


def clock(seconds: float) -> str:
    seconds = max(int(round(seconds)), 0)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def size_text(count: int) -> str:
    if count < 1000:
        return f"{count} B"
    value, units = count / 1000, ["kB", "MB", "GB", "TB"]
    while value >= 1000 and len(units) > 1:
        value, units = value / 1000, units[1:]
    return f"{value:.1f} {units[0]}"


class JobProgress:
    """A live bar on a terminal (rich); one line per change of stage or tenth in a log."""

    def __init__(self, console: Console, job_id: str) -> None:
        self.console = console
        self.job_id = job_id
        self.live = console.is_terminal and not console.is_dumb_terminal
        self._last: tuple[str, int] | None = None
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._download: TaskID | None = None

    def start(self) -> None:
        """Name the job, then show the bar."""
        say(f"job {self.job_id}")
        if not self.live:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description:<11}"),
            BarColumn(bar_width=40),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            NoteColumn(),
            console=self.console,
            refresh_per_second=8,
        )
        self._progress.start()
        self._task = self._progress.add_task("submitted", total=1.0, note="")

    def update(self, job: Mapping[str, Any]) -> None:
        stage, fraction, note = describe(job)
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=stage, completed=fraction, note=note)
            return
        line = (stage, int(fraction * 10))
        if line != self._last:
            self._last = line
            say(f"{stage} {fraction * 100:3.0f}%" + (f"  {note}" if note else ""))

    def downloaded(self, done: int, total: int | None) -> None:
        if self._progress is None:
            return
        if self._download is None:
            self._download = self._progress.add_task("download", total=total or None, note="")
        self._progress.update(self._download, completed=done, total=total or None,
                              note=size_text(done))

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.refresh()
            self._progress.stop()
            self._progress = None


# --- commands --------------------------------------------------------------------


def size_arg(value: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*", value)
    if not match:
        raise argparse.ArgumentTypeError(f"{value!r}: give WIDTHxHEIGHT, e.g. 1280x720")
    return int(match[1]), int(match[2])


@dataclass(frozen=True)
class RenderPlan:
    """What ``render`` sends, checked in full before the first byte is uploaded."""

    body: dict[str, Any]
    #: Local files to upload, by role; each key goes to ``ROLE_FIELDS[role]``.
    files: dict[str, Path]
    #: The audio's file name (or the last part of its URL), to name the output after.
    audio_name: str


def plan_render(args: argparse.Namespace) -> RenderPlan:
    """The job request for ``render``'s flags and the files it needs, checked here as
    the API would check them (`JobRequest`), with upload keys stood in for."""
    options: dict[str, Any] = {}
    files: dict[str, Path] = {}
    if args.size:
        options["width"], options["height"] = args.size
    for name, flag in OPTION_FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if name not in COMPOUND_OPTIONS and value is not None:
            options[name] = value
    if args.background is not None:
        if args.background.startswith("#"):
            options["background"] = args.background  # a colour; RenderSpec checks it
        else:
            files[BACKGROUND] = Path(args.background)
    for role in (CAPTIONS, ARTWORK, BACKGROUND_VIDEO, INTRO, OUTRO):
        if (path := getattr(args, role.replace("-", "_"))) is not None:
            files[role] = path
    for role in files:
        options[option_name(role)] = PLACEHOLDER_KEY.format(role=role)

    body: dict[str, Any] = {"kind": args.kind}
    if args.kind == "prepare" and options:
        flags = sorted({OPTION_FLAGS.get(name, name) for name in options})
        raise UsageError(f"a prepare job takes no render options ({', '.join(flags)})")
    if options:
        body["options"] = options
    if URL.match(args.audio):
        body["audioUrl"] = args.audio
        audio_name = PurePosixPath(unquote(urlsplit(args.audio).path)).name or "audio"
        if problem := url_problem(audio_name):
            raise InputError("unsupported_media_type", f"AUDIO: {problem}")
    else:
        files = {AUDIO: Path(args.audio), **files}
        audio_name = files[AUDIO].name
        body["audioKey"] = PLACEHOLDER_KEY.format(role=AUDIO)
    if args.timeout is not None:
        if not MIN_TIMEOUT_SECONDS <= args.timeout <= MAX_TIMEOUT_SECONDS:
            raise UsageError(
                f"--timeout: give {MIN_TIMEOUT_SECONDS} to {MAX_TIMEOUT_SECONDS} seconds"
            )
        body["timeoutSeconds"] = args.timeout
    if args.output_key is not None:
        body["outputKey"] = args.output_key
    if args.webhook_url is not None:
        if not URL.match(args.webhook_url):
            raise UsageError("--webhook-url: give an http(s) URL, e.g. https://example.com/hook")
        body["webhookUrl"] = args.webhook_url
    check_request(body)
    for role, path in files.items():
        check_file(role, path, background_colour_hint=role == BACKGROUND)
    return RenderPlan(body=body, files=files, audio_name=audio_name)


def option_name(role: str) -> str:
    """``captionsKey`` for the captions: the option that names a role's upload."""
    return ROLE_FIELDS[role].removeprefix("options.")


def url_problem(name: str) -> str | None:
    """Why an AUDIO link cannot be audio, judged by its name: only a name that is
    plainly something else (an image, captions) is refused; the worker judges the rest."""
    return role_problem(AUDIO, name) if kind_of(name) not in (None, ROLE_KINDS[AUDIO]) else None


def check_request(body: dict[str, Any]) -> None:
    """Refuse what the API would refuse, naming the flag to change."""
    try:
        JobRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(part) for part in first["loc"]]
        message = first["msg"].removeprefix("Value error, ")
        if loc[:1] == ["options"] and len(loc) > 1 and loc[1] in OPTION_FLAGS:
            raise UsageError(f"{OPTION_FLAGS[loc[1]]}: {loc[1]} {message}") from None
        if loc and loc[0] in REQUEST_FLAGS:
            raise UsageError(f"{REQUEST_FLAGS[loc[0]]}: {loc[0]} {message}") from None
        raise UsageError(message) from None


def check_file(role: str, path: Path, *, background_colour_hint: bool = False) -> None:
    """A file must exist and be named as its role's kind, or nothing is uploaded."""
    flag = FILE_FLAGS[role]
    if not path.is_file():
        hint = " (give a hex colour like #14161f, or an image file)" \
            if background_colour_hint else ""
        what = "is a directory" if path.is_dir() else "no such file"
        raise InputError("file_not_found", f"{flag}: {path}: {what}{hint}")
    if problem := role_problem(role, path.name):
        raise InputError("unsupported_media_type", f"{flag}: {problem}")


def output_path(args: argparse.Namespace, audio_name: str) -> Path:
    """Where the result goes: ``-o`` (a file, or a directory to put it in), or the
    audio's name with the output's extension next to it (in the current directory
    for a URL)."""
    suffix = ".wav" if args.kind == "prepare" else ".mp4"
    from_url = URL.match(args.audio) is not None
    audio = Path(audio_name if from_url else args.audio)
    dest: Path = args.output or audio.with_suffix(suffix)
    if dest.is_dir():
        dest = dest / (audio.stem + suffix)
    if not from_url and dest.resolve() == audio.resolve():
        raise UsageError(f"-o {dest} would overwrite the audio; choose another name")
    if not dest.parent.is_dir():
        raise UsageError(f"-o {dest}: directory {dest.parent} does not exist")
    return dest


def cmd_render(client: Client, args: argparse.Namespace, err: Console) -> int:
    plan = plan_render(args)
    dest = None if args.no_wait else output_path(args, plan.audio_name)
    try:
        body = with_keys(plan.body, upload_files(client, plan.files, err))
    except KeyboardInterrupt:
        say("interrupted: nothing was submitted")
        return EXIT_INTERRUPTED
    try:
        job = client.submit(**body, idempotency_key=str(uuid.uuid4()))
    except KeyboardInterrupt:
        say("interrupted while submitting: `soundreel jobs` shows whether the job was created")
        return EXIT_INTERRUPTED
    job_id = job["jobId"]
    if args.no_wait:
        print(job_id, flush=True)
        return EXIT_OK
    view = JobProgress(err, job_id)
    try:
        try:
            view.start()
            view.update(job)
            job = client.wait(job_id, on_update=view.update, interval=POLL_INTERVAL)
        except KeyboardInterrupt:
            view.stop()
            ended = interrupted(client, job_id, err)
            if ended is None:
                return EXIT_INTERRUPTED
            job = ended
        if job.get("status") != COMPLETE:
            view.stop()
            return report_failure(job)
        try:
            saved = client.download(job, dest, on_progress=view.downloaded)
        except KeyboardInterrupt:
            view.stop()
            say(f"interrupted: job {job_id} is complete; `soundreel status {job_id}` "
                "shows its download link")
            return EXIT_INTERRUPTED
    finally:
        view.stop()
    print(saved, flush=True)
    return EXIT_OK


def upload_files(client: Client, files: Mapping[str, Path], err: Console) -> dict[str, str]:
    """Upload each file (the audio first); its key, by role."""
    keys: dict[str, str] = {}
    for role, path in files.items():
        spinner = err.status(f"uploading {path.name}") if err.is_terminal else nullcontext()
        with spinner:
            keys[role] = client.upload(path)
    return keys


def with_keys(body: Mapping[str, Any], keys: Mapping[str, str]) -> dict[str, Any]:
    """The request with the uploads' keys in place of the stand-ins."""
    filled = dict(body)
    options = dict(body.get("options") or {})
    for role, key in keys.items():
        if role == AUDIO:
            filled["audioKey"] = key
        else:
            options[option_name(role)] = key
    if options:
        filled["options"] = options
    return filled


def interrupted(client: Client, job_id: str, err: Console) -> dict[str, Any] | None:
    """Ctrl-C while waiting: cancel the job if the person at the terminal says so.

    Returns the job when it has ended (canceled now, or it ended meanwhile), None
    when it is left running."""
    answer = ""
    if sys.stdin.isatty():
        try:
            answer = err.input(f"Cancel job {job_id}? [y/N] ", markup=False).strip().lower()
        except (KeyboardInterrupt, EOFError):
            say("")
    if answer in ("y", "yes"):
        try:
            return client.cancel(job_id)
        except ApiError as exc:
            if exc.code != "job_finished":
                raise
            return client.job(job_id)  # it ended before the cancel arrived
    say(f"job {job_id} keeps running: `soundreel status {job_id}` to check on it, "
        f"`soundreel cancel {job_id}` to stop it")
    return None


def report_failure(job: Mapping[str, Any]) -> int:
    error = job.get("error") or {}
    code = error.get("code") or job.get("status")
    message = error.get("message") or f"the job ended {job.get('status')}"
    say(f"error: {code}: {message}")
    return EXIT_FAILED


def cmd_status(client: Client, args: argparse.Namespace, err: Console) -> int:
    job = client.job(args.job_id)
    if args.json:
        print(json.dumps(job, indent=2))
    else:
        stage, fraction, note = describe(job)
        rows = [("job", job.get("jobId")), ("kind", job.get("kind")),
                ("status", job.get("status")), ("stage", job.get("stage")),
                ("progress", f"{fraction * 100:.0f}%")]
        if note:
            rows.append(("", note))
        error = job.get("error")
        if error:
            rows.append(("error", f"{error.get('code')}: {error.get('message')}"))
        result = job.get("result") or {}
        if isinstance(result.get("duration"), int | float):
            rows.append(("duration", f"{result['duration']:.2f} s"))
        for label, name in (("download", "downloadUrl"), ("share", "shareUrl")):
            if job.get(name):
                rows.append((label, job[name]))
        for name, value in rows:
            print(f"{name:<11} {value if value is not None else '-'}")
    status = job.get("status")
    return EXIT_FAILED if status in TERMINAL_STATES and status != COMPLETE else EXIT_OK


def cmd_cancel(client: Client, args: argparse.Namespace, err: Console) -> int:
    job = client.cancel(args.job_id)
    print(f"{job.get('jobId', args.job_id)} {job.get('status')}")
    return EXIT_OK


def cmd_jobs(client: Client, args: argparse.Namespace, err: Console) -> int:
    page = client.jobs(status=args.status, kind=args.kind, limit=args.limit, cursor=args.cursor)
    jobs = page.get("jobs") or []
    if args.json:
        print(json.dumps(page, indent=2))
        return EXIT_OK
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("JOB", no_wrap=True, min_width=32)
    for name in ("KIND", "STATUS", "STAGE"):
        table.add_column(name, no_wrap=True)
    table.add_column("PROGRESS", justify="right", no_wrap=True)
    table.add_column("CREATED", no_wrap=True)
    for job in jobs:
        _, fraction, _ = describe(job)
        table.add_row(str(job.get("jobId")), job.get("kind") or "", job.get("status") or "",
                      job.get("stage") or "", f"{fraction * 100:.0f}%",
                      str(job.get("createdAt") or ""))
    out = Console(highlight=False, width=max(Console().width, 110))
    if jobs:
        out.print(table)
    else:
        say("no jobs")
    if page.get("nextCursor"):
        say(f"more: soundreel jobs --cursor {page['nextCursor']}")
    return EXIT_OK


# --- arguments -------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soundreel",
        description="Render audio into video (audiograms) with a soundreel API.",
        epilog="Environment: SOUNDREEL_API_KEY (required), SOUNDREEL_URL (default "
               f"{DEFAULT_URL}). Exit codes: 0 complete, 1 failed/canceled/timed out or an "
               "API error, 2 usage, 130 interrupted with the job left running.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    render = commands.add_parser(
        "render", help="upload audio, render it, download the video",
        description="Upload AUDIO (and any --captions, --artwork, --background file), render "
                    "it, show progress, download the result to -o and print its path (with "
                    "--no-wait: print the job id and return). Files are checked first: a "
                    "missing one, or one of the wrong kind, uploads nothing (exit 2).",
    )
    render.add_argument("audio", metavar="AUDIO",
                        help="audio file (mp3, wav, m4a, ogg, flac, ...), or an http(s) URL "
                             "the worker fetches (nothing is uploaded)")
    render.add_argument("-o", "--output", type=Path, metavar="PATH",
                        help="where to save the result (default: AUDIO's name with .mp4, "
                             ".wav for prepare)")
    render.add_argument("--kind", choices=KINDS, default="render",
                        help="render: the full video; preview: a short low-res clip; prepare: "
                             "normalised WAV (default: render)")

    canvas = render.add_argument_group("canvas")
    size = canvas.add_mutually_exclusive_group()
    size.add_argument("--size", type=size_arg, metavar="WxH",
                      help="canvas in pixels, even sides (default 1280x720)")
    size.add_argument("--preset", choices=tuple(PRESETS), help="square, portrait or landscape")
    canvas.add_argument("--fps", type=int, choices=FRAME_RATES, help="frame rate (default 30)")
    canvas.add_argument("--quality", type=int, metavar="CRF",
                        help=f"x264 CRF, 14-40, lower is better and bigger (default "
                             f"{DEFAULT_QUALITY})")

    look = render.add_argument_group("look", "Colours are hex: #rgb or #rrggbb.")
    look.add_argument("--style", choices=STYLES, help="animation (default bars)")
    look.add_argument("--color", metavar="HEX", help="waveform colour (default #f5f5f5)")
    look.add_argument("--color2", metavar="HEX",
                      help="second waveform colour: a gradient along the bars")
    look.add_argument("--rounded", action=argparse.BooleanOptionalAction, default=None,
                      help="bars: rounded ends (default), or square with --no-rounded")
    look.add_argument("--filled", action=argparse.BooleanOptionalAction, default=None,
                      help="wave: a filled waveform (default), or a line with --no-filled")
    look.add_argument("--background", metavar="HEX|IMAGE",
                      help="background colour (default #14161f), or an image file (png, jpg, "
                           "webp) to upload")
    look.add_argument("--background2", metavar="HEX",
                      help="second background colour: a diagonal gradient")
    look.add_argument("--background-blur", type=float, metavar="RADIUS",
                      help="blur the background image, 0-100 (default 0)")
    look.add_argument("--background-darken", type=float, metavar="AMOUNT",
                      help="darken the background image, 0-1 (default 0)")
    look.add_argument("--artwork", type=Path, metavar="IMAGE",
                      help="square artwork (png, jpg, webp) to upload and show")
    look.add_argument("--title", help="title text")
    look.add_argument("--subtitle", help="subtitle text")
    look.add_argument("--text-color", metavar="HEX",
                      help="title, subtitle and captions colour (default #ffffff)")
    look.add_argument("--layout", choices=LAYOUTS,
                      help="standard: artwork and titles above the animation; minimal: a "
                           "small title, a large animation (default standard)")
    look.add_argument("--captions", type=Path, metavar="FILE",
                      help="SRT, WebVTT or Whisper JSON captions to upload and burn in")
    look.add_argument("--captions-highlight", metavar="HEX",
                      help="word-timed captions: the word being said (default #ffd23f)")

    video = render.add_argument_group("intro, outro and fades")
    video.add_argument("--intro", type=Path, metavar="VIDEO",
                       help="a video (mp4, mov, webm; at most 60 s) to upload and play before "
                            "the audiogram, with its own sound")
    video.add_argument("--outro", type=Path, metavar="VIDEO",
                       help="a video to upload and play after the audiogram")
    video.add_argument("--intro-fit", choices=FITS,
                       help="intro and outro: cover the canvas, cropping (default), or fit "
                            "inside it, bordered")
    video.add_argument("--background-video", type=Path, metavar="VIDEO",
                       help="a video (mp4, mov, webm) to upload and loop behind the animation "
                            "instead of a background image")
    video.add_argument("--fade-in", type=float, metavar="SECONDS",
                       help="fade in from black and silence (default 0)")
    video.add_argument("--fade-out", type=float, metavar="SECONDS",
                       help="fade out to black and silence (default 0)")

    clip = render.add_argument_group("clip")
    clip.add_argument("--start", type=float, metavar="SECONDS", help="clip from here")
    clip.add_argument("--end", type=float, metavar="SECONDS", help="clip up to here")

    job = render.add_argument_group("job")
    job.add_argument("--output-key", metavar="KEY",
                     help="store the output at this key in the bucket (ending .mp4, .wav "
                          "for prepare)")
    job.add_argument("--webhook-url", metavar="URL",
                     help="POSTed (signed) when the job ends")
    job.add_argument("--timeout", type=int, metavar="SECONDS",
                     help="the job ends timed_out if not done this long after submission "
                          f"({MIN_TIMEOUT_SECONDS}-{MAX_TIMEOUT_SECONDS})")
    job.add_argument("--cache", action=argparse.BooleanOptionalAction, default=None,
                     help="reuse your earlier output of the same audio and options (default), "
                          "or render afresh with --no-cache")
    job.add_argument("--split", action=argparse.BooleanOptionalAction, default=None,
                     help="a long render is split across the workers and joined (default), "
                          "or rendered in one piece with --no-split")
    job.add_argument("--no-wait", action="store_true",
                     help="submit, print the job id and return")
    render.set_defaults(run=cmd_render)

    status = commands.add_parser("status", help="show a job (exit 1 if it failed)",
                                 description="Show a job's status, stage, progress and error; "
                                             "exit 1 if it failed, was canceled or timed out.")
    status.add_argument("job_id", metavar="JOB_ID")
    status.add_argument("--json", action="store_true", help="print the job's JSON")
    status.set_defaults(run=cmd_status)

    cancel = commands.add_parser("cancel", help="cancel a queued or running job")
    cancel.add_argument("job_id", metavar="JOB_ID")
    cancel.set_defaults(run=cmd_cancel)

    jobs = commands.add_parser("jobs", help="list your jobs, newest first",
                               description="List your jobs, newest first, a page at a time.")
    jobs.add_argument("--status", choices=STATES)
    jobs.add_argument("--kind", choices=KINDS)
    jobs.add_argument("--limit", type=int, metavar="N", help="at most N jobs (1-100, default 20)")
    jobs.add_argument("--cursor", help="the next page, as the previous page printed")
    jobs.add_argument("--json", action="store_true", help="print the page's JSON")
    jobs.set_defaults(run=cmd_jobs)
    return parser


def _version() -> str:
    try:
        return metadata.version("soundreel")
    except metadata.PackageNotFoundError:
        return "unknown"


#: How an error ends the CLI, most specific first: the line on stderr and the exit code.
ENDINGS: tuple[tuple[type[BaseException], Callable[[Any], str], int], ...] = (
    (InputError, lambda exc: f"error: {exc.code}: {exc}", EXIT_USAGE),
    (UsageError, lambda exc: f"soundreel: error: {exc}", EXIT_USAGE),
    (ApiError, lambda exc: f"error: {exc.code}: {exc.message}", EXIT_FAILED),
    (Unreachable, lambda exc: f"error: unreachable: {exc}", EXIT_FAILED),
    (ClientError, lambda exc: f"error: {exc}", EXIT_FAILED),
    (KeyboardInterrupt, lambda exc: "interrupted", EXIT_INTERRUPTED),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    err = Console(stderr=True, highlight=False)
    try:
        settings = CliSettings.from_env(os.environ)
        client = Client(settings.url, settings.api_key)
        return args.run(client, args, err)
    except tuple(kind for kind, _, _ in ENDINGS) as exc:
        # the first row whose kind matches: its line on stderr, its exit code
        _, line, code = next(row for row in ENDINGS if isinstance(exc, row[0]))
        say(line(exc))
        return code


if __name__ == "__main__":
    sys.exit(main())
