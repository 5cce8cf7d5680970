"""Every Redis key prefix, object-key layout, job state and link lifetime, in one place.

Never build one of these strings anywhere else: call the helpers here.
"""

from __future__ import annotations

from typing import Final

# --- job states (see jobs.store for the transition table) -----------------

#: Accepted and enqueued; no worker has reported yet.
QUEUED: Final = "queued"
#: A worker has reported progress.
RUNNING: Final = "running"
#: The output is stored; ``result`` is set. Terminal.
COMPLETE: Final = "complete"
#: The job ended with an error; ``error`` is set. Terminal.
FAILED: Final = "failed"
#: The client canceled the job (DELETE) before it ended. Terminal.
CANCELED: Final = "canceled"
#: The job passed its deadline (``timeoutSeconds``) before it ended. Terminal.
TIMED_OUT: Final = "timed_out"

STATES: Final = (QUEUED, RUNNING, COMPLETE, FAILED, CANCELED, TIMED_OUT)
TERMINAL_STATES: Final = frozenset({COMPLETE, FAILED, CANCELED, TIMED_OUT})

# --- client webhook deliveries (see jobs.deliveries for their table) -------------

#: Due: the next try is scheduled (or running).
DELIVERY_PENDING: Final = "pending"
#: The receiver answered 2xx.
DELIVERY_DELIVERED: Final = "delivered"
#: Given up: a final answer, a forbidden URL, or 3 days of tries.
DELIVERY_FAILED: Final = "failed"
DELIVERY_STATES: Final = (DELIVERY_PENDING, DELIVERY_DELIVERED, DELIVERY_FAILED)

# --- stages, in the order a job goes through them ------------------------------

#: What a job is doing, shown to clients. A report never moves a job to an
#: earlier stage (a late PATCH cannot turn "uploading" back into "rendering").
STAGE_QUEUED: Final = "queued"
STAGE_DOWNLOADING: Final = "downloading"
#: Probing the audio and setting the scene up; for prepare jobs, the whole decode.
STAGE_ANALYZING: Final = "analyzing"
STAGE_RENDERING: Final = "rendering"  # render and preview jobs
STAGE_UPLOADING: Final = "uploading"
#: Stored; the worker is reporting the end.
STAGE_FINALIZING: Final = "finalizing"
STAGE_DONE: Final = "done"
STAGES: Final = (
    STAGE_QUEUED, STAGE_DOWNLOADING, STAGE_ANALYZING, STAGE_RENDERING, STAGE_UPLOADING,
    STAGE_FINALIZING, STAGE_DONE,
)

# --- job kinds ---------------------------------------------------------------

#: The full video.
RENDER: Final = "render"
#: A short low-resolution clip of the first seconds.
PREVIEW: Final = "preview"
#: The audio decoded and normalised to a 44.1 kHz WAV.
PREPARE: Final = "prepare"

KINDS: Final = (RENDER, PREVIEW, PREPARE)

#: The kinds the render cache serves (docs/cache.md). Not prepare: a decode runs at
#: about a hundred times realtime, so copying a prepared WAV (about 600 MB an hour of
#: audio) costs about what preparing it again does, and doubles what is stored.
CACHED_KINDS: Final = (RENDER, PREVIEW)

#: The broker queue each kind goes to: full renders on one, the short jobs on the
#: other, so a long render never delays a preview (run workers per queue).
RENDER_QUEUE: Final = "render"
PREVIEW_QUEUE: Final = "preview"
QUEUE_BY_KIND: Final = {RENDER: RENDER_QUEUE, PREVIEW: PREVIEW_QUEUE, PREPARE: PREVIEW_QUEUE}

#: How long job records (and upload ownership) are kept in Redis. A claimed
#: ``outputKey`` is kept for good (``output_redis_key``).
RECORD_TTL_SECONDS: Final = 30 * 24 * 3600

#: The longest audio a deployment may accept (MAX_AUDIO_SECONDS), and the largest
#: length a worker may report for it: about 11.5 days.
MAX_AUDIO_SECONDS_CEILING: Final = 10**6

