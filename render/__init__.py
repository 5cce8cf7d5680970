"""Audio in, audiogram video out: the pure rendering package.

No Redis, Celery, Flask or boto3 here: ``render_video`` takes a local audio file
and a ``RenderSpec`` and writes a local MP4, reporting progress through a
callback, so the hot path can be tested and benchmarked on its own. The CLI is
``python -m render``.
"""

from render.engine import (
    PreparedAudio,
    ProgressCallback,
    RenderResult,
    prepare_audio,
    render_video,
)
from render.errors import InvalidAudio, RenderError, RenderFailed
from render.spec import PREVIEW_SECONDS, RenderSpec

__all__ = [
    "PREVIEW_SECONDS",
    "InvalidAudio",
    "PreparedAudio",
    "ProgressCallback",
    "RenderError",
    "RenderFailed",
    "RenderResult",
    "RenderSpec",
    "prepare_audio",
    "render_video",
]
