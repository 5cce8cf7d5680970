"""The upload roles as the CLI and the upload page name them: the audio, the
background and artwork images, the captions.

The table itself (which file name endings are audio, images or captions, and
which job field takes which) is ``jobs.constants.UPLOAD_ROLES`` and
``FIELD_ROLES``, the one the API checks uploads and jobs against; this module
only splits the image role into its two uses and words the messages, so the CLI
refuses a file of the wrong kind before uploading anything (a ``.png`` given as
the audio used to be uploaded and fail in the worker) and the page gets the same
lists for its ``accept`` attributes.
"""

from __future__ import annotations

from typing import Final

from api.filetypes import ROLE_NOUNS
from jobs.constants import FIELD_ROLES, UPLOAD_ROLES, extension_of

AUDIO: Final = "audio"
BACKGROUND: Final = "background"
ARTWORK: Final = "artwork"
CAPTIONS: Final = "captions"

#: The job request field that names each role's upload.
ROLE_FIELDS: Final = {AUDIO: "audioKey", BACKGROUND: "options.backgroundKey",
                      ARTWORK: "options.artworkKey", CAPTIONS: "options.captionsKey"}
#: The file name endings each role takes, from the API's own table.
ROLE_EXTENSIONS: Final = {
    role: tuple(ext for ext, kind in UPLOAD_ROLES.items() if kind == FIELD_ROLES[field])
    for role, field in ROLE_FIELDS.items()
}
#: What a file of each kind is, in a message ("cover.png is an image, not audio").
ROLE_KINDS: Final = {role: ROLE_NOUNS[FIELD_ROLES[field]] for role, field in ROLE_FIELDS.items()}


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
