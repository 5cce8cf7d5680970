"""Render benchmark: soundreel's render against ffmpeg doing the same work.

Run ``.venv/bin/python bench/render.py`` (``--help`` for the options). For each
size and each style in ``render.spec.STYLES`` it times one render of synthetic
audio and, in the same run, two baselines made by the same bundled ffmpeg with
the renderer's own codec settings (imported from ``render.encoder``):

- the encode floor: ffmpeg re-encoding soundreel's own output file, i.e. what
  encoding those very frames costs with no Python in the loop;
- ffmpeg's ``showwaves`` filter drawing a waveform at the same size from the audio.

Then it times the 60 s clip at 1280x720 between a 5 s intro and a 5 s outro (a title
card, then a full-frame test pattern) against the plain clip, and compares the peak
memory of a 60 s and a 60 min render. Every render runs in a fresh child process
(this script again, with ``--_measure``) so its peak RSS and its ffmpeg children's
are its own. Everything runs one at a time: the numbers are wall-clock times on a
small machine, and two encoders at once would share it.


Then it compares the peak memory of a 60 s and a 60 min render, and renders over a
720p video background: 60 s against its own encode floor, and the peak memory of
60 s against 20 min. Every render runs
in a fresh child process (this script again, with ``--_measure``) so its peak RSS
and its ffmpeg children's are its own. Everything runs one at a time: the numbers
are wall-clock times on a small machine, and two encoders at once would share it.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
# This file is bench/render.py: with bench/ first on sys.path, ``import render``
# would import this script instead of the package. Put the repository root there.
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != BENCH_DIR]
sys.path.insert(0, str(ROOT))

#: Generated audio and rendered videos; git-ignored with the rest of var/.
CACHE = ROOT / "var" / "bench"
FPS = 30
SIZES = ((1280, 720), (1920, 1080))
SHORT_SECONDS = 60.0
LONG_SECONDS = 3600.0
#: --quick: one size, short clips, and a long run just long enough to exercise the code.
QUICK_SECONDS = 20.0
QUICK_LONG_SECONDS = 120.0
#: Size of the short-vs-long memory comparison.
LONG_SIZE = (1280, 720)

#: floor time / render time at or above this: soundreel adds little over the encoder.
FLOOR_TARGET = 0.80
#: showwaves time / render time above this: soundreel is faster than ffmpeg's own filter.
SHOWWAVES_TARGET = 1.00
#: Peak RSS of the long render over the short one's, at most.
RSS_RATIO_TARGET = 1.20
#: Peak RSS of the long render below this.
LONG_RSS_LIMIT_MIB = 400.0

#: Intro and outro: each this long, around the short clip at BOOKEND_SIZE.
BOOKEND_SECONDS = 5.0
BOOKEND_SIZE = (1280, 720)
#: Render with the intro and outro over the plain one's time, at most: the body is not
#: re-encoded, only the bookends' seconds are.
BOOKEND_TARGET = 1.25


#: The video background rows: a 720p H.264 loop of BACKDROP_LOOP_SECONDS behind a
#: bars render at BACKDROP_SIZE, blurred and darkened as a user would.
BACKDROP_SIZE = (1280, 720)
BACKDROP_STYLE = "bars"
BACKDROP_LOOP_SECONDS = 10.0
#: Each row's look: the video as it is, and blurred and darkened behind the bars (the
#: memory comparison is made with the last).
BACKDROP_LOOKS = {"as is": (0.0, 0.0), "blur 6, darken 0.35": (6.0, 0.35)}
BACKDROP_LONG_SECONDS = 1200.0
QUICK_BACKDROP_LONG_SECONDS = 120.0
#: floor / render with a video background at or above this: the video's decode, scale,
#: blur and darkening cost at most ~2/3 of the encode on top of it.
BACKDROP_FLOOR_TARGET = 0.60

#: Width of the printed report.
WIDTH = 100
QUIET = ["-hide_banner", "-nostdin", "-nostats", "-v", "error"]


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def encoder_args(style: str, size: str) -> list[str]:
    """The renderer's own video, audio and container arguments for this render, so the
    baselines encode exactly as it does. If render/ moves or renames them, stop here
    rather than benchmark against different settings."""
    try:
        from render.encoder import AUDIO_ARGS, CONTAINER_ARGS, video_args
    except ImportError as exc:
        raise SystemExit(
            f"bench/render.py: {exc}. The baselines must use the renderer's own codec "
            "settings: point encoder_args() at wherever render/ keeps them now."
        ) from exc
    spec = make_spec(style, size)
    args = [*video_args(spec.quality, spec.fps), *AUDIO_ARGS, *CONTAINER_ARGS]
    if not all(isinstance(arg, str) for arg in args):
        raise SystemExit(f"bench/render.py: render.encoder's arguments are not strings: {args}")
    return args


def make_spec(style: str, size: str, look: tuple[float, float] | None = None) -> Any:
    """The RenderSpec of every render here: its defaults but for style, size and fps
    (and, with ``look``, a video background blurred and darkened by its two numbers)."""
    from render import RenderSpec

    width, height = parse_size(size)
    options: dict[str, Any] = {}
    if look is not None:
        options = {"backgroundVideoKey": "bench/background.mp4", "backgroundBlur": look[0],
                   "backgroundDarken": look[1]}
    return RenderSpec(style=style, width=width, height=height, fps=FPS, **options)


# --- input audio ------------------------------------------------------------------------


def audio_command(seconds: float, out: Path) -> list[str]:
    """Stereo, 44.1 kHz, MP3 128k of something that moves like music, with no randomness
    but a seeded noise source: a beeping tone on the left, a swelling one on the right,
    pink-noise "hats" on every half second, all under a slow 3 s swell."""
    d = f"{seconds:g}"
    graph = (
        f"sine=f=220:beep_factor=4:sample_rate=44100:duration={d}[left];"
        f"sine=f=329.63:beep_factor=3:sample_rate=44100:duration={d},"
        "volume='0.6+0.4*sin(2*PI*t/7)':eval=frame[right];"
        f"anoisesrc=color=pink:amplitude=0.5:seed=20240611:sample_rate=44100:duration={d},"
        "volume='if(lt(mod(t,0.5),0.06),1,0.08)':eval=frame[hats];"
        "[left][right]amerge=inputs=2[tones];"
        "[tones][hats]amix=inputs=2:normalize=0:weights='0.5 0.35',"
        "volume='4*(0.55+0.45*sin(2*PI*t/3))':eval=frame[out]"
    )
    return [
        ffmpeg(), *QUIET, "-filter_complex", graph, "-map", "[out]",
        "-c:a", "libmp3lame", "-compression_level", "7", "-b:a", "128k", "-ar", "44100",
        "-ac", "2", "-y", f"file:{out}",
    ]  # fmt: skip


def ensure_audio(seconds: float) -> Path:
    """The cached input of ``seconds``; made once (the recipe's hash is in the name)."""
    recipe = audio_command(seconds, Path("OUT"))
    recipe[0] = Path(recipe[0]).name  # the ffmpeg build, not where it is installed
    digest = hashlib.sha256("\0".join(recipe).encode()).hexdigest()[:10]
    path = CACHE / f"audio-{seconds:g}s-{digest}.mp3"
    if path.is_file():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".part.mp3")
    note(f"generating {duration_label(seconds)} of audio: {path.relative_to(ROOT)}")
    started = time.perf_counter()
    run_ffmpeg(audio_command(seconds, partial), "generating the input audio")
    partial.replace(path)
    note(f"  done in {time.perf_counter() - started:.1f} s")
    return path


