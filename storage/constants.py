"""Every Redis key prefix, object-key layout, job state and link lifetime, in one place.

Never build one of these strings anywhere else: call the helpers here.
"""

from __future__ import annotations

from typing import Final

# --- job states (see storage.jobs for the transition table) -----------------

#: Accepted and enqueued; no worker has reported yet.
QUEUED: Final = "queued"
#: A worker has reported progress.
RUNNING: Final = "running"
#: The output is stored; ``result`` is set. Terminal.
COMPLETE: Final = "complete"
#: The job ended with an error; ``error`` is set. Terminal.
FAILED: Final = "failed"

STATES: Final = (QUEUED, RUNNING, COMPLETE, FAILED)
TERMINAL_STATES: Final = frozenset({COMPLETE, FAILED})

# --- job kinds ---------------------------------------------------------------

#: The full video.
RENDER: Final = "render"
#: A short low-resolution clip of the first seconds.
PREVIEW: Final = "preview"
#: The audio decoded and normalised to a 44.1 kHz WAV.
PREPARE: Final = "prepare"

KINDS: Final = (RENDER, PREVIEW, PREPARE)

# --- Redis keys ----------------------------------------------------------------

REDIS_PREFIX: Final = "soundreel:"


def job_redis_key(job_id: str) -> str:
    return f"{REDIS_PREFIX}job:{job_id}"


def upload_redis_key(upload_id: str) -> str:
    """Who owns an upload: a job may only read audio its own tenant uploaded."""
    return f"{REDIS_PREFIX}upload:{upload_id}"


# --- object keys ---------------------------------------------------------------

UPLOADS_PREFIX: Final = "uploads/"
RENDERS_PREFIX: Final = "renders/"
PREVIEWS_PREFIX: Final = "previews/"
PREPARED_PREFIX: Final = "prepared/"
#: Prefixes the service writes itself; a client's ``outputKey`` may not point into them.
RESERVED_PREFIXES: Final = (UPLOADS_PREFIX, RENDERS_PREFIX, PREVIEWS_PREFIX, PREPARED_PREFIX)


def upload_key(upload_id: str, name: str) -> str:
    return f"{UPLOADS_PREFIX}{upload_id}/{name}"


def default_output_key(kind: str, job_id: str) -> str:
    """Where a job's output goes unless the job names an ``outputKey``."""
    if kind == RENDER:
        return f"{RENDERS_PREFIX}{job_id}/output.mp4"
    if kind == PREVIEW:
        return f"{PREVIEWS_PREFIX}{job_id}/preview.mp4"
    if kind == PREPARE:
        return f"{PREPARED_PREFIX}{job_id}/audio.wav"
    raise ValueError(f"unknown job kind {kind!r}")


#: The result field that names each kind's output, in the order the poll
#: endpoint prefers them for ``downloadUrl``.
RESULT_KEY_FIELDS: Final = ("videoKey", "previewKey", "preparedKey")
RESULT_KEY_FIELD_BY_KIND: Final = {
    RENDER: "videoKey",
    PREVIEW: "previewKey",
    PREPARE: "preparedKey",
}

# --- link lifetimes ------------------------------------------------------------

#: Presigned links to a finished video (R2's maximum).
VIDEO_URL_TTL: Final = 7 * 24 * 3600
#: Presigned links to previews and prepared audio.
OTHER_URL_TTL: Final = 3600
#: The worker's link to the input audio: long enough to start a slow download.
AUDIO_URL_TTL: Final = 3600
