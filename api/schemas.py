"""Request bodies, validated with pydantic; unknown fields are refused, not ignored."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from jobs.constants import (
    COMPLETE,
    FAILED,
    MAX_AUDIO_SECONDS_CEILING,
    MAX_TIMEOUT_SECONDS,
    MIN_TIMEOUT_SECONDS,
    PREPARE,
    PREVIEW,
    RENDER,
    RESERVED_PREFIXES,
    STATES,
    upload_id_of,
)
from render.spec import RenderSpec
from storage.errors import InvalidKey
from storage.keys import MAX_SEGMENT_BYTES, check_key, long_segment

#: Validation errors that answer 400 with a code of their own (their pydantic type)
#: rather than ``invalid_request``.
CODED_ERRORS = frozenset({"output_key_too_long"})

#: What an output file must end with, per kind.
OUTPUT_EXTENSIONS = {"render": ".mp4", "preview": ".mp4", "prepare": ".wav"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)


class JobRequest(Strict):
    kind: Literal["render", "preview", "prepare"] = "render"
    audio_key: str | None = Field(default=None, alias="audioKey", max_length=512)
    #: Instead of an upload: an http(s) URL the worker fetches (through the SSRF guard).
    audio_url: str | None = Field(default=None, alias="audioUrl", max_length=2048)
    options: RenderSpec = Field(default_factory=RenderSpec)
    output_key: str | None = Field(default=None, alias="outputKey", max_length=512)
    #: Seconds from submission after which the job ends ``timed_out``; the kind's
    #: default (render 6 h, preview and prepare 1 h) when not given.
    timeout_seconds: int | None = Field(
        default=None, alias="timeoutSeconds", ge=MIN_TIMEOUT_SECONDS, le=MAX_TIMEOUT_SECONDS,
        strict=True,
    )
    #: POSTed, signed (Standard Webhooks), when the job ends.
    webhook_url: str | None = Field(default=None, alias="webhookUrl", max_length=2048)

    @field_validator("audio_key")
    @classmethod
    def _audio_key(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            check_key(value)
        except InvalidKey:
            raise ValueError(
                "is not a valid key; use the audioKey POST /v1/uploads returned"
            ) from None
        if upload_id_of(value) is None:
            raise ValueError("must be an audioKey returned by POST /v1/uploads")
        return value

    @field_validator("output_key")
    @classmethod
    def _output_key(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if (segment := long_segment(value)) is not None:
            # refused here, not when the worker stores the output after the render
            raise PydanticCustomError(
                "output_key_too_long",
                "the part '{segment}' is {size} bytes; names between slashes may be at "
                "most {limit} bytes (a file name on a local disk)",
                {"segment": f"{segment[:24]}…",
                 "size": len(segment.encode("utf-8", "surrogatepass")),
                 "limit": MAX_SEGMENT_BYTES},
            )
        try:
            check_key(value)
        except InvalidKey as exc:
            raise ValueError(str(exc)) from None
        if value.startswith(RESERVED_PREFIXES):
            raise ValueError(
                f"may not start with {', '.join(RESERVED_PREFIXES)} (the service writes there)"
            )
        return value

    @model_validator(mode="after")
    def _output_extension(self) -> JobRequest:
        if (self.audio_key is None) == (self.audio_url is None):
            raise ValueError("give either audioKey (an upload) or audioUrl, not both")
        wanted = OUTPUT_EXTENSIONS[self.kind]
        if self.output_key is not None and not self.output_key.endswith(wanted):
            raise ValueError(f"outputKey of a {self.kind} job must end with {wanted}")
        if self.kind == PREPARE and self.options.model_fields_set:
            # "options": {} is what generic clients send for "none": accepted
            raise ValueError("a prepare job takes no options; leave options out or empty")
        return self

    def upload_keys(self) -> dict[str, str]:
        """Every uploaded file the job reads, by request field: all must be the tenant's."""
        keys = {"audioKey": self.audio_key} if self.audio_key else {}
        for role, key in self.options.asset_keys.items():
            keys[f"options.{role}Key"] = key
        return keys


#: An attempt id, as the API hands them out at start.
AttemptId = Annotated[str, Field(max_length=64, pattern=r"^[0-9a-f]{1,64}$")]


class JobListQuery(Strict):
    """``GET /v1/jobs`` query string."""

    status: Literal[STATES] | None = None  # type: ignore[valid-type]
    kind: Literal["render", "preview", "prepare"] | None = None
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=80,
                               pattern=r"^[0-9]{1,12}(\.[0-9]{1,9})?:[0-9a-f]{32}$")


class StartRequest(Strict):
    #: ``nodename/pid`` of the process that will do the work.
    worker: str | None = Field(default=None, max_length=300)
    #: The attempt id the worker proposes; asked again with the same id (its first
    #: answer was lost), the start is idempotent.
    attempt: AttemptId | None = None
    #: ``join``: the fan-in of a split job's windows asks (its start waits for them).
    phase: Literal["join"] | None = None