#: A job that has not ended this long after it was submitted ends ``timed_out``
#: (the client may ask for less, or up to MAX_TIMEOUT_SECONDS, with ``timeoutSeconds``).
#: Each is several times the kind's hard time limit: room for MAX_ATTEMPTS tries
#: and a queue.
DEFAULT_TIMEOUTS: Final = {RENDER: 6 * 3600, PREVIEW: 3600, PREPARE: 3600}
MIN_TIMEOUT_SECONDS: Final = 10
MAX_TIMEOUT_SECONDS: Final = 24 * 3600

#: How long a job's lease is held once its worker has handed the outcome off (outputs
#: stored, the render task returning): the result callback reports the end within
#: this, on the callbacks queue; if it does not, the reaper ends the job from the
#: hand-off itself. Nothing is rendered twice in that gap.
HANDOFF_SECONDS: Final = 300

#: Split renders (a long ``render`` job as windows rendered side by side, then joined).
#: Where the planning attempt leaves the progress bar when it hands the windows out;
#: the windows' mean progress fills it up to SPLIT_JOINED_AT, and the join the rest.
SPLIT_PLANNED_AT: Final = 0.10
SPLIT_JOINED_AT: Final = 0.95

# --- task ids of a split job's windows and join (units of fair share) ------------


def segment_task_id(job_id: str, index: int) -> str:
    """Fixed per window: the reaper finds a window's message in the broker by it."""
    return f"{job_id}.{index}"


def join_task_id(job_id: str) -> str:
    return f"{job_id}.join"


def unit_parts(unit: str) -> tuple[str, int | None, bool]:
    """A fair-share unit's job id, window index (None if not a window) and whether it
    is the join: the inverse of the two task ids above (a job id has no dot)."""
    job_id, _, rest = unit.partition(".")
    if rest == "join":
        return job_id, None, True
    return job_id, int(rest) if rest.isdigit() else None, False


# --- Redis keys ----------------------------------------------------------------

REDIS_PREFIX: Final = "soundreel:"


def job_redis_key(job_id: str) -> str:
    return f"{REDIS_PREFIX}job:{job_id}"


def lease_redis_key(job_id: str) -> str:
    """The current attempt's lease: its id, with a TTL the worker's heartbeat renews.
    Gone means the worker holding the job is dead (or cut off) and may be replaced."""
    return f"{REDIS_PREFIX}lease:{job_id}"


def segment_lease_redis_key(job_id: str, index: int) -> str:
    """The lease of the attempt rendering window ``index`` of a split job."""
    return f"{REDIS_PREFIX}lease:{job_id}:{index}"


#: Split jobs with intermediate objects under ``work/{jobId}/`` (hash: job id -> its
#: number of windows), until the reaper has removed them after the job ended.
WORK_REDIS_KEY: Final = f"{REDIS_PREFIX}work"


def delivery_redis_key(job_id: str) -> str:
    """The client webhook delivery of an ended job (`jobs.deliveries`)."""
    return f"{REDIS_PREFIX}delivery:{job_id}"


#: Webhook deliveries waiting for their next attempt, scored by when (epoch seconds).
DUE_DELIVERIES_REDIS_KEY: Final = f"{REDIS_PREFIX}deliveries:due"
#: job id -> the token of the delivery task handed out last: only that task's
#: attempt counts (an older copy that ran late is refused).
DELIVERY_CLAIMS_REDIS_KEY: Final = f"{REDIS_PREFIX}deliveries:claims"

def queued_redis_key(queue: str) -> str:
    """Jobs waiting in a broker queue (released by fair share, not started), scored by
    when they were sent: a released job's rank is its ``queuePosition``."""
    return f"{REDIS_PREFIX}queued:{queue}"


def tenant_queued_redis_key(tenant: str) -> str:
    """A tenant's jobs not yet started (``queued``), scored by creation time: what the
    queued-jobs limit counts (``api.limits``)."""
    return f"{REDIS_PREFIX}tenant:{tenant}:queued"


