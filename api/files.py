"""Downloads for the local object store: HMAC-signed, expiring links, no auth header.

With S3/R2 storage, links point at the bucket and this route answers 404.

Served as an S3 presigned GET would serve the object: its type (by the key's name,
which uploads have had checked against their first bytes), an attachment unless it
is media (`storage.objects.disposition`), ``nosniff``, and a policy that lets the
file be nothing but itself: no script, no plugin, no frame of another origin, a
sandbox even if a browser did take it for a page.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from flask import Blueprint, request, send_file

from api.errors import NotFound
from api.filetypes import CAPTION_TYPES
from api.service import service
from jobs.constants import extension_of
from storage.errors import ObjectNotFound
from storage.objects import LOCAL_FILES_PATH, LocalObjectStore, disposition

bp = Blueprint("files", __name__, url_prefix=LOCAL_FILES_PATH.rstrip("/"))

#: What a stored file may do when opened: show itself (a video, its poster), nothing else.
FILES_CSP = "default-src 'none'; img-src 'self'; media-src 'self'; sandbox"


@bp.get("/<path:key>")
def download(key: str) -> Any:
    store = service().objects
    if not isinstance(store, LocalObjectStore):
        raise NotFound("No such file.")
    try:
        path = store.verify_link(
            key, request.args.get("expires", ""), request.args.get("signature", "")
        )
    except ObjectNotFound:
        raise NotFound("No such file, or the link has expired.") from None
    mimetype = (CAPTION_TYPES.get(extension_of(key)) or mimetypes.guess_type(key)[0]
                or "application/octet-stream")
    response = send_file(path, mimetype=mimetype, conditional=True, max_age=0)
    response.headers["Content-Disposition"] = disposition(mimetype)
    response.headers["Content-Security-Policy"] = FILES_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
