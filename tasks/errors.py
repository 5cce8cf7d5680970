"""Why a job failed, as the worker reports it.

    JobFailed               code + message, sent to the API by the failure callback
    ├── DownloadFailed      download_failed: the input audio could not be fetched
    ├── UploadFailed        upload_failed: the output could not be stored
    ├── JobCanceled         canceled: the client canceled it; nothing is reported back
    └── JobSplit            not a failure: the job's windows went to the fleet (tasks.split)

Render errors (``render.RenderError``: invalid_audio, render_failed) are turned
into a `JobFailed` with their own code, so the failure callback only knows one type.
"""

from __future__ import annotations

from jobs.errors import CodedError


class JobFailed(CodedError):
    """A failure the user can act on, with a stable code."""

    code = "render_failed"


class DownloadFailed(JobFailed):
    code = "download_failed"


class UploadFailed(JobFailed):
    code = "upload_failed"


class JobCanceled(JobFailed):
    """The API says the job was canceled: stop, clean up, report nothing."""

    code = "canceled"


class JobSplit(JobFailed):
    """The job task's part of a split render is done: its windows were handed out,
    and the join ends the job. Nothing is reported back from this task."""

    code = "split"
