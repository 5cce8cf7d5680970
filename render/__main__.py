"""``python -m render in.mp3 -o out.mp4``: render one file without the service.

Handy for trying a look, reproducing a user's failed job, or timing a render.
Exit status: 0 done, 2 bad options or unusable input (the error's code and
message are printed, as the API would report them).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import get_args

from pydantic import ValidationError

from render.engine import prepare_audio, render_video
from render.errors import RenderError
from render.spec import Assets, RenderSpec

BAR_WIDTH = 30


def parse_size(value: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)[xX](\d+)", value.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 1280x720, got {value!r}")
    return int(match.group(1)), int(match.group(2))


#: Spec fields the CLI takes as files instead of storage keys, and its flag for each.
ASSET_FLAGS = {"background_key": "background-image", "artwork_key": "artwork",
               "captions_key": "captions", "background_video_key": "background-video",
               "intro_key": "intro", "outro_key": "outro"}
#: Spec fields only the service reads (no render cache, no fleet to split across here).
SERVICE_FIELDS = ("cache", "split")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    """Every RenderSpec field is a flag (``--color2``, ``--background-blur`` ...), so
    the CLI and the API always offer the same options."""
    parser = argparse.ArgumentParser(
        prog="python -m render", description="Render an audiogram video from an audio file."
    )
    parser.add_argument("input", type=Path, help="audio file (WAV, MP3, M4A, OGG, FLAC, ...)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="MP4 (or WAV) to write")
    parser.add_argument("--size", type=parse_size, default=None, help="WIDTHxHEIGHT, 1280x720")
    parser.add_argument("--max-seconds", type=float, default=None, help="render only the start")
    parser.add_argument(
        "--prepare", action="store_true", help="write a 44.1 kHz 16-bit WAV instead of a video"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    for flag in ASSET_FLAGS.values():
        parser.add_argument(f"--{flag}", type=Path, default=None, help=f"{flag} file")
    for name, field in RenderSpec.model_fields.items():
        if name in ASSET_FLAGS or name in SERVICE_FIELDS or name in ("width", "height"):
            continue
        kind = field.annotation
        options = [
            inner for option in get_args(kind) for inner in (get_args(option) or (option,))
        ]
        help_text = field.description or ""
        if kind is bool:
            parser.add_argument(_flag(name), action=argparse.BooleanOptionalAction,
                                default=None, help=help_text)
            continue
        literal = [o for o in options if isinstance(o, str)]
        number = next((t for t in (int, float) if t is kind or t in options), None)
        parser.add_argument(
            _flag(name),
            type=number or str,
            choices=literal or None,
            default=None,
            help=help_text,
        )
    return parser


def spec_options(args: argparse.Namespace) -> dict[str, object]:
    """Only the options given, so RenderSpec's defaults stay the one source of defaults."""
    options: dict[str, object] = {}
    if args.size is not None:
        options["width"], options["height"] = args.size
    for name in RenderSpec.model_fields:
        value = getattr(args, name, None)
        if value is not None and name not in ASSET_FLAGS:
            options[name] = value
    for name, flag in ASSET_FLAGS.items():
        if getattr(args, flag.replace("-", "_")) is not None:
            options[name] = f"local/{flag}"  # a placeholder key: the file is given directly
    return options


def assets_of(args: argparse.Namespace) -> Assets:
    return Assets(
        background=args.background_image, artwork=args.artwork, captions=args.captions,
        background_video=args.background_video, intro=args.intro, outro=args.outro,
    )


class ProgressBar:
    """``name [#########.....]  42%`` on stderr: redrawn in place on a terminal,
    a line per 10 % when stderr is a file or pipe (logs, CI)."""

    def __init__(self, label: str, enabled: bool = True) -> None:
        self.label = label
        self.enabled = enabled
        self.live = sys.stderr.isatty()
        self.mid_line = False
        self._last_tenth = -1

    def __call__(self, fraction: float) -> None:
        if not self.enabled:
            return
        filled = round(fraction * BAR_WIDTH)
        text = f"{self.label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {fraction:4.0%}"
        if self.live:
            self.mid_line = fraction < 1
            print("\r" + text, end="" if self.mid_line else "\n", file=sys.stderr, flush=True)
        elif int(fraction * 10) > self._last_tenth:
            self._last_tenth = int(fraction * 10)
            print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.input.is_file():
        parser.error(f"{args.input}: no such file")
    if args.prepare and args.max_seconds is not None:
        parser.error("--max-seconds does not apply to --prepare")
    if args.max_seconds is not None and not args.max_seconds > 0:
        parser.error("--max-seconds must be positive")
    try:
        spec = RenderSpec(**spec_options(args))
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "options"
            message = error["msg"].removeprefix("Value error, ")
            print(f"invalid option {field}: {message}", file=sys.stderr)
        return 2

    bar = ProgressBar(args.output.name, enabled=not args.quiet)
    started = time.monotonic()
    try:
        if args.prepare:
            prepared = prepare_audio(args.input, args.output, progress=bar)
            summary = (
                f"{prepared.duration:.2f} s, {prepared.sample_rate} Hz, "
                f"{prepared.channels} channel(s)"
            )
        else:
            result = render_video(
                args.input, args.output, spec, assets=assets_of(args),
                max_seconds=args.max_seconds, progress=bar,
            )
            summary = (
                f"{result.duration:.2f} s, {result.width}x{result.height} "
                f"@ {result.fps} fps, {result.frames} frames"
            )
    except RenderError as exc:
        if bar.mid_line:
            print(file=sys.stderr)
        print(f"error {exc.code}: {exc.message}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {summary} in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
