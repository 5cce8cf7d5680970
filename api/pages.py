"""Pages for people in a browser: an upload form at ``/`` and a job's status page.

- ``GET /`` tries the service by hand: the page's JavaScript calls the public API
  (``POST /v1/uploads``, ``POST /v1/jobs``) with the API key typed into it (kept in
  the browser's localStorage, never sent to this page), then opens the job's
  ``shareUrl``. It offers every option a job takes (the captions, artwork and
  background files are uploaded before the job is submitted), with its choices,
  defaults and limits taken from `RenderSpec` and `jobs.constants` here, so the
  page cannot drift from what the API accepts.
- ``GET /jobs/<jobId>?token=…`` is the job's status page, reached with its share
  token (`security.secrets.share_token`) instead of an API key: anyone holding the
  link sees that one job's progress, and its video once complete (its poster the
  loudest moment, ``thumbnailUrl``), and nothing else.
  A wrong, missing or expired-job token is the same 404 as an unknown job.
- ``GET /jobs/<jobId>/status.json?token=…`` is what the status page polls: a
  token-scoped subset of the job (no keys, options, webhook or tenant). The page
  sends the token in the ``X-Share-Token`` header rather than the query string, so
  its once-a-second polls keep the token out of access logs; the query parameter
  works too, for symmetry with the page's own URL.

Plain server-rendered HTML (Jinja, autoescaped) and a little vanilla JavaScript
from ``api/static``: no build step, nothing from a CDN. Every answer carries a
strict Content-Security-Policy (scripts only from this origin, no inline script or
style), ``Referrer-Policy: no-referrer`` (the URL carries the token, and the video
may come from another origin), and the token-bearing ones ``Cache-Control: no-store``.
Nothing here logs a token.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from api.service import service
from jobs.constants import (
    ARTWORK,
    AUDIO,
    BACKGROUND,
    BACKGROUND_VIDEO,
    CANCELED,
    CAPTIONS,
    FAILED,
    INTRO,
    MAX_TIMEOUT_SECONDS,
    MIN_TIMEOUT_SECONDS,
    OUTRO,
    PREVIEW,
    RENDER,
    ROLE_EXTENSIONS,
    ROLE_KINDS,
    STAGE_ANALYZING,
    STAGE_DONE,
    STAGE_DOWNLOADING,
    STAGE_FINALIZING,
    STAGE_QUEUED,
    STAGE_RENDERING,
    STAGE_UPLOADING,
    TERMINAL_STATES,
    TIMED_OUT,
    default_output_key,
)
from jobs.errors import JobNotFound
from jobs.store import Job
from render.spec import (
    FITS,
    FRAME_RATES,
    LAYOUTS,
    MAX_PIXELS,
    MAX_SIDE,
    MIN_SIDE,
    PRESETS,
    STYLES,
    RenderSpec,
)
from security.secrets import check_share_token
from storage.errors import StorageUnavailable

#: Templates are in api/templates/pages; scripts and styles in api/static, served by
#: the app's own ``/static`` route (Flask's default for the package's static folder).
bp = Blueprint("pages", __name__, template_folder="templates")

#: Header the status page's script sends the share token in (kept out of URLs it polls).
TOKEN_HEADER = "X-Share-Token"  # noqa: S105 - a header name, not a secret

#: Job kinds the upload page offers: the ones whose result (a video) its status page plays.
PAGE_KINDS = (RENDER, PREVIEW)
#: The files the upload page uploads, in order, each with its option (None: the audio).
PAGE_FILES = {AUDIO: None, ARTWORK: "artworkKey", BACKGROUND: "backgroundKey",
              CAPTIONS: "captionsKey", BACKGROUND_VIDEO: "backgroundVideoKey",
              INTRO: "introKey", OUTRO: "outroKey"}

#: The heading over an ended job's error, by its state (the page and status.js use it).
ERROR_HEADINGS = {
    FAILED: "This job failed.",
    CANCELED: "This job was canceled.",
    TIMED_OUT: "This job ran out of time.",
}

#: What each stage is called on the page (every stage of jobs.constants.STAGES, a
#: test checks); an unknown stage is shown as it is.
STAGE_LABELS = {
    STAGE_QUEUED: "Waiting for a worker",
    STAGE_DOWNLOADING: "Fetching the audio",
    STAGE_ANALYZING: "Analyzing the audio",
    STAGE_RENDERING: "Rendering",
    STAGE_UPLOADING: "Storing the video",
    STAGE_FINALIZING: "Finishing",
    STAGE_DONE: "Done",
}

#: Where the browser may load media from, besides this origin: the object store's
#: origin (an S3/R2 bucket, or PUBLIC_BASE_URL for the local store), worked out once.
_MEDIA_ORIGIN_KEY = "soundreel.pages.media_origin"


@bp.after_request
def secure_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = _content_security_policy()
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    return response


@bp.get("/")
def upload_page() -> Any:
    return render_template("pages/upload.html", **upload_view())


def upload_view() -> dict[str, Any]:
    """What the upload page offers: RenderSpec's choices, defaults and limits."""
    fields = RenderSpec.model_fields
    return {
        "styles": STYLES,
        "presets": {name: f"{w}×{h}" for name, (w, h) in PRESETS.items()},
        "layouts": LAYOUTS,
        "fits": FITS,
        "frame_rates": FRAME_RATES,
        "kinds": PAGE_KINDS,
        "default": {field.alias or name: field.default for name, field in fields.items()},
        "limits": {**{field.alias or name: _bounds(field) for name, field in fields.items()},
                   "timeoutSeconds": {"ge": MIN_TIMEOUT_SECONDS, "le": MAX_TIMEOUT_SECONDS}},
        "canvas": {"min": MIN_SIDE, "max": MAX_SIDE, "pixels": MAX_PIXELS},
        "files": {role: {"accept": ",".join(ROLE_EXTENSIONS[role]),
                         "extensions": " ".join(ROLE_EXTENSIONS[role]),
                         "kind": ROLE_KINDS[role], "option": option}
                  for role, option in PAGE_FILES.items()},
    }


