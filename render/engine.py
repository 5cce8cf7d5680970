"""Rendering: audio in, MP4 (or a prepared WAV) out, with progress.

The worker calls ``render_video`` and ``prepare_audio``. A render is two passes:

1. decode the clip once, streaming, into compact features (render.analysis):
   a file ffmpeg cannot read fails here as InvalidAudio, before any encoder runs;
2. compose the static scene once (render.scene), then per frame copy it, paint
   the moving parts (render.styles) and captions, and pipe the frame to ffmpeg as
   raw yuv420p (render.encoder), which encodes H.264 and muxes the audio as AAC.

Why a raw pipe and not moviepy's per-frame path: measured here, converting RGB
frames inside ffmpeg cost more than the encode itself (render.canvas); moviepy
hands ffmpeg RGB. Drawing straight in YUV keeps a render near the encode floor
(bench/render.py).

An intro, outro or fade makes the render one of parts (render.compose): the body is
drawn the same way, video only, and joined as encoded between the bookends moviepy
composes, under a soundtrack encoded once.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
import threading
import wave
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from render.analysis import ANALYSIS_RATE, Analysis, Analyzer
from render.audio import (
    LEVELED_LOG,
    HeaderedStderr,
    decode_stream,
    ffmpeg_exe,
    ffmpeg_input,
    header_duration,
    header_seconds,
    path_aliases,
    reap,
    require_audio_file,
    start_ffmpeg,
    untrusted_input,
)
from render.backdrop import Backdrop
from render.canvas import Planes
from render.captions import parse_captions
from render.compose import BodyFades, Bookends, compose_bookend, composes, encode_soundtrack, join
from render.encoder import Encoder
from render.errors import (
    InvalidAudio,
    RenderCanceled,
    RenderFailed,
    blames_input,
)
from render.layout import compute_layout
from render.scene import Captions, Sticker, compose_overlay, compose_static
from render.spec import Assets, RenderSpec
from render.styles import make_style

ProgressCallback = Callable[[float], None]
"""Called with the fraction done, 0..1: monotonic, at most about once per percent."""

#: Sample rate of prepared audio: what editors and the video encoder expect.
PREPARED_RATE = 44100


@dataclass(frozen=True)
class RenderResult:
    """What ``render_video`` wrote."""

    duration: float  # seconds of video written: the audio's, or max_seconds (see render_video)
    width: int
    height: int
    fps: int
    frames: int
    loudest: float = 0.0  # seconds into the clip of its loudest moment (for thumbnails)


@dataclass(frozen=True)
class PreparedAudio:
    """What ``prepare_audio`` wrote: 16-bit PCM WAV."""

    duration: float
    sample_rate: int  # 44100
    channels: int


class Scene:
    """A clip ready to draw: its analysis, static background, style and captions.

    Building one decodes the clip (pass 1) and composes the static layers; then
    `draw` paints any frame. Used by `render_video` and, without an encoder, by
    `render_frames` (golden-frame tests, documentation pictures). With a video
    background (render.backdrop) each frame starts from the video's frame and the
    static layers are blended over it; the video's reader runs from the first
    `draw` until `close` (``with scene:``), which every user of a scene calls.
    """

    def __init__(
        self,
        audio_path: Path,
        spec: RenderSpec,
        assets: Assets | None = None,
        max_seconds: float | None = None,
        should_stop: Callable[[], bool] | None = None,
        limit_seconds: float | None = None,
        measured: Callable[[float], None] | None = None,
    ) -> None:
        if max_seconds is not None and not max_seconds > 0:
            raise ValueError(f"max_seconds must be positive, got {max_seconds}")
        self.spec = spec
        assets = assets or Assets()
        length = spec.clip_seconds
        if max_seconds is not None:
            length = max_seconds if length is None else min(length, max_seconds)
        header = header_duration(Path(audio_path))  # also refuses bomb-like streams
        if length is None:
            expected = None if header is None else max(header - spec.start, 0.0)
        else:
            expected = length
        if limit_seconds is not None and expected is not None and expected > limit_seconds:
            raise InvalidAudio.too_long(limit_seconds)  # refused before decoding anything
        if measured is not None:
            # how much audio the video will cover, as far as the header tells
            covered = expected
            if header is not None and expected is not None:
                covered = min(expected, max(header - spec.start, 0.0))
            if covered is not None:
                measured(covered)
        limit_samples = None if limit_seconds is None else limit_seconds * ANALYSIS_RATE
        analyzer = Analyzer(
            spec.fps,
            expected_seconds=expected,
            envelope=spec.style in ("wave", "progress"),
            trace=spec.style == "wave" and not spec.filled,
        )
        def feed(block: bytes) -> None:
            check_stop(should_stop)
            analyzer.feed(np.frombuffer(block, np.float32))
            if limit_samples is not None and analyzer.samples > limit_samples:
                raise InvalidAudio.too_long(limit_seconds or 0)  # the header lied

        decode_stream(
            Path(audio_path),
            sample_rate=ANALYSIS_RATE,
            start=spec.start,
            duration=length,
            sink=feed,
        )
        self.analysis = analyzer.finish()
        if self.analysis.frames == 0:
            if spec.start > 0:
                raise InvalidAudio(
                    f"The clip starts at {spec.start:g} s, after the end of the audio. "
                    "Choose a start inside the audio."
                )
            raise InvalidAudio.empty()
        self._compose(assets)

    @classmethod
    def from_analysis(
        cls, analysis: Analysis, spec: RenderSpec, assets: Assets | None = None
    ) -> Scene:
        """A scene from a clip already analysed (``Analysis.load``), without decoding:
        it draws every frame exactly as the scene that made the analysis does, so a
        render split into windows joins without a seam."""
        scene = cls.__new__(cls)
        scene.spec, scene.analysis = spec, analysis
        scene._compose(assets or Assets())
        return scene

    def _compose(self, assets: Assets) -> None:
        """Layout, style, static background and captions, from the spec and the analysis."""
        spec = self.spec
        layout = compute_layout(
            spec, has_artwork=assets.artwork is not None, has_captions=assets.captions is not None
        )
        self.layout = layout
        self.style = make_style(spec, self.analysis, layout.viz)
        self.backdrop: Backdrop | None = None
        self.overlay: list[Sticker] = []
        self.background: Planes | None = None
        if assets.background_video is not None:
            self.backdrop = Backdrop.open(assets.background_video, spec)  # header checks
            self.overlay = compose_overlay(spec, assets, layout, self.style)
        else:
            self.background = compose_static(spec, assets, layout, self.style)
        self.captions = None
        if assets.captions is not None:
            if layout.captions is None:
                # a canvas too small for captions has no caption box (the layout left
                # them out); the file is still read, so a bad one fails as it would
                parse_captions(assets.captions.read_bytes(), name=assets.captions.name)
            else:
                self.captions = Captions(assets.captions, spec, layout, self.analysis.frames)

    @property
    def frames(self) -> int:
        return self.analysis.frames

    def draw(self, planes: Planes, index: int) -> None:
        if self.backdrop is not None:
            self.backdrop.read_into(planes, index)
            for sticker in self.overlay:
                sticker.draw(planes)
        else:
            assert self.background is not None
            planes.copy_from(self.background)
        self.style.draw(planes, index)
        if self.captions is not None:
            self.captions.draw(planes, index)

    def close(self) -> None:
        """Stop what reads the video background, if anything does."""
        if self.backdrop is not None:
            self.backdrop.close()

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def render_video(
    audio_path: Path,
    out_path: Path,
    spec: RenderSpec,
    *,
    assets: Assets | None = None,
    max_seconds: float | None = None,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    limit_seconds: float | None = None,
    measured: Callable[[float], None] | None = None,
) -> RenderResult:
    """Write an MP4 of ``spec``'s audiogram for the audio at ``audio_path``.

    The clip is ``spec.start`` to ``spec.end`` (or the end of the audio), cut to
    ``max_seconds`` if given; the video covers it with whole frames, so the file
    can be up to one frame longer than the audio. ``assets`` holds local copies of
    the images, captions and videos the spec names. Raises InvalidAudio, InvalidImage,
    InvalidVideo or InvalidCaptions for unusable input and RenderFailed when ffmpeg fails; a
    failed render leaves no output file behind. ``should_stop`` is asked between
    frames (and between decoded blocks): when it answers True the render stops
    with RenderCanceled, ffmpeg is killed and nothing is left behind. Audio (or a
    clip window) longer than ``limit_seconds`` is refused as InvalidAudio.
    ``measured`` is told, before decoding, how many seconds of audio the video will
    cover according to the header (an estimate, e.g. for an ETA); not called when
    the header does not say.

    With an intro, an outro or a fade in the spec, the video is composed in parts
    (render.compose): the intro and outro (InvalidVideo when unusable, checked before
    the audio is decoded) around the body, which is encoded once and joined as it is,
    under one soundtrack; the result's duration and loudest moment count the intro
    and outro.
    """
    report = ProgressSteps(progress)
    assets = assets or Assets()
    bookends = Bookends.of(spec, assets)  # a bad intro or outro fails before any decoding
    scene = Scene(audio_path, spec, assets, max_seconds, should_stop, limit_seconds, measured)
    analysis = scene.analysis
    report(0.0)
    if not composes(spec):
        encoder = Encoder(
            out_path,
            width=spec.width,
            height=spec.height,
            fps=spec.fps,
            quality=spec.quality,
            audio=Path(audio_path),
            audio_start=spec.start,
            audio_duration=analysis.duration,
        )
        draw_body(scene, encoder, spec, lambda index: report(min(index / analysis.frames, 0.99)),
                  should_stop)
        report(1.0)
        return RenderResult(
            duration=analysis.duration,
            width=spec.width,
            height=spec.height,
            fps=spec.fps,
            frames=analysis.frames,
            loudest=analysis.loudest_frame / spec.fps,
        )
    return _render_composed(Path(audio_path), Path(out_path), spec, scene, bookends, report,
                            should_stop)


def draw_body(
    scene: Scene,
    encoder: Encoder,
    spec: RenderSpec,
    drawn: Callable[[int], None],
    should_stop: Callable[[], bool] | None,
    frames: range | None = None,
) -> None:
    """Draw ``frames`` of the scene (all of them by default), faded as the spec says
    (render.compose BodyFades), into ``encoder``; ``drawn(n)`` after each, n counted
    from 1. The file is complete when this returns."""
    fades = BodyFades.of(spec, scene.frames)
    frames = frames if frames is not None else range(scene.frames)
    with scene, encoder:
        frame = Planes.empty(spec.width, spec.height)
        for count, index in enumerate(frames, 1):
            check_stop(should_stop)
            scene.draw(frame, index)
            fades.apply(frame, index)
            encoder.write(frame.buffer)
            drawn(count)


#: Where the steps of a composed render end on its 0..1 progress: the bookends and
#: the body by their share of the frames drawn, the soundtrack, then the join.
COMPOSED_FRAMES_END = 0.95
SOUNDTRACK_END = 0.97


def _render_composed(
    audio_path: Path,
    out_path: Path,
    spec: RenderSpec,
    scene: Scene,
    bookends: Bookends,
    report: ProgressSteps,
    should_stop: Callable[[], bool] | None,
) -> RenderResult:
    """The body (video only) drawn while a thread composes the bookends (moviepy) and
    encodes the soundtrack once, then the parts joined without re-encoding
    (render.compose). Beside the body because its loop leaves part of a second core
    idle (measured: bench/render.py) and that work is mostly ffmpeg's; either side
    failing stops the other. The parts live in a temporary directory beside
    ``out_path``, removed however this ends."""
    analysis = scene.analysis
    total = bookends.frames + analysis.frames
    drawn = {"bookends": 0, "body": 0}
    lock = threading.Lock()
    failed = threading.Event()

    def counted(side: str, base: int = 0) -> Callable[[int], None]:
        def count(frames: int) -> None:
            with lock:
                drawn[side] = base + frames
                report(COMPOSED_FRAMES_END * min(sum(drawn.values()) / total, 1.0))
        return count

    def stop() -> bool:
        return failed.is_set() or (should_stop is not None and should_stop())

    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".compose-") as tmp:
        work = Path(tmp)
        parts = {part.role: work / f"{part.role}.mp4" for part in bookends}

        sound = work / "sound.m4a"

        def beside_the_body() -> None:
            try:
                base = 0
                for part in bookends:
                    compose_bookend(part, spec, parts[part.role],
                                    progress=counted("bookends", base), should_stop=stop)
                    base += part.frames
                encode_soundtrack(audio_path, spec, analysis.duration, sound,
                                  body_frames=analysis.frames, bookends=bookends,
                                  should_stop=stop)
            except BaseException:
                failed.set()
                raise

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bookends") as pool:
            composing = pool.submit(beside_the_body)
            body = work / "body.mp4"
            encoder = Encoder(body, width=spec.width, height=spec.height, fps=spec.fps,
                              quality=spec.quality, audio=None)
            try:
                draw_body(scene, encoder, spec, counted("body"), stop)
            except BaseException:
                failed.set()
                wait([composing])
                if composing.exception() is not None and not isinstance(
                        composing.exception(), RenderCanceled):
                    raise composing.exception() from None  # the bookend's failure came first
                raise
            composing.result()
        report(SOUNDTRACK_END)
        ordered = [parts.get("intro"), body, parts.get("outro")]
        join([part for part in ordered if part is not None], sound, out_path, should_stop)
    report(1.0)
    return RenderResult(
        duration=total / spec.fps,
        width=spec.width,
        height=spec.height,
        fps=spec.fps,
        frames=total,
        loudest=(bookends.lead_frames + analysis.loudest_frame) / spec.fps,
    )


def check_stop(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise RenderCanceled("The render was stopped: its job was canceled.")


def render_frames(
    audio_path: Path, spec: RenderSpec, times: list[float], *, assets: Assets | None = None
) -> list[np.ndarray]:
    """The frames shown at ``times`` (seconds into the clip) as (H, W, 3) RGB arrays,
    drawn exactly as in a video but without encoding (so without x264's losses)."""
    planes = Planes.empty(spec.width, spec.height)
    frames = []
    with Scene(audio_path, spec, assets) as scene:
        for seconds in times:
            index = min(max(int(seconds * spec.fps), 0), scene.frames - 1)
            scene.draw(planes, index)
            frames.append(planes.to_rgb())
    return frames


def prepare_audio(
    audio_path: Path,
    out_path: Path,
    *,
    progress: ProgressCallback | None = None,
    limit_seconds: float | None = None,
    measured: Callable[[float], None] | None = None,
) -> PreparedAudio:
    """Decode the audio to a 44.1 kHz 16-bit PCM WAV: mono stays mono, more than 2 channels
    are downmixed to stereo. The duration is counted from the samples written; audio
    longer than ``limit_seconds`` is refused as InvalidAudio. ``measured`` is told the
    header's length before decoding, when the header has one.
    """
    require_audio_file(Path(audio_path))
    report = ProgressSteps(progress)
    report(0.0)
    # never write more than the limit, whatever the header says
    cap = [] if limit_seconds is None else ["-t", f"{limit_seconds + 1:.3f}"]
    command = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", *LEVELED_LOG,
        "-progress", "pipe:1", *untrusted_input(audio_path),
        "-map", "0:a:0", "-vn", "-sn", "-dn",
        "-af", f"aformat=sample_fmts=s16:sample_rates={PREPARED_RATE}:"
        "channel_layouts=mono|stereo",
        "-c:a", "pcm_s16le", "-map_metadata", "-1", "-fflags", "+bitexact", *cap,
        "-f", "wav", "-y", ffmpeg_input(out_path),
    ]  # fmt: skip
    process = start_ffmpeg(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    finished = False
    try:
        assert process.stdout is not None and process.stderr is not None
        # one run reads the header and decodes; what the header refuses stops it
        stderr = HeaderedStderr(process.stderr)
        estimate = header_seconds(stderr.header())
        if limit_seconds is not None and estimate is not None and estimate > limit_seconds:
            raise InvalidAudio.too_long(limit_seconds)
        if measured is not None and estimate is not None:
            measured(estimate)
        with process.stdout:
            for line in process.stdout:  # "key=value" lines, a block every half second
                key, _, value = line.decode("ascii", "replace").strip().partition("=")
                if key == "out_time_us" and estimate and value.isdigit():
                    report(min(int(value) / 1e6 / estimate, 0.99))
        if process.wait() != 0:
            lines = stderr.lines()
            aliases = path_aliases(audio_path, out_path)
            if blames_input(lines):
                raise InvalidAudio.from_ffmpeg(lines, aliases)
            raise RenderFailed.from_ffmpeg("Writing the WAV file", lines, aliases)
        with wave.open(str(out_path), "rb") as written:
            channels, rate = written.getnchannels(), written.getframerate()
            count = written.getnframes()
        if not count:
            raise InvalidAudio.empty()
        if limit_seconds is not None and count / rate > limit_seconds:
            raise InvalidAudio.too_long(limit_seconds)
        finished = True
    finally:
        reap(process)
        if not finished:
            Path(out_path).unlink(missing_ok=True)
    report(1.0)
    return PreparedAudio(duration=count / rate, sample_rate=rate, channels=channels)


class ProgressSteps:
    """Forwards progress at most once per percent, never backwards."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback
        self._last = -1

    def __call__(self, fraction: float) -> None:
        step = math.floor(min(max(fraction, 0.0), 1.0) * 100)
        if self._callback is not None and step > self._last:
            self._last = step
            self._callback(step / 100)

