"""What the API answers, as pydantic models: the handlers build these and send their
JSON, and ``api.openapi`` generates the document's response schemas from the very
same classes, so an answer cannot differ from what the document says (a model
refuses an unknown field when the handler builds it).

Timestamps stay the strings the job record holds (ISO 8601 UTC with milliseconds);
the document types them ``date-time``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

from jobs.constants import DELIVERY_STATES, KINDS, STATES
from security.secrets import SECRET_PREFIX

#: A job id, as the routes take it.
JOB_ID_PATTERN = r"^[0-9a-f]{32}$"
#: The placeholder ``api.openapi`` turns into a ``$ref`` to a schema pydantic does not know.
COMPONENT = "x-soundreel-component"
#: A timestamp as the record holds it, documented as date-time.
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


def _component(name: str) -> dict[str, str]:
    """A placeholder for a schema pydantic does not know, made a ``$ref`` afterwards."""
    return {COMPONENT: name}




def _answer_schema(schema: dict[str, Any]) -> None:
    """An answer has no defaults (they describe requests) and no generated titles."""
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)
        prop.pop("title", None)


class Answer(BaseModel):
    """Base of the response models: camelCase names, unknown properties refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid",
        json_schema_extra=_answer_schema,
    )

    def body(self) -> dict[str, Any]:
        """The answer's JSON: camelCase, and only the optional fields that were given."""
        return self.model_dump(by_alias=True, exclude_unset=True, mode="json")


class ErrorDetail(Answer):
    code: str = Field(pattern=r"^[a-z_]+$", description="stable, machine-readable")
    message: str = Field(description="what happened and what to do")
    field: str = Field(None, description="the request field at fault, e.g. options.width")


# What each handler answers; the comments name the code each model mirrors.


class Error(Answer):  # api.errors.ApiError.body
    """Every error answer: 4xx and 5xx alike."""

    error: ErrorDetail


class Upload(Answer):  # Uploads.upload
    """A stored file: name it by this key in audioKey, or in options.artworkKey,
    backgroundKey or captionsKey."""

    audio_key: str = Field(pattern=r"^uploads/[0-9a-f]{32}/[^/]+$")
    bytes: int = Field(ge=0)


class JobError(Answer):
    """Why a job ended without a result (``failed``, ``canceled``, ``timed_out``)."""

    code: str = Field(description="e.g. invalid_audio, download_failed, render_failed, "
                                  "time_limit_exceeded, worker_lost, canceled, timed_out")
    message: str


class JobTimings(Answer):
    """Seconds a completed job spent in each phase."""

    queued: float = Field(ge=0)
    rendering: float = Field(ge=0)
    uploading: float = Field(ge=0)


class JobSegments(Answer):
    """A split render's windows, rendered side by side by the fleet."""

    total: int = Field(ge=1)
    done: int = Field(ge=0, description="stored")
    running: int = Field(ge=0, description="being rendered now")


class JobResult(Answer):
    """What a completed job made; which keys are present depends on its kind
    (render: videoKey, thumbnailKey; preview: previewKey, thumbnailKey; prepare:
    preparedKey, peaksKey, sampleRate, channels). thumbnailKey is a JPEG of the
    video's loudest moment. cached is true when the render cache served the job."""

    model_config = ConfigDict(extra="allow")

    video_key: str = None
    preview_key: str = None
    thumbnail_key: str = None
    prepared_key: str = None
    peaks_key: str = None
    format: Literal["mp4", "wav"] = None
    duration: float = Field(None, ge=0, description="seconds")
    sample_rate: int = None
    channels: int = None
    cached: bool = Field(None, description="true: the outputs are copies of an earlier job's "
                                           "with the same audio and options (the render cache)")


#: ``options`` as a job carries them: the accepted `RenderSpec`, every field filled
#: in, under the request's (camelCase) field names.
JOB_OPTIONS = "JobOptions"
Kind = Literal[KINDS]  # type: ignore[valid-type]
Status = Literal[STATES]  # type: ignore[valid-type]


class JobDocument(Answer):  # JobViews.document
    """A job without its links: the body of the webhook sent when it ends."""

    job_id: str = Field(pattern=JOB_ID_PATTERN)
    kind: Kind
    status: Status = Field(description="complete, failed, canceled and timed_out are final")
    progress: float = Field(ge=0, le=1, description="never goes backwards")
    stage: str | None = Field(description="queued, downloading, analyzing, rendering, "
                                          "uploading, finalizing, done")
    created_at: Timestamp
    updated_at: Timestamp
    audio_key: str | None
    audio_url: str | None
    options: Annotated[dict[str, Any], WithJsonSchema(_component(JOB_OPTIONS))]
    result: JobResult | None = Field(description="once complete")
    error: JobError | None
    attempts: int = Field(ge=0, description="deliveries that started work on the job")
    deadline_at: Timestamp | None = Field(description="when the job ends timed_out if it "
                                                     "has not ended")
    webhook_url: str | None
    timings: JobTimings | None = Field(description="once complete")
    segments: JobSegments | None = Field(description="a render split across the workers "
                                                     "(docs/scaling.md); null otherwise")
    queue_position: int | None = Field(ge=0, description="while queued: jobs ahead of it")
    eta: float | None = Field(ge=0, description="seconds until it should end; null until known")


class Job(JobDocument):  # JobViews.view
    """A job: where it stands, and links made fresh on every request."""

    share_url: str = Field(json_schema_extra={"format": "uri"},
                           description="the job's status page, for anyone with the link")
    download_url: str | None = Field(json_schema_extra={"format": "uri"},
                                     description="the output (video > preview > prepared)")
    download_url_expires_at: Timestamp | None
    thumbnail_url: str = Field(None, json_schema_extra={"format": "uri"},
                               description="a render's or preview's JPEG of its loudest "
                                           "moment, the video's poster (1 hour)")
    peaks_url: str = Field(None, json_schema_extra={"format": "uri"},
                           description="a prepare's peaks file (1 hour)")


class JobList(Answer):
    """A page of the tenant's jobs, newest first."""

    jobs: list[Job]
    next_cursor: str | None = Field(description="pass back as cursor; null on the last page")


class DeliveryAttempt(Answer):
    at: Timestamp
    status_code: int | None = Field(description="the receiver's answer; null if none came")
    error: str | None
    duration_ms: int = Field(ge=0)


class Deliveries(Answer):  # Deliveries.of
    """A job's webhook and every attempt to deliver it."""

    job_id: str = Field(pattern=JOB_ID_PATTERN)
    webhook_url: str | None
    webhook_id: str | None = Field(description="msg_<jobId>, the same on every attempt")
    state: Literal[("none", "waiting", *DELIVERY_STATES)] = Field(  # type: ignore[valid-type]
        description="none: no webhookUrl; waiting: the job has not ended")
    next_attempt_at: Timestamp | None
    attempts: list[DeliveryAttempt]


class WebhookSecret(Answer):
    secret: str = Field(pattern=f"^{SECRET_PREFIX}[A-Za-z0-9+/]+=*$",
                        description="Standard Webhooks signing secret")


class Health(Answer):
    status: Literal["ok"]


class ReadinessChecks(Answer):
    redis: str
    storage: str


class WorkersSeen(Answer):
    last_seen_seconds_ago: float | None = Field(
        description="seconds since a worker last called the API; null if none has; "
                    "not a readiness condition (jobs are accepted and queued without workers)")


class Readiness(Answer):  # api.observability.readyz
    status: Literal["ready", "not ready"]
    checks: ReadinessChecks = Field(description="'ok', or what is wrong")
    workers: WorkersSeen


