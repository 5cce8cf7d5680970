"""The job task: download the audio, render, upload. A thin task over `run_job`."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from render import PREVIEW_SECONDS, RenderError, RenderSpec, prepare_audio, render_video
from storage import ObjectStore
from storage.constants import AUDIO_URL_TTL, PREPARE, PREVIEW, RENDER, RESULT_KEY_FIELD_BY_KIND
from tasks.constants import RENDER_TASK
from tasks.download import download
from tasks.errors import JobFailed, UploadFailed
from tasks.reports import ProgressReporter

if TYPE_CHECKING:
    from tasks.app import SoundreelCelery

log = logging.getLogger(__name__)

Report = Callable[[float, str], None]

#: Where each step sits on the job's 0..1 progress bar.
DOWNLOAD_END = 0.05
PRODUCE_END = 0.95

CONTENT_TYPES = {"mp4": "video/mp4", "wav": "audio/wav"}


def run_job(
    store: ObjectStore,
    *,
    kind: str,
    audio_key: str,
    output_key: str,
    options: dict[str, Any],
    report: Report,
    max_bytes: int,
) -> dict[str, Any]:
    """Do one job end to end and return its ``result``; raise `JobFailed` on failure.

    Plain function: no Celery, no HTTP to the API, so it is tested directly.
    Temporary files live in one directory that is removed however this ends.
    """
    try:
        spec = RenderSpec.model_validate(options)
    except ValidationError as exc:
        raise JobFailed(f"Invalid render options: {exc}", "invalid_options") from None
    with tempfile.TemporaryDirectory(prefix="soundreel-") as tmp:
        workdir = Path(tmp)
        report(0.0, "downloading")
        source = workdir / "input"
        download(store.presigned_url(audio_key, AUDIO_URL_TTL), source, max_bytes=max_bytes)
        stage = "decoding" if kind == PREPARE else "rendering"
        report(DOWNLOAD_END, stage)

        def produced(fraction: float) -> None:
            report(DOWNLOAD_END + (PRODUCE_END - DOWNLOAD_END) * fraction, stage)

        try:
            fmt, duration, output = _produce(kind, source, workdir, spec, produced)
        except RenderError as exc:
            raise JobFailed(exc.message, exc.code) from None
        report(PRODUCE_END, "uploading")
        try:
            store.put_file(output_key, output, CONTENT_TYPES[fmt])
        except Exception as exc:
            log.exception("upload of %s failed", output_key)
            raise UploadFailed(
                f"The output could not be stored ({type(exc).__name__}); resubmit the job."
            ) from None
    return {RESULT_KEY_FIELD_BY_KIND[kind]: output_key, "format": fmt, "duration": duration}


def _produce(
    kind: str, source: Path, workdir: Path, spec: RenderSpec, progress: Callable[[float], None]
) -> tuple[str, float, Path]:
    if kind == RENDER:
        output = workdir / "output.mp4"
        result = render_video(source, output, spec, progress=progress)
        return "mp4", round(result.duration, 3), output
    if kind == PREVIEW:
        output = workdir / "preview.mp4"
        result = render_video(
            source, output, spec.for_preview(), max_seconds=PREVIEW_SECONDS, progress=progress
        )
        return "mp4", round(result.duration, 3), output
    if kind == PREPARE:
        output = workdir / "audio.wav"
        prepared = prepare_audio(source, output, progress=progress)
        return "wav", round(prepared.duration, 3), output
    raise JobFailed(f"Unknown job kind {kind!r}.", "invalid_options")


def register(app: SoundreelCelery) -> None:
    @app.task(name=RENDER_TASK, bind=True)
    def render_job(
        self: Any, *, job_id: str, kind: str, audio_key: str, output_key: str,
        options: dict[str, Any],
    ) -> dict[str, Any]:
        log.info("job %s: %s of %s started", job_id, kind, audio_key)
        with ProgressReporter(app.api, job_id) as progress:
            result = run_job(
                app.object_store,
                kind=kind,
                audio_key=audio_key,
                output_key=output_key,
                options=options,
                report=progress.update,
                max_bytes=app.settings.max_upload_bytes,
            )
        log.info("job %s: %s stored at %s", job_id, kind, output_key)
        return {"jobId": job_id, "status": "complete", "result": result}
