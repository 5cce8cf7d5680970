"""Audio in, audiogram video out: the pure rendering package.

No Redis, Celery, Flask or boto3 here: ``render_video`` takes a local audio file
and a ``RenderSpec`` and writes a local MP4, reporting progress through a
callback, so the hot path can be tested and benchmarked on its own. The CLI is
``python -m render``.

The names below are imported on first use (PEP 562), so ``render.spec`` (the
options' pydantic model) loads without numpy or Pillow, and nothing loads moviepy
until ``audiogram_clip`` (render.clip) is asked for.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: Each public name, and the module that defines it.
_EXPORTS = {
    "PREVIEW_SECONDS": "render.spec",
    "STYLES": "render.spec",
    "Assets": "render.spec",
    "RenderSpec": "render.spec",
    "InvalidAudio": "render.errors",
    "InvalidImage": "render.errors",
    "RenderCanceled": "render.errors",
    "RenderError": "render.errors",
    "RenderFailed": "render.errors",
    "InvalidCaptions": "render.captions",
    "extract_frame": "render.encoder",
    "PreparedAudio": "render.engine",
    "ProgressCallback": "render.engine",
    "RenderResult": "render.engine",
    "prepare_audio": "render.engine",
    "render_frames": "render.engine",
    "render_video": "render.engine",
    "write_peaks": "render.peaks",
    "AudiogramClip": "render.clip",
    "audiogram_clip": "render.clip",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'render' has no attribute {name!r}")
