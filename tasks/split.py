"""A long render split across the fleet: the plan, the windows and the join.

The job's own task (tasks.render) downloads the inputs as usual; for a ``render``
whose clip is at least SPLIT_MIN_SECONDS long (and ``options.split`` is not false)
the `Planner` takes over: it analyses the clip once, stores its features under
``work/{jobId}/``, and hands the plan to the API, which records the windows and
sends one ``render_segment`` task per window, and one more that encodes the audio
once for the join (beside the windows, off the critical path). Each window
task draws its frames from the shared features, encodes them (video only) and
stores them; it has its own attempt and lease, so a window whose worker dies is
redelivered alone. When the last window is stored the API sends ``join_segments``:
it concatenates the windows without re-encoding, muxes the audio, stores the video
and its thumbnail and ends the job as an unsplit render task does (hand-off, then
the result callback). The reaper removes ``work/{jobId}/`` a lease after the job has
ended, whatever the outcome (a join sent again must find it until then).
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celery.exceptions import Ignore

from jobs.constants import (
    COMPLETE,
    SPLIT_JOINED_AT,
    STAGE_ANALYZING,
    STAGE_FINALIZING,
    features_key,
    sound_key,
    source_key,
    window_key,
)
from jobs.store import JOIN
from render import Assets, RenderCanceled, RenderError, RenderSpec
from render.audio import header_duration
from render.compose import Bookends, compose_bookend, composes, frame_count
from render.split import Window, analyse, encode_sound, join, plan_windows, render_window
from storage.objects import ObjectStore
from tasks.callbacks import failure_payload
from tasks.constants import JOIN_TASK, SEGMENT_TASK
from tasks.errors import JobCanceled, JobFailed
from tasks.render import (
    BODY_ROLES,
    BOOKEND_ROLES,
    WORKDIR_PREFIX,
    JobDelivery,
    Output,
    fetch,
    fetch_assets,
    holder,
    start_or_wait,
    store_outputs,
    sweep_stale_workdirs,
    video_outputs,
)
from tasks.reports import ProgressReporter

if TYPE_CHECKING:
    from tasks.celeryapp import SoundreelCelery

log = logging.getLogger(__name__)


def clip_seconds(audio: Path, spec: RenderSpec) -> float | None:
    """How long the clip is, as far as the header tells (None: it does not)."""
    header = header_duration(audio)
    if header is None:
        return spec.clip_seconds
    whole = max(header - spec.start, 0.0)
    return whole if spec.clip_seconds is None else min(whole, spec.clip_seconds)


class Planner:
    """The job task's part of a split render (``run_job``'s ``split_up``)."""

    def __init__(self, app: SoundreelCelery, job_id: str, progress: ProgressReporter,
                 audio_key: str) -> None:
        self.app, self.job_id, self.progress = app, job_id, progress
        #: The input's upload ("" for an ``audioUrl``: the audio unit reads a copy then).
        self.audio_key = audio_key

    def __call__(self, audio: Path, workdir: Path, spec: RenderSpec, assets: Assets) -> bool:
        settings = self.app.settings
        seconds = clip_seconds(audio, spec)
        if not spec.split or seconds is None or seconds < settings.split_min_seconds:
            return False
        Bookends.of(spec, assets)  # a bad intro or outro fails the job before any window
        features = workdir / "features.npz"
        rendered = analyse(audio, spec, features, assets=assets,
                           should_stop=self.progress.stop.is_set,
                           limit_seconds=settings.max_audio_seconds,
                           measured=self.progress.measured)
        windows = plan_windows(rendered.frames, spec.fps, settings.segment_seconds)
        self.progress.update(0.08, STAGE_ANALYZING)
        outputs = [Output(features_key(self.job_id), features, "application/octet-stream")]
        if not self.audio_key:  # fetched from the client's URL: kept for the audio unit
            outputs.append(Output(source_key(self.job_id), audio, "application/octet-stream"))
        store_outputs(self.app.object_store, outputs, self.progress.stop.is_set)
        self.progress.flush()
        taken = self.app.api.split(self.job_id, {
            "attempt": self.progress.attempt, "duration": round(rendered.duration, 6),
            "loudest": round(rendered.loudest, 6), "frames": rendered.frames,
            "windows": [[w.first, w.stop] for w in windows],
        })
        log.info("job %s: %d windows of %d frames and the audio %s", self.job_id, len(windows),
                 rendered.frames, "handed out" if taken else "not taken (the job went on)")
        if not taken:
            raise JobCanceled("The API did not take the split: the job went on without it.")
        return True


def run_audio(
    store: ObjectStore, *, job_id: str, source: str, spec: RenderSpec, duration: float,
    should_stop: Callable[[], bool], max_bytes: int,
) -> None:
    """The audio unit: the video's whole soundtrack (the clip's audio, and the intro's
    and outro's sound) encoded once and stored for the join."""
    with tempfile.TemporaryDirectory(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-") as tmp:
        workdir = Path(tmp)
        audio, sound = workdir / "input", workdir / "audio.m4a"
        fetch(store, source, audio, max_bytes)
        assets = fetch_assets(store, spec, workdir, max_bytes, BOOKEND_ROLES)
        if should_stop():
            raise JobCanceled("The job was canceled.")
        try:
            encode_sound(audio, spec, duration, sound, Bookends.of(spec, assets), should_stop)
        except RenderCanceled:
            raise JobCanceled("The job was canceled.") from None
        except RenderError as exc:
            raise JobFailed(exc.message, exc.code) from None
        store_outputs(store, [Output(sound_key(job_id), sound, "audio/mp4")], should_stop)


def run_segment(
    store: ObjectStore, *, job_id: str, window: Window, spec: RenderSpec,
    report: Callable[[float], None], should_stop: Callable[[], bool], max_bytes: int,
) -> None:
    """Render one window from the clip's saved features and store it. Plain function."""
    with tempfile.TemporaryDirectory(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-") as tmp:
        workdir = Path(tmp)
        features = workdir / "features.npz"
        store.get_file(features_key(job_id), features)
        assets = fetch_assets(store, spec, workdir, max_bytes, BODY_ROLES)
        out = workdir / "window.mp4"
        try:
            render_window(features, spec, window, out, assets=assets, progress=report,
                          should_stop=should_stop)
        except RenderCanceled:
            raise JobCanceled("The job was canceled.") from None
        except RenderError as exc:
            raise JobFailed(exc.message, exc.code) from None
        store_outputs(store, [Output(window_key(job_id, window.index), out, "video/mp4")],
                      should_stop)


def run_join(
    store: ObjectStore, *, job_id: str, kind: str, output_key: str, windows: int,
    duration: float, loudest: float, report: Callable[[float, str], None],
    should_stop: Callable[[], bool], spec: RenderSpec | None = None, max_bytes: int = 0,
) -> dict[str, Any]:
    """Join the stored windows, between the intro and outro ``spec`` names (composed
    here), and the soundtrack; store the video and its thumbnail; return the job's
    result. Plain function.

    The join composes the bookends (rather than a unit of their own): they are seconds
    of video, it needs nothing stored for them (no more objects under ``work/``), and
    a join sent again composes them again from the uploads.
    """
    with tempfile.TemporaryDirectory(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-") as tmp:
        workdir = Path(tmp)
        report(SPLIT_JOINED_AT, STAGE_FINALIZING)
        sound = workdir / "audio.m4a"
        store.get_file(sound_key(job_id), sound)
        try:
            bookends, composed = _bookends(store, spec, workdir, max_bytes, should_stop)
            body = []
            for index in range(windows):
                if should_stop():
                    raise JobCanceled("The job was canceled.")
                body.append(workdir / f"window-{index:05d}.mp4")
                store.get_file(window_key(job_id, index), body[-1])
            parts = [*composed.get("intro", []), *body, *composed.get("outro", [])]
            video = workdir / f"{kind}.mp4"
            join(parts, sound, video, should_stop)
            for part in parts:
                part.unlink()
            if spec is not None and composes(spec):  # frame-exact, as an unsplit render
                frames = bookends.frames + frame_count(duration, spec.fps)
                duration, loudest = frames / spec.fps, loudest + bookends.lead_frames / spec.fps
            result, outputs = video_outputs(kind, job_id, output_key, video,
                                            workdir / "thumbnail.jpg", duration, loudest)
        except RenderCanceled:
            raise JobCanceled("The job was canceled.") from None
        except RenderError as exc:
            raise JobFailed(exc.message, exc.code) from None
        report(0.97, STAGE_FINALIZING)
        store_outputs(store, outputs, should_stop)
    # work/{jobId}/ stays until the job has ended (the reaper deletes it then): a join
    # sent again (its worker died before the end was recorded) reads it again
    return result


def _bookends(store: ObjectStore, spec: RenderSpec | None, workdir: Path, max_bytes: int,
              should_stop: Callable[[], bool]) -> tuple[Bookends, dict[str, list[Path]]]:
    """The intro and outro of ``spec``, composed in ``workdir``: the file of each role."""
    if spec is None:
        return Bookends(), {}
    assets = fetch_assets(store, spec, workdir, max_bytes, BOOKEND_ROLES)
    bookends = Bookends.of(spec, assets)
    composed = {}
    for bookend in bookends:
        composed[bookend.role] = [workdir / f"{bookend.role}.mp4"]
        compose_bookend(bookend, spec, composed[bookend.role][0], should_stop=should_stop)
    return bookends, composed


def register(app: SoundreelCelery) -> None:
    @app.task(name=SEGMENT_TASK, shared=False, bind=True, Request=JobDelivery, max_retries=None)
    def render_segment(
        self: Any, *, job_id: str, index: int, first: int, stop: int,
        options: dict[str, Any], attempt: str | None = None, audio: bool = False,
        duration: float = 0.0, source: str = "",
    ) -> None:
        me = holder(self.request.hostname, os.getpid())
        unit = f"the audio (unit {index})" if audio else f"window {index}"  # for the log
        with ProgressReporter(app.api, job_id, segment=index) as progress:
            answer = start_or_wait(self, progress, me, attempt or uuid.uuid4().hex)
            if not answer.go:
                log.info("job %s: %s is %s; this delivery does nothing", job_id, unit,
                         answer.status)
                raise Ignore()
            sweep_stale_workdirs()
            spec = RenderSpec.model_validate(options)
            try:
                if audio:
                    run_audio(app.object_store, job_id=job_id, source=source, spec=spec,
                              duration=duration, should_stop=progress.stop.is_set,
                              max_bytes=app.settings.max_upload_bytes)
                else:
                    run_segment(app.object_store, job_id=job_id,
                                window=Window(index, first, stop), spec=spec,
                                report=lambda fraction: progress.update(fraction, "rendering"),
                                should_stop=progress.stop.is_set,
                                max_bytes=app.settings.max_upload_bytes)
            except JobCanceled:
                log.info("job %s: %s stopped, the API said it is over", job_id, unit)
                raise Ignore() from None
            except Exception as exc:  # noqa: BLE001 - every failure ends the job, coded
                error = failure_payload(job_id, exc)["error"]
                log.warning("job %s: %s failed: %s", job_id, unit, error["code"])
                app.api.end_segment(job_id, index, answer.attempt or "", error)
                raise Ignore() from None
            progress.flush()
            app.api.end_segment(job_id, index, answer.attempt or "")
            log.info("job %s: %s stored", job_id, unit)

    @app.task(name=JOIN_TASK, shared=False, bind=True, Request=JobDelivery, max_retries=None)
    def join_segments(
        self: Any, *, job_id: str, kind: str, output_key: str, windows: int,
        duration: float, loudest: float, attempt: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        me = holder(self.request.hostname, os.getpid())
        with ProgressReporter(app.api, job_id) as progress:
            answer = start_or_wait(self, progress, me, attempt or uuid.uuid4().hex, JOIN)
            if not answer.go:
                log.info("job %s: not to be joined now (%s); this delivery does nothing",
                         job_id, answer.status)
                raise Ignore()
            self.request.soundreel_attempt = answer.attempt
            try:
                result = run_join(app.object_store, job_id=job_id, kind=kind,
                                  output_key=output_key, windows=windows, duration=duration,
                                  loudest=loudest, report=progress.update,
                                  should_stop=progress.stop.is_set,
                                  spec=None if options is None else
                                  RenderSpec.model_validate(options),
                                  max_bytes=app.settings.max_upload_bytes)
            except JobCanceled:
                raise Ignore() from None
            progress.flush()
            payload = {"jobId": job_id, "status": COMPLETE, "attempt": answer.attempt,
                       "result": result}
            app.api.hand_off(payload)
        log.info("job %s: joined and stored at %s", job_id, output_key)
        return payload