def rate_bucket_redis_key(tenant: str) -> str:
    """A tenant's submission token bucket (hash: ``tokens``, ``at``), ``jobs.limits``."""
    return f"{REDIS_PREFIX}tenant:{tenant}:bucket"


# Fair share (``jobs.fairshare``): per queue, each tenant's work waits in its own list
# and is moved into the broker a unit at a time, at most TENANT_MAX_INFLIGHT units of a
# tenant in flight (sent and not ended). A unit is a task id: the job's own (its job
# id), a split window's (``{jobId}.{index}``) or a join's (``{jobId}.join``).


def fair_pending_redis_key(queue: str, tenant: str) -> str:
    """A tenant's units waiting for a turn in ``queue`` (a list, oldest first)."""
    return f"{REDIS_PREFIX}fair:{queue}:pending:{tenant}"


def fair_inflight_redis_key(queue: str, tenant: str) -> str:
    """A tenant's units sent to ``queue`` and not ended (hash: unit -> when it was
    released, epoch seconds): its in-flight count, and what the reaper checks is
    still in the broker."""
    return f"{REDIS_PREFIX}fair:{queue}:inflight:{tenant}"


def fair_tenants_redis_key(queue: str) -> str:
    """Tenants with units pending or in flight in ``queue`` (a set)."""
    return f"{REDIS_PREFIX}fair:{queue}:tenants"


def tenant_jobs_redis_key(tenant: str) -> str:
    """A tenant's jobs, scored by creation time: ``GET /v1/jobs``, newest first."""
    return f"{REDIS_PREFIX}tenant:{tenant}:jobs"


#: Per kind: the moving average of seconds of work per second of audio, and of
#: seconds per job, measured on this deployment (the ``eta`` of jobs).
SPEED_REDIS_KEY: Final = f"{REDIS_PREFIX}speed"

#: When a worker last called the API (epoch seconds): in /readyz's body and the exporter's metrics.
WORKER_SEEN_REDIS_KEY: Final = f"{REDIS_PREFIX}worker-seen"

#: Held by the reaper while it runs, so overlapping ticks do not repeat its work.
REAPER_LOCK_REDIS_KEY: Final = f"{REDIS_PREFIX}reaper"

#: Jobs not yet ended, scored by their deadline (epoch seconds): what the reaper walks.
ACTIVE_JOBS_REDIS_KEY: Final = f"{REDIS_PREFIX}active"


def upload_redis_key(upload_id: str) -> str:
    """Who owns an upload: a job may only read files its own tenant uploaded."""
    return f"{REDIS_PREFIX}upload:{upload_id}"


def upload_sha256_redis_key(upload_id: str) -> str:
    """The SHA-256 of an upload's bytes, taken as it was stored (the render cache's
    name for the file); beside its owner record, with the same lifetime."""
    return f"{REDIS_PREFIX}upload:{upload_id}:sha256"


def render_cache_redis_key(tenant: str, digest: str) -> str:
    """A tenant's render cache entry: the finished job whose outputs a job with the
    same inputs (``digest``, `api.cache.cache_digest`) reuses. Per tenant by its key,
    so an entry never serves another tenant."""
    return f"{REDIS_PREFIX}cache:{tenant}:{digest}"


def cache_fill_redis_key(job_id: str) -> str:
    """The cache entry a job fills if it completes (its render cache key, set when the
    job missed the cache)."""
    return f"{REDIS_PREFIX}cache-fill:{job_id}"


def idempotency_redis_key(tenant: str, digest: str) -> str:
    """A tenant's ``Idempotency-Key`` (hashed): the request it named and its response."""
    return f"{REDIS_PREFIX}idem:{tenant}:{digest}"


#: How long an ``Idempotency-Key`` is remembered.
IDEMPOTENCY_TTL_SECONDS: Final = 24 * 3600


def output_redis_key(output_key: str) -> str:
    """Who owns a client-chosen ``outputKey``: no tenant can overwrite another's. No
    expiry: the claim lives as long as the object may (objects never expire)."""
    return f"{REDIS_PREFIX}output:{output_key}"