def background_command(seconds: float, out: Path) -> list[str]:
    """A 1280x720 30 fps H.264 loop (CRF 23, about what a phone clip costs to decode):
    slowly drifting colour gradients under a faint Mandelbrot zoom, no randomness."""
    d = f"{seconds:g}"
    graph = (
        f"gradients=s=1280x720:r=30:d={d}:speed=0.02:n=4:c0=0x203060:c1=0xd06030:"
        "c2=0x40a080:c3=0x602080,format=yuv420p[g];"
        f"mandelbrot=s=1280x720:r=30,trim=duration={d},format=yuv420p[m];"
        "[g][m]blend=all_mode=screen:all_opacity=0.35[out]"
    )
    return [
        ffmpeg(), *QUIET, "-filter_complex", graph, "-map", "[out]", "-c:v", "libx264",
        "-crf", "23", "-pix_fmt", "yuv420p", "-t", d, "-y", f"file:{out}",
    ]  # fmt: skip


def ensure_background() -> Path:
    """The cached background video; made once (the recipe's hash is in the name)."""
    recipe = background_command(BACKDROP_LOOP_SECONDS, Path("OUT"))
    recipe[0] = Path(recipe[0]).name
    digest = hashlib.sha256("\0".join(recipe).encode()).hexdigest()[:10]
    path = CACHE / f"background-{BACKDROP_LOOP_SECONDS:g}s-{digest}.mp4"
    if path.is_file():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".part.mp4")
    note(f"generating the background video: {path.relative_to(ROOT)}")
    run_ffmpeg(background_command(BACKDROP_LOOP_SECONDS, partial), "making the background")
    partial.replace(path)
    return path


# --- measuring ----------------------------------------------------------------------------


@dataclass
class Render:
    """One soundreel render, measured by the child process that ran it."""

    style: str
    size: str
    audio_seconds: float
    wall_seconds: float
    python_kib: int  # ru_maxrss of the render process
    children_kib: int  # largest ru_maxrss among its ffmpeg children (decode, encode)
    cpu_seconds: float  # user + system, its own and its children's: less noisy than wall

    @property
    def realtime(self) -> float:
        return self.audio_seconds / self.wall_seconds

    @property
    def peak_mib(self) -> float:
        """Upper bound: the two peaks may not have happened at the same moment."""
        return (self.python_kib + self.children_kib) / 1024


