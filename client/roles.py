"""The CLI's check of a file against the role it is given (the audio, the background
and artwork images, the captions, the videos), before anything is uploaded: a ``.png``
given as the audio used to be uploaded and fail in the worker.

The table is the API's own (``jobs.constants``: ``ROLE_EXTENSIONS``, ``ROLE_KINDS``),
so the CLI refuses exactly what the API would.
"""

from __future__ import annotations

from jobs.constants import (
    ARTWORK,
    AUDIO,
    BACKGROUND,
    BACKGROUND_VIDEO,
    CAPTIONS,
    INTRO,
    OUTRO,
    ROLE_EXTENSIONS,
    ROLE_FIELDS,
    ROLE_KINDS,
    ROLE_NOUNS,
    UPLOAD_ROLES,
    extension_of,
)

__all__ = ["ARTWORK", "AUDIO", "BACKGROUND", "BACKGROUND_VIDEO", "CAPTIONS", "INTRO", "OUTRO",
           "ROLE_EXTENSIONS", "ROLE_FIELDS", "ROLE_KINDS", "kind_of", "role_problem"]


def kind_of(name: str) -> str | None:
    """What a file is by its name (``"an image"``, ...), or None when it is none of them."""
    kind = UPLOAD_ROLES.get(extension_of(name))
    return ROLE_NOUNS[kind] if kind else None


def role_problem(role: str, name: str) -> str | None:
    """Why a file named ``name`` cannot serve as ``role``, or None when it can."""
    allowed = ROLE_EXTENSIONS[role]
    if extension_of(name) in allowed:
        return None
    actually = kind_of(name)
    return (f"{name} is {actually + ', not' if actually else 'not'} {ROLE_KINDS[role]} "
            f"({', '.join(allowed)})")
