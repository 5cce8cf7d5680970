"""Downloads for the local object store: HMAC-signed, expiring links, no auth header.

With S3/R2 storage, links point at the bucket and this route answers 404.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from flask import Blueprint, request, send_file

from api.errors import NotFound
from api.service import service
from storage.errors import ObjectNotFound
from storage.objects import LOCAL_FILES_PATH, LocalObjectStore

bp = Blueprint("files", __name__, url_prefix=LOCAL_FILES_PATH.rstrip("/"))


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
    mimetype = mimetypes.guess_type(key)[0] or "application/octet-stream"
    return send_file(path, mimetype=mimetype, conditional=True, max_age=0)