#: Every folder that some claimed ``outputKey`` lies in (a set): a key that is one of
#: them, or that lies in a claimed key, could not be stored (a file and a folder of
#: one name), so it is refused at submission.
OUTPUT_FOLDERS_REDIS_KEY: Final = f"{REDIS_PREFIX}output-folders"


# --- uploads -------------------------------------------------------------------

#: What an uploaded file is for. The name's ending decides (POST /v1/uploads checks
#: that the first bytes agree), and a job may only name an upload where its role fits.
ROLE_AUDIO: Final = "audio"
ROLE_IMAGE: Final = "image"
ROLE_CAPTIONS: Final = "captions"
ROLE_VIDEO: Final = "video"

#: Every file name ending POST /v1/uploads takes, and the role of each.
UPLOAD_ROLES: Final = {
    **dict.fromkeys((".wav", ".mp3", ".m4a", ".aac", ".mp4", ".ogg", ".oga", ".opus", ".flac",
                     ".aif", ".aiff", ".webm", ".wma"), ROLE_AUDIO),
    **dict.fromkeys((".png", ".jpg", ".jpeg", ".webp"), ROLE_IMAGE),
    **dict.fromkeys((".srt", ".vtt", ".json"), ROLE_CAPTIONS),
    ".mov": ROLE_VIDEO,
}
UPLOAD_EXTENSIONS: Final = frozenset(UPLOAD_ROLES)
#: The endings each role takes. MP4 and WebM carry audio or video, so their files
#: serve both roles (an audio-only MP4 named as an intro fails as ``invalid_video``
#: when the worker finds no picture in it).
VIDEO_EXTENSIONS: Final = (".mp4", ".mov", ".webm")
KIND_EXTENSIONS: Final = {
    **{kind: tuple(ext for ext, role in UPLOAD_ROLES.items() if role == kind)
       for kind in (ROLE_AUDIO, ROLE_IMAGE, ROLE_CAPTIONS)},
    ROLE_VIDEO: VIDEO_EXTENSIONS,
}

#: The role an upload must have in each job field that names one (as
#: ``JobRequest.upload_keys`` names the fields).
FIELD_ROLES: Final = {
    "audioKey": ROLE_AUDIO,
    "options.backgroundKey": ROLE_IMAGE,
    "options.artworkKey": ROLE_IMAGE,
    "options.captionsKey": ROLE_CAPTIONS,
    "options.backgroundVideoKey": ROLE_VIDEO,
    "options.introKey": ROLE_VIDEO,
    "options.outroKey": ROLE_VIDEO,
}


#: How a message names each role ("cover.png is an image, not audio").
ROLE_NOUNS: Final = {ROLE_AUDIO: "audio", ROLE_IMAGE: "an image", ROLE_CAPTIONS: "captions",
                     ROLE_VIDEO: "a video"}

#: The uploads a job takes, as the CLI and the upload page name them, and the job
#: request field of each (the image role has two uses: background and artwork).
AUDIO: Final = "audio"
BACKGROUND: Final = "background"
ARTWORK: Final = "artwork"
CAPTIONS: Final = "captions"
BACKGROUND_VIDEO: Final = "background-video"
INTRO: Final = "intro"
OUTRO: Final = "outro"
ROLE_FIELDS: Final = {AUDIO: "audioKey", BACKGROUND: "options.backgroundKey",
                      ARTWORK: "options.artworkKey", CAPTIONS: "options.captionsKey",
                      BACKGROUND_VIDEO: "options.backgroundVideoKey",
                      INTRO: "options.introKey", OUTRO: "options.outroKey"}
#: The file name endings each of those takes, and what such a file is called.
ROLE_EXTENSIONS: Final = {role: KIND_EXTENSIONS[FIELD_ROLES[field]]
                          for role, field in ROLE_FIELDS.items()}
ROLE_KINDS: Final = {role: ROLE_NOUNS[FIELD_ROLES[field]] for role, field in ROLE_FIELDS.items()}


def extension_of(name: str) -> str:
    """A file name's ending, lower case with its dot (``".mp3"``); "" when it has none."""
    base = name.rsplit("/", 1)[-1]
    return "." + base.rsplit(".", 1)[-1].lower() if "." in base else ""


