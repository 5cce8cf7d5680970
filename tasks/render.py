"""The job task: download the audio, render, upload. A thin task over `run_job`."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from billiard.exceptions import WorkerLostError
from celery.exceptions import Ignore, SoftTimeLimitExceeded
from celery.worker.request import Request
from pydantic import ValidationError

from jobs.constants import (
    AUDIO_URL_TTL,
    COMPLETE,
    PREPARE,
    PREVIEW,
    RENDER,
    RESULT_KEY_FIELD_BY_KIND,
    STAGE_ANALYZING,
    STAGE_DOWNLOADING,
    STAGE_FINALIZING,
    STAGE_RENDERING,
    STAGE_UPLOADING,
    peaks_key,
    thumbnail_key,
)
from render import (
    Assets,
    RenderCanceled,
    RenderError,
    RenderSpec,
    extract_frame,
    prepare_audio,
    render_video,
    write_peaks,
)
from storage.objects import ObjectStore
from tasks import background
from tasks.cache import cached_result
from tasks.callbacks import time_limit_error
from tasks.constants import RENDER_TASK
from tasks.download import download, fetch_client_url
from tasks.errors import JobCanceled, JobFailed, JobSplit, UploadFailed
from tasks.reports import ApiUnavailable, ProgressReporter, Start

if TYPE_CHECKING:
    from tasks.celeryapp import SoundreelCelery

log = logging.getLogger(__name__)

Report = Callable[[float, str], None]
#: (audio, workdir, spec, assets) -> whether the job was split (tasks.split.Planner).
SplitUp = Callable[[Path, Path, RenderSpec, Assets], bool]

#: Temp dirs are named ``soundreel-{pid}-…`` so dead workers' ones can be found.
WORKDIR_PREFIX = "soundreel-"

#: Where each step sits on the job's 0..1 progress bar.
DOWNLOAD_END = 0.05
PRODUCE_END = 0.95
FINALIZE_AT = 0.99


@dataclass(frozen=True)
class Output:
    """A file the job produced and where it goes."""

    key: str
    path: Path
    content_type: str


def run_job(
    store: ObjectStore,
    *,
    job_id: str,
    kind: str,
    audio_key: str,
    output_key: str,
    options: dict[str, Any],
    report: Report,
    max_bytes: int,
    should_stop: Callable[[], bool] = lambda: False,
    max_audio_seconds: float | None = None,
    audio_url: str | None = None,
    allow_urls: frozenset[str] = frozenset(),
    measured: Callable[[float], None] = lambda seconds: None,
    cached: Callable[[Path], dict[str, Any] | None] = lambda audio: None,
    split_up: SplitUp | None = None,
    prefetched: Prefetch | None = None,
) -> dict[str, Any]:
    """Do one job end to end and return its ``result``; raise `JobFailed` on failure.

    ``split_up`` may take a long render over once its inputs are here: it hands the
    job's windows to the fleet (tasks.split) and answers True; this raises
    `JobSplit` then, as this task's part of the job is done.

    Plain function: no Celery, no HTTP to the API, so it is tested directly.
    Temporary files live in one directory that is removed however this ends.
    ``should_stop`` (the job was canceled) is checked between steps and frames.
    ``cached``: the render cache's result for a fetched ``audio_url`` (`tasks.cache`).
    ``prefetched``: ``audio_key``'s download, begun before the job was started.
    """
    try:
        spec = RenderSpec.model_validate(options)
    except ValidationError as exc:
        raise JobFailed(f"Invalid render options: {exc}", "invalid_options") from None
    sweep_stale_workdirs()
    with tempfile.TemporaryDirectory(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-") as tmp:
        workdir = Path(tmp)
        report(0.0, STAGE_DOWNLOADING)
        source = workdir / "input"
        if audio_url:
            fetch_client_url(audio_url, source, max_bytes=max_bytes, allow=allow_urls)
            if (reused := cached(source)) is not None:  # copied from an earlier job
                report(FINALIZE_AT, STAGE_FINALIZING)
                return reused
        elif prefetched is not None:
            prefetched.into(source)
        else:
            fetch(store, audio_key, source, max_bytes)
        # a preview has no intro or outro: their videos are not fetched for it
        assets = fetch_assets(store, spec.for_preview() if kind == PREVIEW else spec, workdir,
                              max_bytes)
        if should_stop():
            raise JobCanceled("The job was canceled.")
        report(DOWNLOAD_END, STAGE_ANALYZING)
        if kind == RENDER and split_up is not None:
            try:
                if split_up(source, workdir, spec, assets):
                    raise JobSplit("The job's windows were handed to the fleet.")
            except RenderCanceled:
                raise JobCanceled("The job was canceled.") from None
            except RenderError as exc:
                raise JobFailed(exc.message, exc.code) from None
        stage = STAGE_ANALYZING if kind == PREPARE else STAGE_RENDERING

        def produced(fraction: float) -> None:
            report(DOWNLOAD_END + (PRODUCE_END - DOWNLOAD_END) * fraction, stage)

        try:
            result, outputs = _produce(
                kind, job_id, output_key, source, workdir, spec, assets, produced, should_stop,
                max_audio_seconds, measured,
            )
        except RenderCanceled:
            raise JobCanceled("The job was canceled.") from None
        except RenderError as exc:
            raise JobFailed(exc.message, exc.code) from None
        if should_stop():
            raise JobCanceled("The job was canceled.")
        report(PRODUCE_END, STAGE_UPLOADING)
        store_outputs(store, outputs, should_stop)
    # what comes next (`finalizing`: the hand-off and the result callback) is the task's
    return result


def store_outputs(store: ObjectStore, outputs: list[Output],
                  should_stop: Callable[[], bool]) -> None:
    """Upload ``outputs``; nothing more once the job is over (canceled, timed out or
    taken over by another attempt)."""
    for output in outputs:
        if should_stop():
            raise JobCanceled("The job was canceled.")
        try:
            store.put_file(output.key, output.path, output.content_type)
        except SoftTimeLimitExceeded:
            raise
        except Exception as exc:
            log.exception("upload of %s failed", output.key)
            raise UploadFailed(
                f"The output could not be stored ({type(exc).__name__}); resubmit the job."
            ) from None


def video_outputs(kind: str, job_id: str, output_key: str, video: Path, thumbnail: Path,
                  duration: float, loudest: float) -> tuple[dict[str, Any], list[Output]]:
    """A video's result and what to store: the MP4 and a JPEG of its loudest moment
    (frame 0 is usually near silence, an almost empty picture: a poor poster)."""
    extract_frame(video, loudest, thumbnail)
    result = {
        RESULT_KEY_FIELD_BY_KIND[kind]: output_key,
        "thumbnailKey": thumbnail_key(kind, job_id),
        "format": "mp4",
        "duration": round(duration, 3),
    }
    return result, [
        Output(output_key, video, "video/mp4"),
        Output(thumbnail_key(kind, job_id), thumbnail, "image/jpeg"),
    ]


def sweep_stale_workdirs(root: Path | None = None) -> list[Path]:
    """Remove the temp dirs of worker processes that died without cleaning up
    (a SIGKILLed pool child, an OOM kill); each dir is named after its owner's pid."""
    removed = []
    for path in Path(root or tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*-*"):
        pid = path.name.removeprefix(WORKDIR_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    if removed:
        log.warning("removed %d temp dir(s) of dead workers", len(removed))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fetch(store: ObjectStore, key: str, dest: Path, max_bytes: int) -> Path:
    """An object of the store, through its signed link, to ``dest``."""
    download(store.presigned_url(key, AUDIO_URL_TTL), dest, max_bytes=max_bytes)
    return dest


class Prefetch:
    """An upload's download, begun on a thread of its own while the API is asked
    whether the job may start: the two round trips overlap instead of adding up.

    Only our own storage's objects are fetched ahead; a client's ``audioUrl`` is
    fetched once the job has started (nothing goes to a client's server for a job
    that does not run). Its directory is named like a job's workdir, so a process
    that dies mid-fetch leaves nothing that `sweep_stale_workdirs` does not remove.
    """

    def __init__(self, store: ObjectStore, key: str, max_bytes: int):
        url = store.presigned_url(key, AUDIO_URL_TTL)
        self._dir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-"))
        self._stop = threading.Event()
        try:
            self._future: Future[int] = background.submit(
                "prefetch", download, url, self._dir / "input", max_bytes=max_bytes,
                should_stop=self._stop.is_set)
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise

    def into(self, dest: Path) -> None:
        """Wait for the download and move it to ``dest``; its error if it failed."""
        try:
            self._future.result()
            os.replace(self._dir / "input", dest)
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

    def discard(self) -> None:
        """Not used (the job does not run here, or failed first): the download stops
        (or never begins) and the file goes; nothing if `into` has taken it."""
        self._stop.set()
        self._future.cancel()
        self._future.add_done_callback(lambda _: shutil.rmtree(self._dir, ignore_errors=True))


@contextmanager
def prefetch(app: SoundreelCelery, key: str | None) -> Iterator[Prefetch | None]:
    """`Prefetch` of ``key`` (None: nothing to fetch ahead) for the ``with`` block."""
    try:
        fetching = Prefetch(app.object_store, key, app.settings.max_upload_bytes) if key \
            else None
    except Exception:  # noqa: BLE001 - the job's own fetch, after its start, reports it
        log.warning("the upload could not be fetched ahead; it is fetched after the start",
                    exc_info=True)
        fetching = None
    if fetching is None:
        yield None
        return
    try:
        yield fetching
    finally:
        fetching.discard()


def fetch_assets(store: ObjectStore, spec: RenderSpec, workdir: Path, max_bytes: int,
                 roles: Collection[str] | None = None) -> Assets:
    """Local copies of the images, captions and videos ``spec`` names (only those of
    ``roles``, e.g. a window of a split render needs no intro)."""
    return Assets.of({role: fetch(store, key, workdir / f"asset-{role}", max_bytes)
                      for role, key in spec.asset_keys.items()
                      if roles is None or role in roles})


#: What a window of a split render draws from; the intro and outro are the join's.
BODY_ROLES = frozenset({"background", "artwork", "captions", "backgroundVideo"})
#: What the join composes and the audio unit's soundtrack plays.
BOOKEND_ROLES = frozenset({"intro", "outro"})


def _produce(
    kind: str,
    job_id: str,
    output_key: str,
    source: Path,
    workdir: Path,
    spec: RenderSpec,
    assets: Assets,
    progress: Callable[[float], None],
    should_stop: Callable[[], bool],
    limit: float | None,
    measured: Callable[[float], None],
) -> tuple[dict[str, Any], list[Output]]:
    field = RESULT_KEY_FIELD_BY_KIND[kind]
    if kind in (RENDER, PREVIEW):
        video, thumbnail = workdir / f"{kind}.mp4", workdir / "thumbnail.jpg"
        rendered = render_video(
            source, video, spec if kind == RENDER else spec.for_preview(), assets=assets,
            progress=progress, should_stop=should_stop, limit_seconds=limit, measured=measured,
        )
        return video_outputs(kind, job_id, output_key, video, thumbnail, rendered.duration,
                             rendered.loudest)
    if kind == PREPARE:
        wav, peaks = workdir / "audio.wav", workdir / "peaks.json"
        prepared = prepare_audio(source, wav, progress=progress, limit_seconds=limit,
                                 measured=measured)
        write_peaks(wav, peaks)
        result = {
            field: output_key,
            "peaksKey": peaks_key(job_id),
            "format": "wav",
            "duration": round(prepared.duration, 3),
            "sampleRate": prepared.sample_rate,
            "channels": prepared.channels,
        }
        return result, [
            Output(output_key, wav, "audio/wav"),
            Output(peaks_key(job_id), peaks, "application/json"),
        ]
    raise JobFailed(f"Unknown job kind {kind!r}.", "invalid_options")


class JobDelivery(Request):
    """The worker's parent process, speaking for a pool child that died.

    A child killed mid-render (SIGKILL, the OOM killer) cannot report, and Celery
    requeues its message at once (``task_reject_on_worker_lost``). Without a word
    from here the redelivery would find the dead child's lease still alive and do
    nothing; so the parent releases the lease first. A child killed by the hard
    time limit is reported the same way, with the error that ends the job.
    """

    def on_timeout(self, soft: bool, timeout: float) -> None:
        if not soft:
            kind = self.kwargs.get("kind", "render")
            self._release(time_limit_error(kind))
        super().on_timeout(soft, timeout)

    def on_failure(self, exc_info: Any, send_failed_event: bool = True,
                   return_ok: bool = False) -> None:
        exc = getattr(exc_info.exception, "exc", exc_info.exception)
        if isinstance(exc, WorkerLostError | SystemExit):
            self._release(None)
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)

    def _release(self, error: dict[str, str] | None) -> None:
        job_id = self.kwargs.get("job_id")
        if job_id and self.worker_pid:
            # a window of a split job (tasks.split) has a lease of its own
            self.task.app.api.release(job_id, holder(self.hostname, self.worker_pid), error,
                                      segment=self.kwargs.get("index"))


def hand_off_and_close(api: Any, payload: dict[str, Any], progress: ProgressReporter) -> None:
    """Send the hand-off (on the process's hand-off thread), then stop the job's
    heartbeat, which has held the lease until it landed."""
    try:
        api.hand_off(payload)
    except Exception:
        log.exception("job %s: hand-off not sent; its result callback reports the end",
                      payload.get("jobId"))
    finally:
        progress.close()


def holder(nodename: str, pid: int) -> str:
    """Who runs an attempt: the Celery node name (unique per worker) and the child pid."""
    return f"{nodename}/{pid}"


#: A delivery that could not ask the API waits this long (doubling, capped) and asks again.
START_RETRY_SECONDS = 5
START_RETRY_MAX_SECONDS = 120


#: The task arguments logs, events and Flower may show (a client's audioUrl may be signed).
SAFE_ARGUMENTS = ("job_id", "kind", "index")


def start_or_wait(task: Any, progress: ProgressReporter, me: str, attempt: str,
                  phase: str | None = None) -> Start:
    """Ask the API whether this delivery may work (`ProgressReporter.start`); when the
    API cannot be asked, retry the task later with the same attempt id: work nobody
    can record is work lost, and a message acked unasked would be lost with it."""
    try:
        return progress.start(me, attempt, phase)
    except ApiUnavailable as exc:
        kwargs = task.request.kwargs
        countdown = min(START_RETRY_SECONDS * 2 ** task.request.retries,
                        START_RETRY_MAX_SECONDS)
        log.warning("job %s: the API cannot be asked (%s); again in %d s",
                    kwargs.get("job_id"), exc, countdown)
        # the retried message gets the same safe reprs as the first
        raise task.retry(countdown=countdown, kwargs={**kwargs, "attempt": attempt},
                         argsrepr="()", kwargsrepr=repr(
                             {k: kwargs[k] for k in SAFE_ARGUMENTS if k in kwargs})) from None


def register(app: SoundreelCelery) -> None:
    from tasks.split import Planner  # here: tasks.split builds on this module

    @app.task(name=RENDER_TASK, shared=False, bind=True, Request=JobDelivery, max_retries=None)
    def render_job(
        self: Any, *, job_id: str, kind: str, audio_key: str, output_key: str,
        options: dict[str, Any], audio_url: str | None = None, attempt: str | None = None,
    ) -> dict[str, Any]:
        me = holder(self.request.hostname, os.getpid())
        # Proposed by the worker, and kept across a retry: if the API took the start
        # but its answer was lost, asking again with the same id is not a new attempt.
        attempt = attempt or uuid.uuid4().hex
        # our own upload is fetched while the API is asked (a client's URL only after)
        with prefetch(app, audio_key if not audio_url else None) as prefetched, \
                ProgressReporter(app.api, job_id) as progress:
            answer = start_or_wait(self, progress, me, attempt)
            if not answer.go:
                # canceled, given up, ended, or held by a live attempt elsewhere
                log.warning("job %s is %s: this delivery does nothing", job_id, answer.status)
                raise Ignore()
            # the errback (same process) reads it: a failure report names its attempt
            self.request.soundreel_attempt = answer.attempt
            # a client's URL may be signed: never logged
            log.info("job %s: %s of %s started (attempt %s)", job_id, kind,
                     audio_key or "an audioUrl", answer.attempt)
            try:
                result = run_job(
                    app.object_store,
                    job_id=job_id,
                    kind=kind,
                    audio_key=audio_key,
                    output_key=output_key,
                    options=options,
                    report=progress.update,
                    max_bytes=app.settings.max_upload_bytes,
                    should_stop=progress.stop.is_set,
                    max_audio_seconds=app.settings.max_audio_seconds,
                    audio_url=audio_url,
                    allow_urls=app.settings.allow_private_urls,
                    measured=progress.measured,
                    cached=partial(cached_result, app.api, job_id, answer.attempt, kind, options),
                    split_up=Planner(app, job_id, progress, audio_key),
                    prefetched=prefetched,
                )
            except JobSplit:
                log.info("job %s: split; its windows and join end it", job_id)
                raise Ignore() from None
            except JobCanceled:
                # the job was canceled or timed out (the API shows it), or another
                # attempt took it over: nothing to report, nothing to retry
                log.info("job %s: stopped, the API said this attempt is over", job_id)
                raise Ignore() from None
            log.info("job %s: %s stored at %s", job_id, kind, output_key)
            # The outcome carries the last progress (stage `finalizing`) and every
            # stage's time, so nothing waits for a PATCH in flight: one landing after
            # it is ignored, and no stage goes missing from the record.
            last = progress.settle(FINALIZE_AT, STAGE_FINALIZING)
            payload = {"jobId": job_id, "status": COMPLETE, "attempt": answer.attempt,
                       "result": result, **last}
            # The result callback (`link`, on the callbacks queue) reports the end with
            # the payload this task returns. The hand-off goes meanwhile, on a thread
            # of its own, instead of holding the task up: the job's heartbeat renews the
            # lease until it has landed (the reporter stays open for it), and then the
            # API holds it for HANDOFF_SECONDS, so a late callback finds the job still
            # held. If the callback lands first, the late hand-off is ignored.
            background.submit("handoff", hand_off_and_close, app.api, payload, progress)
            progress.keep_open()
        return payload
