"""Audio in, audiogram video out: the pure rendering package.

No Redis, Celery, Flask or boto3 here: ``render_video`` takes a local audio file
and a ``RenderSpec`` and writes a local MP4, reporting progress through a
callback, so the hot path can be tested and benchmarked on its own. The CLI is
``python -m render``.
"""

from render.captions import InvalidCaptions
from render.encoder import extract_frame
from render.engine import (
    PreparedAudio,
    ProgressCallback,
    RenderResult,
    prepare_audio,
    render_frames,
    render_video,
)
from render.errors import InvalidAudio, InvalidImage, RenderCanceled, RenderError, RenderFailed
from render.peaks import write_peaks
from render.spec import PREVIEW_SECONDS, STYLES, Assets, RenderSpec

__all__ = [
    "PREVIEW_SECONDS",
    "STYLES",
    "Assets",
    "InvalidAudio",
    "InvalidCaptions",
    "InvalidImage",
    "PreparedAudio",
    "RenderCanceled",
    "ProgressCallback",
    "RenderError",
    "RenderFailed",
    "RenderResult",
    "RenderSpec",
    "extract_frame",
    "prepare_audio",
    "render_frames",
    "render_video",
    "write_peaks",
]
