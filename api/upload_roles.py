"""Which files each upload role takes: the audio, the background and artwork images,
the captions. One table for every caller that checks a file before it is used.

The ``soundreel`` CLI refuses a file of the wrong kind before uploading anything (a
``.png`` given as the audio used to be uploaded and fail in the worker), the upload
page gets the same lists for its ``accept`` attributes and its own check, and the API
can refuse a key given in the wrong role. Only constants and pure functions, no
imports of our own: importing this pulls in nothing of the server.
"""

from __future__ import annotations

from typing import Final

AUDIO: Final = "audio"
BACKGROUND: Final = "background"
ARTWORK: Final = "artwork"
CAPTIONS: Final = "captions"

#: Audio containers ffmpeg decodes (video containers too: their audio is used).
AUDIO_EXTENSIONS: Final = (".mp3", ".wav", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".flac",
                           ".aif", ".aiff", ".webm", ".wma", ".mp4")
#: Still images the renderer reads (Pillow), for the background and the artwork.
IMAGE_EXTENSIONS: Final = (".png", ".jpg", ".jpeg", ".webp")
#: Caption files the renderer parses.
CAPTIONS_EXTENSIONS: Final = (".srt", ".vtt")

#: The file name endings each role takes.
ROLE_EXTENSIONS: Final = {
    AUDIO: AUDIO_EXTENSIONS,
    BACKGROUND: IMAGE_EXTENSIONS,
    ARTWORK: IMAGE_EXTENSIONS,
    CAPTIONS: CAPTIONS_EXTENSIONS,
}
#: What a file of each role is, in a message ("cover.png is an image, not audio").
ROLE_KINDS: Final = {AUDIO: "audio", BACKGROUND: "an image", ARTWORK: "an image",
                     CAPTIONS: "captions"}
#: The job request field that names each role's upload.
ROLE_FIELDS: Final = {AUDIO: "audioKey", BACKGROUND: "options.backgroundKey",
                      ARTWORK: "options.artworkKey", CAPTIONS: "options.captionsKey"}
#: Every ending ``POST /v1/uploads`` accepts (api.service.UPLOAD_EXTENSIONS must equal it).
UPLOAD_EXTENSIONS: Final = frozenset(ext for exts in ROLE_EXTENSIONS.values() for ext in exts)


def extension_of(name: str) -> str:
    """``".mp3"`` for ``"Talk.MP3"``; ``""`` when the name has none."""
    base = name.rsplit("/", 1)[-1]
    return "." + base.rsplit(".", 1)[-1].lower() if "." in base.strip(".") else ""


def kind_of(name: str) -> str | None:
    """What a file is by its name (``"an image"``, ...), or None when it is none of them."""
    extension = extension_of(name)
    return next((ROLE_KINDS[role] for role, exts in ROLE_EXTENSIONS.items()
                 if extension in exts), None)


def role_problem(role: str, name: str) -> str | None:
    """Why a file named ``name`` cannot serve as ``role``, or None when it can."""
    allowed = ROLE_EXTENSIONS[role]
    if extension_of(name) in allowed:
        return None
    actually = kind_of(name)
    return (f"{name} is {actually + ', not' if actually else 'not'} {ROLE_KINDS[role]} "
            f"({', '.join(allowed)})")