def upload_role(key: str) -> str | None:
    """The role of an upload (by its key's file name), or None if no role fits."""
    return UPLOAD_ROLES.get(extension_of(key))


def upload_fits(role: str, key: str) -> bool:
    """Whether the upload at ``key`` (by its file name) can serve as ``role``."""
    return extension_of(key) in KIND_EXTENSIONS[role]


# --- object keys ---------------------------------------------------------------

UPLOADS_PREFIX: Final = "uploads/"
RENDERS_PREFIX: Final = "renders/"
PREVIEWS_PREFIX: Final = "previews/"
PREPARED_PREFIX: Final = "prepared/"
#: A split render's intermediate objects, deleted once its job has ended.
WORK_PREFIX: Final = "work/"
#: Prefixes the service writes itself; a client's ``outputKey`` may not point into them.
RESERVED_PREFIXES: Final = (UPLOADS_PREFIX, RENDERS_PREFIX, PREVIEWS_PREFIX, PREPARED_PREFIX,
                            WORK_PREFIX)


def features_key(job_id: str) -> str:
    """A split render's per-frame features of the whole clip (``Analysis.save``)."""
    return f"{WORK_PREFIX}{job_id}/features.npz"


def sound_key(job_id: str) -> str:
    """A split render's audio, encoded once for the join."""
    return f"{WORK_PREFIX}{job_id}/audio.m4a"


def window_key(job_id: str, index: int) -> str:
    """Window ``index`` of a split render, encoded (video only)."""
    return f"{WORK_PREFIX}{job_id}/window-{index:05d}.mp4"


def source_key(job_id: str) -> str:
    """A split render's input fetched from an ``audioUrl`` (an upload is read in place)."""
    return f"{WORK_PREFIX}{job_id}/source"


def work_keys(job_id: str, windows: int) -> list[str]:
    """Every object a split render with ``windows`` units may leave under ``work/``."""
    return [features_key(job_id), sound_key(job_id), source_key(job_id),
            *(window_key(job_id, index) for index in range(windows))]


def upload_key(upload_id: str, name: str) -> str:
    return f"{UPLOADS_PREFIX}{upload_id}/{name}"


def upload_id_of(key: str) -> str | None:
    """The upload id in an ``uploads/{id}/{name}`` key, or None if it is not one."""
    parts = key.split("/")
    if len(parts) != 3 or f"{parts[0]}/" != UPLOADS_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1]


def default_output_key(kind: str, job_id: str) -> str:
    """Where a job's output goes unless the job names an ``outputKey``."""
    if kind == RENDER:
        return f"{RENDERS_PREFIX}{job_id}/output.mp4"
    if kind == PREVIEW:
        return f"{PREVIEWS_PREFIX}{job_id}/preview.mp4"
    if kind == PREPARE:
        return f"{PREPARED_PREFIX}{job_id}/audio.wav"
    raise ValueError(f"unknown job kind {kind!r}")


def thumbnail_key(kind: str, job_id: str) -> str:
    """A render's or a preview's JPEG of its loudest moment (``thumbnailKey``): the
    poster of the video on its status page, and what a list of videos shows."""
    if kind == RENDER:
        return f"{RENDERS_PREFIX}{job_id}/thumbnail.jpg"
    if kind == PREVIEW:
        return f"{PREVIEWS_PREFIX}{job_id}/thumbnail.jpg"
    raise ValueError(f"a {kind} job makes no thumbnail")


def peaks_key(job_id: str) -> str:
    """A prepared audio's peaks (audiowaveform JSON)."""
    return f"{PREPARED_PREFIX}{job_id}/peaks.json"


def expected_result_keys(kind: str, job_id: str, output_key: str) -> dict[str, str]:
    """Every object key a job's result may name, by result field."""
    keys = {RESULT_KEY_FIELD_BY_KIND[kind]: output_key}
    if kind in (RENDER, PREVIEW):
        keys["thumbnailKey"] = thumbnail_key(kind, job_id)
    if kind == PREPARE:
        keys["peaksKey"] = peaks_key(job_id)
    return keys


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
