"""POST /v1/uploads: a file stored for later jobs, once its name and its first bytes
agree on what it is (audio, an image, captions or a video); a refused file leaves nothing."""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import TYPE_CHECKING, BinaryIO

from werkzeug.utils import secure_filename

from api import answers
from api.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from api.filetypes import PEEK_BYTES, mismatch, stored_type
from jobs.constants import UPLOAD_EXTENSIONS, UPLOAD_ROLES, extension_of, upload_key
from storage.errors import StorageUnavailable

if TYPE_CHECKING:
    from api.service import Stores

log = logging.getLogger(__name__)


class PeekedStream:
    """A stream whose first bytes were read to look at them, and that gives them
    again, then the rest: the store reads the whole file, nothing is seeked."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self._stream = stream
        head = b""
        while len(head) < size and (chunk := stream.read(size - len(head))):
            head += chunk
        self.head = head
        #: ``head`` is the whole file (the stream ended within it).
        self.whole = len(head) < size
        self._pending = head

    def read(self, size: int = -1) -> bytes:
        if not self._pending:
            return self._stream.read(size)
        if size is None or size < 0:
            data, self._pending = self._pending + self._stream.read(), b""
            return data
        data, self._pending = self._pending[:size], self._pending[size:]
        return data


class CountingReader:
    """Counts and hashes (SHA-256) the bytes a stream gives while the store reads it,
    so the file is read once; stops the upload with 413 the moment it passes
    ``limit`` (the store then discards it)."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self.count = 0
        self._sha256 = hashlib.sha256()

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.count += len(data)
        self._sha256.update(data)
        if self.count > self._limit:
            raise PayloadTooLarge(
                f"The upload is larger than the limit of {self._limit} bytes (MAX_UPLOAD_BYTES)."
            )
        return data


class Uploads:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    def upload(self, tenant: str, filename: str, stream: BinaryIO):
        """Store a file for later jobs, once its name and its first bytes agree on
        what it is (audio, an image, captions or a video); a refused file leaves nothing. It is
        stored with the type its checked kind has, whatever type the client sent."""
        name = secure_filename(filename or "")[-120:].lstrip(".")
        extension = extension_of(name)
        if extension not in UPLOAD_EXTENSIONS:
            raise UnsupportedMediaType(
                "Upload audio, an image, captions or a video "
                f"({', '.join(sorted(UPLOAD_EXTENSIONS))}); got {filename!r}."
            )
        peeked = PeekedStream(stream, PEEK_BYTES)
        if not peeked.head:
            raise BadRequest(
                f"{filename!r} is empty (0 bytes): choose the file again, and if it came from "
                "a download or an export, let that finish first.",
                code="empty_file", field="file",
            )
        problem = mismatch(UPLOAD_ROLES[extension], extension, peeked.head, whole=peeked.whole)
        if problem:
            raise UnsupportedMediaType(problem, code="content_mismatch", field="file")
        media_type = stored_type(UPLOAD_ROLES[extension], extension, peeked.head)
        upload_id = uuid.uuid4().hex
        key = upload_key(upload_id, name)
        # The owner first: if Redis is down, nothing is stored.
        self.stores.jobs.record_upload(upload_id, tenant)
        reader = CountingReader(peeked, self.stores.settings.max_upload_bytes)
        try:
            self.stores.objects.put(key, reader, media_type)
        except BaseException:
            self.stores.jobs.forget_upload(upload_id)
            raise
        try:
            # the render cache names the file by its bytes: the same file uploaded
            # twice is one input
            self.stores.cache.record_sha256(upload_id, reader.sha256)
        except StorageUnavailable:
            # the upload stands; jobs of it only miss the cache
            log.warning("upload %s stored without its hash (Redis unreachable)", upload_id)
        log.info("tenant %s uploaded %s (%d bytes)", tenant, key, reader.count)
        return answers.Upload(audio_key=key, bytes=reader.count).body()