@dataclass
class Encode:
    """One ffmpeg run, timed and measured from here."""

    wall_seconds: float
    maxrss_kib: int
    cpu_seconds: float


Measured = TypeVar("Measured", Render, Encode)


def fastest(times: int, measure: Callable[..., Measured], *args: Any) -> Measured:
    """The quickest of ``times`` runs of ``measure(*args)``: on a shared machine, the one
    least disturbed."""
    return min((measure(*args) for _ in range(times)), key=lambda run: run.wall_seconds)


def measure_child(argv: list[str], bookends: list[str] | None = None) -> int:
    """Child side of --_measure: render once in-process and print the numbers as JSON
    (with ``bookends``, the intro and outro files, around the clip)."""
    audio, out, style, size, *background = argv  # background: path, blur, darken
    # everything imported and resolved before the clock starts
    import imageio_ffmpeg

    from render import Assets, render_video

    imageio_ffmpeg.get_ffmpeg_exe()
    look = (float(background[1]), float(background[2])) if background else None
    spec = make_spec(style, size, look)
    assets = Assets(background_video=Path(background[0])) if background else None
    if bookends:
        spec = spec.model_copy(update={"intro_key": "bench/intro", "outro_key": "bench/outro"})
        assets = Assets(intro=Path(bookends[0]), outro=Path(bookends[1]))
    started = time.perf_counter()
    result = render_video(Path(audio), Path(out), spec, assets=assets)
    wall = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    print(
        json.dumps(
            {
                "audio_seconds": result.duration,
                "wall_seconds": wall,
                "python_kib": own.ru_maxrss,
                "children_kib": children.ru_maxrss,
                "cpu_seconds": cpu,
            }
        )
    )
    return 0


def measure_render(
    audio: Path, out: Path, style: str, size: str,
    background: tuple[Path, float, float] | None = None,
    bookends: tuple[Path, Path] | None = None,
) -> Render:
    """Render in a fresh child of this script, so the peak RSS is this render's alone
    (over the video ``background``, blurred and darkened by its numbers, if given; with
    the ``bookends``, an intro and an outro, around it)."""
    command = [
        sys.executable, str(Path(__file__).resolve()),
        "--_measure", str(audio), str(out), style, size,
        *([str(part) for part in background] if background else []),
    ]  # fmt: skip
    if bookends:
        command += ["--_bookends", *(str(path) for path in bookends)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(
            f"bench/render.py: rendering {style} at {size} failed "
            f"(exit {result.returncode}):\n{result.stderr.strip()}"
        )
    numbers = json.loads(result.stdout.strip().splitlines()[-1])
    return Render(style=style, size=size, **numbers)


def run_ffmpeg(command: list[str], what: str) -> Encode:
    """Run one ffmpeg to the end; its wall time and its own peak RSS (from wait4)."""
    with tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            stderr.seek(0)
            tail = stderr.read().decode("utf-8", "replace").strip()[-2000:]
            raise SystemExit(f"bench/render.py: ffmpeg failed {what}:\n{tail}")
    cpu = usage.ru_utime + usage.ru_stime
    return Encode(wall_seconds=wall, maxrss_kib=usage.ru_maxrss, cpu_seconds=cpu)


def encode_floor(rendered: Path, out: Path, encoder: list[str]) -> Encode:
    """Re-encode soundreel's own output with its codec settings: the same frames, no Python."""
    command = [
        ffmpeg(), *QUIET, "-i", f"file:{rendered}", "-map", "0:v:0", "-map", "0:a:0",
        *encoder, "-y", f"file:{out}",
    ]  # fmt: skip
    return run_ffmpeg(command, f"re-encoding {rendered.name}")


def showwaves(audio: Path, out: Path, size: str, encoder: list[str]) -> Encode:
    """ffmpeg's own waveform video at ``size``, with the renderer's codec settings."""
    graph = f"[0:a]showwaves=s={size}:mode=line:rate={FPS},format=yuv420p[v]"
    command = [
        ffmpeg(), *QUIET, "-i", f"file:{audio}", "-filter_complex", graph,
        "-map", "[v]", "-map", "0:a", *encoder, "-y", f"file:{out}",
    ]  # fmt: skip
    return run_ffmpeg(command, f"drawing showwaves at {size}")


# --- reporting ----------------------------------------------------------------------------


def note(message: str) -> None:
    """Progress goes to stderr; stdout is the table alone."""
    print(message, file=sys.stderr, flush=True)


def emit(line: str = "") -> None:
    print(line, flush=True)


def labelled(label: str, text: str) -> None:
    emit(
        textwrap.fill(
            text,
            width=WIDTH,
            initial_indent=f"{label:<11}",
            subsequent_indent=" " * 11,
            break_on_hyphens=False,
            break_long_words=False,
        )
    )


def footnote(text: str) -> None:
    emit(textwrap.fill(text, width=WIDTH, subsequent_indent="  "))


def parse_size(value: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)[xX](\d+)", value.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 1280x720, got {value!r}")
    return int(match.group(1)), int(match.group(2))