class SplitPlan(Strict):
    """The planning attempt of a split render: the clip analysed, its windows."""

    attempt: AttemptId
    duration: float = Field(gt=0, le=MAX_AUDIO_SECONDS_CEILING, allow_inf_nan=False)
    loudest: float = Field(ge=0, le=MAX_AUDIO_SECONDS_CEILING, allow_inf_nan=False)
    frames: int = Field(ge=1, le=10**9)
    windows: list[tuple[int, int]] = Field(min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _tiles(self) -> SplitPlan:
        """The windows cover frames 0..frames in order, without gap or overlap."""
        edge = 0
        for first, stop in self.windows:
            if first != edge or stop <= first:
                raise ValueError("windows must cover the frames in order, without gaps")
            edge = stop
        if edge != self.frames:
            raise ValueError("windows must end at the last frame")
        return self


class SegmentProgress(Strict):
    progress: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    attempt: AttemptId


class SegmentEnd(Strict):
    """A window stored (no error), or failed for good (the job fails with it)."""

    attempt: AttemptId
    error: ReportedError | None = None


#: Seconds from an attempt's start to each stage it reached (the worker's clock): a
#: report carries every stage so far, so stage times stay true when reports coalesce.
StageSeconds = Annotated[
    dict[Annotated[str, Field(max_length=40, pattern=r"^[a-z_]+$")],
         Annotated[float, Field(ge=0, le=10**7, allow_inf_nan=False)]],
    Field(max_length=16),
]


class ProgressReport(Strict):
    progress: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    stage: str | None = Field(default=None, max_length=40, pattern=r"^[a-z_]+$")
    attempt: AttemptId
    #: The audio's length, once the worker has measured it (for ``eta``).
    audio_seconds: float | None = Field(default=None, alias="audioSeconds", ge=0,
                                        le=MAX_AUDIO_SECONDS_CEILING,
                                        allow_inf_nan=False)
    stages: StageSeconds | None = None


class CacheQuery(Strict):
    """A worker that fetched a job's ``audioUrl``: may the render cache serve it?"""

    attempt: AttemptId
    audio_sha256: str = Field(alias="audioSha256", pattern=r"^[0-9a-f]{64}$")


class ReportedError(Strict):
    code: str = Field(max_length=64, pattern=r"^[a-z_]+$")
    message: str = Field(max_length=2000)


class DeliveryOutcome(Strict):
    """A worker's report of one client webhook attempt."""

    webhook_id: str = Field(alias="webhookId", max_length=100)
    status_code: int | None = Field(default=None, alias="statusCode", ge=100, le=599)
    error: str | None = Field(default=None, max_length=500)
    duration_ms: int = Field(alias="durationMs", ge=0, le=10**8)
    forbidden: bool = False
    #: The token the delivery task was handed out with; a stale one is refused (409).
    claim: str | None = Field(default=None, max_length=64, pattern=r"^[0-9a-f]+$")


class ReleaseRequest(Strict):
    """A worker's parent about the attempt its dead child was running."""

    worker: str = Field(max_length=300)
    error: ReportedError | None = None


#: Seconds of audio or video a worker may report: a number (never a string), finite.
Seconds = Annotated[float, Field(strict=True, ge=0, le=MAX_AUDIO_SECONDS_CEILING,
                                 allow_inf_nan=False)]


class VideoResult(Strict):
    """What a render or preview job made (its own task, the join of a split render, or
    copies from the render cache, which add ``cached``)."""

    thumbnail_key: str = Field(alias="thumbnailKey", max_length=512)
    format: Literal["mp4"]
    duration: Seconds
    cached: Literal[True] | None = None


class RenderResult(VideoResult):
    video_key: str = Field(alias="videoKey", max_length=512)


class PreviewResult(VideoResult):
    preview_key: str = Field(alias="previewKey", max_length=512)


class PrepareResult(Strict):
    prepared_key: str = Field(alias="preparedKey", max_length=512)
    peaks_key: str = Field(alias="peaksKey", max_length=512)
    format: Literal["wav"]
    duration: Seconds
    # the decoder's own limits (render.audio: 8..192 kHz, at most 8 channels)
    sample_rate: int = Field(alias="sampleRate", strict=True, ge=8000, le=192_000)
    channels: int = Field(strict=True, ge=1, le=8)


#: The result a worker may report, per job kind: every field typed, none unknown.
RESULT_MODELS: dict[str, type[Strict]] = {
    RENDER: RenderResult, PREVIEW: PreviewResult, PREPARE: PrepareResult,
}


class WorkerReport(Strict):
    job_id: str = Field(alias="jobId", max_length=64)
    status: Literal[COMPLETE, FAILED]  # type: ignore[valid-type]
    attempt: AttemptId
    result: dict[str, Any] | None = None
    error: ReportedError | None = None
    #: The attempt's last progress and its stage times: the hand-off carries them, so
    #: the task hands off without waiting for its last PATCH.
    progress: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    stage: str | None = Field(default=None, max_length=40, pattern=r"^[a-z_]+$")
    stages: StageSeconds | None = None

    @model_validator(mode="after")
    def _one_of(self) -> WorkerReport:
        if self.status == COMPLETE and self.result is None:
            raise ValueError("a complete report needs result")
        if self.status == FAILED and self.error is None:
            raise ValueError("a failed report needs error")
        return self