def _bounds(field: Any) -> dict[str, Any]:
    """A field's ge/le/max_length, for the form's min, max and maxlength."""
    bounds: dict[str, Any] = {}
    for rule in field.metadata:
        for name in ("ge", "gt", "le", "max_length"):
            if getattr(rule, name, None) is not None:
                bounds[name] = getattr(rule, name)
    return bounds


@bp.get("/jobs/<job_id>")
def status_page(job_id: str) -> Any:
    try:
        job = _shared_job(job_id, request.args.get("token", ""))
    except JobNotFound:
        return _no_store(render_template("pages/not_found.html"), 404)
    except StorageUnavailable:
        return _no_store(render_template("pages/unavailable.html"), 503, {"Retry-After": "5"})
    status = status_of(job)
    page = render_template(
        "pages/status.html",
        job=status,
        title=(job.options or {}).get("title") or "",
        stage_label=STAGE_LABELS.get(status["stage"] or "", status["stage"] or ""),
        stage_labels=STAGE_LABELS,
        terminal=job.terminal,
        error_headings=ERROR_HEADINGS,
    )
    return _no_store(page, 200)


@bp.get("/jobs/<job_id>/status.json")
def status_json(job_id: str) -> Any:
    token = request.headers.get(TOKEN_HEADER) or request.args.get("token", "")
    try:
        job = _shared_job(job_id, token)
    except JobNotFound:
        body = {"error": {"code": "not_found", "message": "No such job, or the link is wrong."}}
        return _no_store(jsonify(body), 404)
    return _no_store(jsonify(status_of(job)), 200)


def status_of(job: Job) -> dict[str, Any]:
    """What a share link shows of a job: where it stands and its video, no more."""
    view = service().views.view(job).body()
    result = job.result or {}
    return {
        "jobId": job.job_id,
        "kind": job.kind,
        "status": job.status,
        "stage": job.stage,
        "progress": job.progress,
        "eta": view.get("eta"),
        "queuePosition": view.get("queuePosition"),
        "error": job.error,
        "downloadUrl": view.get("downloadUrl"),
        # posterUrl: the video's loudest moment (thumbnailUrl), shown before it plays
        "result": {"duration": result.get("duration"), "posterUrl": view.get("thumbnailUrl")}
        if job.result is not None else None,
        "terminal": job.status in TERMINAL_STATES,
    }


def _shared_job(job_id: str, token: str) -> Job:
    """The job, if ``token`` is its share token; JobNotFound otherwise (the token is
    checked first, in constant time, so a wrong one says nothing about the id)."""
    if not check_share_token(service().settings, job_id, token):
        raise JobNotFound(job_id)
    return service().jobs.get(job_id)


def _no_store(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    response = current_app.make_response((body, status))
    response.headers["Cache-Control"] = "no-store"
    response.headers.update(headers or {})
    return response


def _content_security_policy() -> str:
    media = " ".join(dict.fromkeys(["'self'", _media_origin()]))
    return "; ".join([
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        f"img-src {media} data:",  # the video's poster comes from the store
        f"media-src {media}",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ])


def _media_origin() -> str:
    """The origin the store's links point at, from a link made for a dummy key
    (making a link is local signing, no request to the store)."""
    extensions = current_app.extensions
    if _MEDIA_ORIGIN_KEY not in extensions:
        try:
            url = service().objects.presigned_url(default_output_key("render", "0" * 32), 60)
            parts = urlsplit(url)
            origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
        except Exception:  # noqa: BLE001 - without it, media from this origin only
            origin = ""
        extensions[_MEDIA_ORIGIN_KEY] = origin or "'self'"
    return extensions[_MEDIA_ORIGIN_KEY]