def duration_label(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 120 else f"{seconds:g} s"


def verdict(value: float, target: float, *, strictly: bool = False) -> str:
    """Judged on the value as printed (2 decimals), so "0.80" never reads as a failure."""
    shown = round(value, 2)
    return "pass" if (shown > target if strictly else shown >= target) else "FAIL"


def machine() -> dict[str, Any]:
    exe = ffmpeg()
    version = subprocess.run(
        [exe, "-version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "ffmpeg": version[0].split(" Copyright")[0] if version else "unknown",
        "ffmpeg_path": exe,
        "soundreel": git_state(),
        "load_average": [f"{x:.2f}" for x in os.getloadavg()],
    }


def git_state() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "render")
    return f"git {commit}" + (" + uncommitted changes in render/" if dirty else "")


ROW = "{:<10} {:<9} {:>8} {:>5} {:>8} | {:>7} {:>12} | {:>7} {:>12}"


def table_header() -> None:
    emit(
        ROW.format(
            "size", "style", "render s", "x rt", "peak MiB",
            "floor s", "floor/render", "waves s", "waves/render",
        )
    )  # fmt: skip
    emit("-" * len(ROW.format(*[""] * 9)))


def table_row(render: Render, floor: Encode, waves: Encode) -> dict[str, Any]:
    floor_ratio = floor.wall_seconds / render.wall_seconds
    waves_ratio = waves.wall_seconds / render.wall_seconds
    floor_mark = verdict(floor_ratio, FLOOR_TARGET)
    waves_mark = verdict(waves_ratio, SHOWWAVES_TARGET, strictly=True)
    emit(
        ROW.format(
            render.size, render.style,
            f"{render.wall_seconds:.1f}", f"{render.realtime:.2f}", f"{render.peak_mib:.0f}",
            f"{floor.wall_seconds:.1f}", f"{floor_ratio:.2f} {floor_mark}",
            f"{waves.wall_seconds:.1f}", f"{waves_ratio:.2f} {waves_mark}",
        )
    )  # fmt: skip
    return {
        "render": {**asdict(render), "realtime": render.realtime, "peak_mib": render.peak_mib},
        "floor": asdict(floor),
        "floor_ratio": floor_ratio,
        "floor_pass": floor_mark == "pass",
        "showwaves": asdict(waves),
        "showwaves_ratio": waves_ratio,
        "showwaves_pass": waves_mark == "pass",
    }


# --- the moviepy clip against the raw pipe ---------------------------------------------------

#: What the moviepy clip (render.clip) is measured at: one size, one style.
CLIP_SIZE = "1280x720"
CLIP_STYLE = "bars"


def clip_child(kind: str, audio: str, out: str) -> dict[str, float]:
    """In a fresh process: the engine's ``render_video`` (``kind`` "engine"), or the moviepy
    clip written by moviepy's ``write_videofile`` with the engine's codec settings
    (``render.clip.write_options``: x264 preset, CRF and keyframes, AAC). Wall and CPU
    time (its own and its ffmpeg children's) after the imports; peak RSS of the process
    plus its largest ffmpeg child's."""
    spec = make_spec(CLIP_STYLE, CLIP_SIZE)
    if kind == "engine":
        from render import render_video
    else:
        from render.clip import audiogram_clip, write_options

    def cpu() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    started, cpu_before = time.perf_counter(), cpu()
    if kind == "engine":
        duration = render_video(Path(audio), Path(out), spec).duration
    else:
        with audiogram_clip(audio, spec) as clip:
            clip.write_videofile(out, logger=None, temp_audiofile_path=str(Path(out).parent),
                                 **write_options(spec))
            duration = clip.duration
    wall, cpu_seconds = time.perf_counter() - started, cpu() - cpu_before
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return {"audio_seconds": duration, "wall_seconds": wall, "cpu_seconds": cpu_seconds,
            "peak_mib": peak}


def moviepy_section(audio: Path, out_dir: Path) -> dict[str, Any]:
    """The moviepy clip written by moviepy against the engine's raw pipe, same audio and
    spec, each in a fresh process (spawned: nothing inherited), printed with the ratio.
    No target: it shows what the convenience of a moviepy clip costs."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    runs: dict[str, dict[str, float]] = {}
    for kind in ("engine", "moviepy"):
        note(f"{kind} {CLIP_STYLE} {CLIP_SIZE}")
        out = out_dir / f"clip-{kind}-{CLIP_STYLE}-{CLIP_SIZE}.mp4"
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            runs[kind] = pool.submit(clip_child, kind, str(audio), str(out)).result()
    engine, moviepy = runs["engine"], runs["moviepy"]
    seconds = engine["audio_seconds"]
    emit()
    emit(f"The moviepy clip against the raw pipe ({CLIP_SIZE}, {CLIP_STYLE}, "
         f"{duration_label(seconds)}, {FPS} fps)")
    line = "{:<44} {:>7} {:>6} {:>6} {:>9}"
    emit(line.format("path", "wall s", "x rt", "cpu s", "peak MiB"))
    emit("-" * len(line.format(*[""] * 5)))
    for label, run in (("render_video: YUV frames through a raw pipe", engine),
                       ("audiogram_clip + moviepy's write_videofile", moviepy)):
        emit(line.format(label, f"{run['wall_seconds']:.1f}",
                         f"{seconds / run['wall_seconds']:.2f}", f"{run['cpu_seconds']:.1f}",
                         f"{run['peak_mib']:.0f}"))
    ratio = moviepy["wall_seconds"] / engine["wall_seconds"]
    cpu_ratio = moviepy["cpu_seconds"] / engine["cpu_seconds"]
    emit(f"moviepy / raw pipe: {ratio:.2f}x the wall time, {cpu_ratio:.2f}x the CPU time "
         "(no target: the price of the convenience)")
    footnote("Both encode with the engine's x264 settings; moviepy hands ffmpeg RGB frames "
             "and writes the audio to a file of its own first. cpu s: the process's and its "
             "ffmpeg children's, steadier than wall time on a busy machine. peak MiB: the "
             "process's peak RSS plus its largest ffmpeg child's.")
    return {"engine": engine, "moviepy": moviepy, "ratio": ratio, "cpu_ratio": cpu_ratio}


# --- intro and outro ----------------------------------------------------------------------


#: The intros (each also the outro) timed, as lavfi graphs for the picture: a title
#: card with a small moving emblem (what an intro usually is) and ffmpeg's moving test
#: pattern over the whole frame (about the hardest picture for x264).
BOOKEND_PICTURES = {
    "title card": "color=c=0x203060:s={size}:r={fps}:d={seconds}[card];"
                  "testsrc2=s=320x180:r={fps}:d={seconds}[emblem];"
                  "[card][emblem]overlay=x=(W-w)/2:y=(H-h)/2+120*sin(t)",
    "test pattern": "testsrc2=s={size}:r={fps}:d={seconds}",
}


def bookend_command(picture: str, out: Path) -> list[str]:
    """A BOOKEND_SECONDS intro at BOOKEND_SIZE: ``picture`` (a BOOKEND_PICTURES graph)
    with a tone, H.264 and AAC in MP4."""
    size, seconds = "{}x{}".format(*BOOKEND_SIZE), f"{BOOKEND_SECONDS:g}"
    graph = picture.format(size=size, fps=FPS, seconds=seconds)
    return [
        ffmpeg(), *QUIET, "-f", "lavfi", "-i", graph,
        "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
        "-y", f"file:{out}",
    ]  # fmt: skip


def ensure_bookend(kind: str) -> Path:
    """The cached intro of ``kind`` (a BOOKEND_PICTURES name); made once."""
    name = kind.replace(" ", "-")
    path = CACHE / f"bookend-{name}-{BOOKEND_SECONDS:g}s-{BOOKEND_SIZE[0]}x{BOOKEND_SIZE[1]}.mp4"
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.stem + ".part.mp4")
        run_ffmpeg(bookend_command(BOOKEND_PICTURES[kind], partial), f"making the {kind}")
        partial.replace(path)
    return path


def bookend_section(audio: Path, seconds: float, out_dir: Path, style: str, repeat: int,
                    shorts: dict[tuple[str, str], Render]) -> dict[str, Any]:
    """The plain clip against the same clip between an intro and an outro of each kind:
    the time the bookends add (the body is joined as encoded, never re-encoded)."""
    size = "{}x{}".format(*BOOKEND_SIZE)
    emit()
    emit(f"Intro and outro ({size}, style {style}, {FPS} fps): {BOOKEND_SECONDS:g} s + "
         f"{duration_label(seconds)} + {BOOKEND_SECONDS:g} s")
    plain = shorts.get((style, size))
    if plain is None:
        note(f"render {style} {size}")
        plain = fastest(repeat, measure_render, audio, out_dir / f"render-{style}-{size}.mp4",
                        style, size)
    line = "{:<26} {:>9} {:>8} {:>8} {:>17} {:>10}"
    emit(line.format("render", "render s", "cpu s", "peak MiB", "/ plain (wall)", "/ plain cpu"))
    emit("-" * len(line.format(*[""] * 6)))
    emit(line.format("plain", f"{plain.wall_seconds:.1f}", f"{plain.cpu_seconds:.1f}",
                     f"{plain.peak_mib:.0f}", "", ""))
    kinds: dict[str, Any] = {}
    for kind in BOOKEND_PICTURES:
        bookend = ensure_bookend(kind)
        note(f"render {style} {size} between a {kind} intro and outro")
        composed = fastest(repeat, measure_render, audio,
                           out_dir / f"bookends-{kind.replace(' ', '-')}-{style}-{size}.mp4",
                           style, size, None, (bookend, bookend))
        ratio = composed.wall_seconds / plain.wall_seconds
        cpu_ratio = composed.cpu_seconds / plain.cpu_seconds
        mark = "pass" if round(ratio, 2) <= BOOKEND_TARGET else "FAIL"
        emit(line.format(f"with a {kind}", f"{composed.wall_seconds:.1f}",
                         f"{composed.cpu_seconds:.1f}", f"{composed.peak_mib:.0f}",
                         f"{ratio:.2f} {mark}", f"{cpu_ratio:.2f}"))
        kinds[kind] = {**asdict(composed), "peak_mib": composed.peak_mib, "ratio": ratio,
                       "cpu_ratio": cpu_ratio, "pass": mark == "pass"}
    footnote(f"/ plain: the render between the intro and outro over the plain one; target "
             f"<= {BOOKEND_TARGET:.2f} (the video is "
             f"{(seconds + 2 * BOOKEND_SECONDS) / seconds:.2f} times as long). The body is "
             "joined as encoded; the bookends (decoded to RGB for moviepy and encoded with "
             "the body's settings) and the soundtrack are made on a thread beside it.")
    return {"style": style, "size": size, "bookend_seconds": BOOKEND_SECONDS,
            "plain": {**asdict(plain), "peak_mib": plain.peak_mib}, "with": kinds}


def backdrop_rows(short: float, long: float | None, repeat: int, out_dir: Path
                  ) -> dict[str, Any]:
    """Renders over a 720p video background, for each of BACKDROP_LOOKS: ``short``
    seconds against its own encode floor; then, with the last look, the peak memory
    of ``short`` against ``long`` seconds (flat: the video streams)."""
    size = "{}x{}".format(*BACKDROP_SIZE)
    background = ensure_background()
    emit()
    emit(f"Video background ({size}, style {BACKDROP_STYLE}, {FPS} fps; a "
         f"{BACKDROP_LOOP_SECONDS:g} s 1280x720 H.264 loop behind it)")
    line = "{:<20} {:<7} {:>9} {:>6} {:>8} {:>13} {:>7} {:>7} {:>7}"
    emit(line.format("look", "audio", "render s", "x rt", "floor s", "floor/render",
                     "py MiB", "ff MiB", "peak"))
    emit("-" * len(line.format(*[""] * 9)))
    plan = [(name, short) for name in BACKDROP_LOOKS]
    if long is not None:
        plan.append((list(BACKDROP_LOOKS)[-1], long))
    runs: list[dict[str, Any]] = []
    for name, seconds in plan:
        audio = ensure_audio(seconds)
        rendered = out_dir / f"backdrop-{len(runs)}.mp4"
        note(f"render over a video background, {name} ({duration_label(seconds)})")
        floor: Encode | None = None
        try:
            render = fastest(repeat if seconds == short else 1, measure_render, audio,
                             rendered, BACKDROP_STYLE, size, (background, *BACKDROP_LOOKS[name]))
            if seconds == short:
                note("floor of that render")
                floor = fastest(repeat, encode_floor, rendered, out_dir / "backdrop-floor.mp4",
                                encoder_args(BACKDROP_STYLE, size))
        finally:
            if seconds != short:
                rendered.unlink(missing_ok=True)  # hundreds of MB, and nobody watches it
        ratio = floor.wall_seconds / render.wall_seconds if floor else None
        mark = verdict(ratio, BACKDROP_FLOOR_TARGET) if ratio is not None else ""
        emit(line.format(
            name, duration_label(seconds), f"{render.wall_seconds:.1f}",
            f"{render.realtime:.2f}", f"{floor.wall_seconds:.1f}" if floor else "-",
            f"{ratio:.2f} {mark}" if ratio is not None else "-",
            f"{render.python_kib / 1024:.0f}", f"{render.children_kib / 1024:.0f}",
            f"{render.peak_mib:.0f}",
        ))  # fmt: skip
        runs.append({
            "look": name, "audio_seconds": seconds, **asdict(render),
            "realtime": render.realtime, "peak_mib": render.peak_mib,
            "floor": asdict(floor) if floor else None, "floor_ratio": ratio,
            "floor_pass": mark == "pass" if floor else None,
        })  # fmt: skip
    result: dict[str, Any] = {"size": size, "style": BACKDROP_STYLE,
                              "loop_seconds": BACKDROP_LOOP_SECONDS, "runs": runs}
    if long is not None:
        first, last = runs[-2], runs[-1]
        ratio = last["peak_mib"] / first["peak_mib"]
        mark = "pass" if round(ratio, 2) <= RSS_RATIO_TARGET else "FAIL"
        emit(f"{duration_label(long)} / {duration_label(short)} peak ({last['look']}): "
             f"{ratio:.2f} (target <= {RSS_RATIO_TARGET:.2f}) {mark}")
        result.update(rss_ratio=ratio, rss_pass=mark == "pass")
    footnote(f"floor/render >= {BACKDROP_FLOOR_TARGET:.2f} passes: the floor re-encodes this "
             "render's own output, so the video's decode, scale, blur and darkening are what "
             "the renderer pays on top of it. py/ff MiB: peak RSS of the render process and "
             "of its largest ffmpeg child.")
    return result


# --- the run ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/render.py",
        description="Time soundreel's render against ffmpeg's encode floor and showwaves.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: 1280x720 only, {QUICK_SECONDS:g} s clips, "
        f"{duration_label(QUICK_LONG_SECONDS)} instead of 60 min for the memory comparison",
    )
    parser.add_argument(
        "--sizes", default=None, help="comma-separated WxH (default 1280x720,1920x1080)"
    )
    parser.add_argument("--styles", default=None, help="comma-separated (default: all styles)")
    parser.add_argument("--skip-long", action="store_true",
                        help="skip the 60 min and the 20 min (video background) renders")
    parser.add_argument("--skip-backdrop", action="store_true",
                        help="skip the video background rows")
    parser.add_argument("--backdrop-only", action="store_true",
                        help="only the video background rows")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run each short measurement N times and keep the fastest (default 1)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--skip-bookends", action="store_true",
                        help="skip the intro-and-outro comparison")
    parser.add_argument("--_measure", nargs="+", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_bookends", nargs=2, default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args._measure:
        return measure_child(args._measure, args._bookends)

    from render.spec import STYLES

    if args.sizes:
        try:
            sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
        except argparse.ArgumentTypeError as exc:
            parser.error(str(exc))
    else:
        sizes = list(SIZES[:1] if args.quick else SIZES)
    styles = [s.strip() for s in args.styles.split(",")] if args.styles else list(STYLES)
    unknown = [s for s in styles if s not in STYLES]
    if unknown:
        parser.error(f"unknown style(s) {', '.join(unknown)}; render.spec.STYLES = {STYLES}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    repeat = args.repeat
    short = QUICK_SECONDS if args.quick else SHORT_SECONDS
    long = QUICK_LONG_SECONDS if args.quick else LONG_SECONDS
    long_style = "wave" if "wave" in STYLES else STYLES[0]
    # before anything slow: stop at once if the renderer's codec settings moved
    encoder = encoder_args(long_style, "{}x{}".format(*LONG_SIZE))

    if args.backdrop_only:
        sizes = []  # no table, no 60 min render: the video background rows alone
    short_audio = ensure_audio(short)
    long_audio = None if args.skip_long or args.backdrop_only else ensure_audio(long)
    out_dir = CACHE / "out"
    out_dir.mkdir(parents=True, exist_ok=True)

    info = machine()
    cpu = f" ({info['cpu_model']})" if info["cpu_model"] else ""
    emit(f"soundreel render benchmark, {info['date']}")
    labelled("machine:", f"{info['cpus']} CPUs{cpu}, {info['system']}, Python {info['python']}")
    labelled("ffmpeg:", f"{info['ffmpeg']} (imageio-ffmpeg)")
    labelled("soundreel:", f"{info['soundreel']}; styles {', '.join(STYLES)}")
    labelled("encoder:", " ".join(encoder))
    best = f"; each time the best of {repeat} runs" if repeat > 1 else ""
    labelled(
        "input:", f"{duration_label(short)} synthetic stereo 44.1 kHz MP3 128k, {FPS} fps{best}"
    )
    labelled("load:", f"{' '.join(info['load_average'])} at start (1, 5, 15 min averages)")
    emit()
    if sizes:
        table_header()

    rows: list[dict[str, Any]] = []
    shorts: dict[tuple[str, str], Render] = {}
    for width, height in sizes:
        size = f"{width}x{height}"
        note(f"showwaves {size}")
        waves_out = out_dir / f"showwaves-{size}.mp4"
        waves_args = encoder_args(styles[0], size)
        waves = fastest(repeat, showwaves, short_audio, waves_out, size, waves_args)
        for style in styles:
            rendered = out_dir / f"render-{style}-{size}.mp4"
            note(f"render {style} {size}")
            render = fastest(repeat, measure_render, short_audio, rendered, style, size)
            shorts[style, size] = render
            note(f"floor {style} {size}")
            floor_out = out_dir / f"floor-{style}-{size}.mp4"
            floor_args = encoder_args(style, size)
            floor = fastest(repeat, encode_floor, rendered, floor_out, floor_args)
            rows.append(table_row(render, floor, waves))
    if sizes:
        emit()
    footnote(
        "x rt: audio seconds per wall second. peak MiB: the render process's peak RSS plus the "
        "largest of its ffmpeg children's (an upper bound: the two peaks need not coincide)."
    )
    if sizes:
        footnote(
            f"floor: ffmpeg re-encoding soundreel's output with the same codec settings; "
            f"floor/render >= {FLOOR_TARGET:.2f} passes. waves: ffmpeg's showwaves filter at "
            f"the same size and settings, run once per size; waves/render > "
            f"{SHOWWAVES_TARGET:.2f} passes (soundreel is faster)."
        )

    composed = None if args.skip_bookends else bookend_section(
        short_audio, short, out_dir, long_style, repeat, shorts)

    memory: dict[str, Any] | None = None
    if long_audio is not None:
        size = "{}x{}".format(*LONG_SIZE)
        emit()
        emit(f"Peak RSS against audio length ({size}, style {long_style}, {FPS} fps)")
        base = shorts.get((long_style, size))
        if base is None:
            note(f"render {long_style} {size} ({duration_label(short)})")
            base = measure_render(
                short_audio, out_dir / f"render-{long_style}-{size}.mp4", long_style, size
            )
        note(f"render {long_style} {size} ({duration_label(long)}), the long one")
        long_out = out_dir / f"render-{long_style}-{size}-long.mp4"
        try:
            stretched = measure_render(long_audio, long_out, long_style, size)
        finally:
            long_out.unlink(missing_ok=True)  # hundreds of MB, and nobody watches it
        line = "{:<8} {:>9} {:>6} {:>11} {:>11} {:>9}"
        emit(line.format("audio", "render s", "x rt", "python MiB", "ffmpeg MiB", "peak MiB"))
        emit("-" * len(line.format(*[""] * 6)))
        for render, seconds in ((base, short), (stretched, long)):
            emit(
                line.format(
                    duration_label(seconds), f"{render.wall_seconds:.1f}",
                    f"{render.realtime:.2f}", f"{render.python_kib / 1024:.0f}",
                    f"{render.children_kib / 1024:.0f}", f"{render.peak_mib:.0f}",
                )
            )  # fmt: skip
        ratio = stretched.peak_mib / base.peak_mib
        ratio_mark = "pass" if round(ratio, 2) <= RSS_RATIO_TARGET else "FAIL"
        limit_mark = "pass" if stretched.peak_mib < LONG_RSS_LIMIT_MIB else "FAIL"
        emit(
            f"{duration_label(long)} / {duration_label(short)} peak: {ratio:.2f} "
            f"(target <= {RSS_RATIO_TARGET:.2f}) {ratio_mark}"
        )
        emit(
            f"{duration_label(long)} peak: {stretched.peak_mib:.0f} MiB "
            f"(target < {LONG_RSS_LIMIT_MIB:.0f} MiB) {limit_mark}"
        )
        memory = {
            "style": long_style,
            "size": size,
            "short": {**asdict(base), "peak_mib": base.peak_mib, "realtime": base.realtime},
            "long": {
                **asdict(stretched),
                "peak_mib": stretched.peak_mib,
                "realtime": stretched.realtime,
            },
            "ratio": ratio,
            "ratio_pass": ratio_mark == "pass",
            "long_pass": limit_mark == "pass",
        }

    moviepy_section(short_audio, out_dir)


    backdrop: dict[str, Any] | None = None
    if not args.skip_backdrop:
        backdrop_long = None if args.skip_long else (
            QUICK_BACKDROP_LONG_SECONDS if args.quick else BACKDROP_LONG_SECONDS)
        backdrop = backdrop_rows(short, backdrop_long, repeat, out_dir)

    finished = [f"{x:.2f}" for x in os.getloadavg()]
    emit()
    footnote(
        f"load average at the end: {' '.join(finished)}. x264 keeps every core busy, so about "
        f"{info['cpus']} is this run alone; more means something else ran too and the times "
        "are noisier."
    )
    if args.json:
        info["load_average_end"] = finished
        results = {
            "machine": info,
            "settings": {
                "fps": FPS,
                "repeat": repeat,
                "short_seconds": short,
                "long_seconds": None if long_audio is None else long,
                "encoder": encoder,
                "targets": {
                    "floor_ratio_min": FLOOR_TARGET,
                    "showwaves_ratio_over": SHOWWAVES_TARGET,
                    "rss_ratio_max": RSS_RATIO_TARGET,
                    "long_rss_max_mib": LONG_RSS_LIMIT_MIB,
                    "backdrop_floor_ratio_min": BACKDROP_FLOOR_TARGET,
                },
            },
            "rows": rows,
            "bookends": composed,
            "memory": memory,
            "backdrop": backdrop,
        }
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        note(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
