"""Object storage: a small `ObjectStore` port with a local-disk and an S3/R2 adapter.

Both adapters pass the same contract tests (tests/test_objects.py). Keys are
``/``-separated relative paths such as ``renders/{jobId}/output.mp4``.

The local store is the embedded default for one host (or a shared volume): its
links are HMAC-signed, expiring URLs served by the API's ``/files/`` route. The S3
store hands out S3 presigned URLs, so downloads never touch the API.

A put that fails never leaves a partial object: the local store writes a temp file
and renames it; S3 shows an object only once a single PUT or a multipart upload's
Complete succeeds, and boto3's transfer manager aborts a multipart upload that
failed part-way (a store too broken to take the abort keeps the parts, invisible,
until the bucket's lifecycle rule for incomplete multipart uploads removes them).
A PUT the store carried out but whose answer was lost may leave the whole object;
callers never reference a key whose put raised. tests/test_storage_faults.py pins
this against a store that fails and hangs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import quote, urlencode

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from config.settings import LocalStorage, S3Storage, Settings
from storage.errors import InvalidKey, ObjectNotFound, StorageUnavailable
from storage.keys import check_key

#: The API route that serves local-store links.
LOCAL_FILES_PATH = "/files/"
#: The only types a browser is let show in place: the media the service stores. Any
#: other (captions, peaks JSON, anything unknown) is served as an attachment.
INLINE_TYPES = ("audio/", "video/", "image/png", "image/jpeg", "image/webp")
#: An S3 copy of an object past CopyObject's 5 GiB: in parts of 512 MiB (S3 allows
#: up to 5 GiB a part and 10,000 parts).
LARGE_COPY = TransferConfig(multipart_threshold=512 * 1024 * 1024,
                            multipart_chunksize=512 * 1024 * 1024)


def disposition(content_type: str | None) -> str:
    """``Content-Disposition`` for an object of this type: ``inline`` for the media the
    service stores, else ``attachment``, so no stored file is ever opened as a page."""
    return "inline" if content_type and content_type.startswith(INLINE_TYPES) else "attachment"


class ObjectStore(Protocol):
    def put(self, key: str, data: BinaryIO, content_type: str | None = None) -> None:
        """Store the stream under ``key``, replacing any object there. A link to it
        serves ``content_type`` (S3 keeps it; the local store's ``/files/`` route
        goes by the key's name), as an attachment unless it is media (`disposition`)."""

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None: ...

    def get_file(self, key: str, dest: Path) -> None:
        """Copy the object to a local file; `ObjectNotFound` if there is none."""

    def copy(self, source: str, dest: str) -> None:
        """Store the object at ``source`` under ``dest`` too, inside the store (no bytes
        through this process); `ObjectNotFound` if ``source`` is gone. The two are
        independent afterwards: deleting or replacing one leaves the other."""

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int:
        """Bytes stored under ``key``; `ObjectNotFound` if there is none."""

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""

    def presigned_url(self, key: str, expires_in: int) -> str:
        """A URL anyone can GET, without credentials, for ``expires_in`` seconds."""

    def ping(self) -> None:
        """Raise `StorageUnavailable` when the store cannot be reached."""


class LocalObjectStore:
    """Files under a root directory, written atomically (temp file + rename)."""

    def __init__(self, root: Path, *, base_url: str, signing_key: bytes) -> None:
        self.root = root
        self.base_url = base_url.rstrip("/")
        self._signing_key = signing_key
        self._real_root = root.resolve()

    def path(self, key: str) -> Path:
        """Where ``key`` lives, if that is inside the root once every symlink on the way
        is followed; `InvalidKey` otherwise: a link planted in the store never serves,
        copies or overwrites a file outside it."""
        path = self.root / check_key(key)
        if not path.resolve().is_relative_to(self._real_root):
            raise InvalidKey(key)
        return path

    def _existing(self, key: str) -> Path:
        """The file stored under ``key``; `ObjectNotFound` if there is none (or only a
        link out of the store)."""
        try:
            path = self.path(key)
        except InvalidKey:
            raise ObjectNotFound(key) from None
        if not path.is_file():
            raise ObjectNotFound(key)
        return path

    def put(self, key: str, data: BinaryIO, content_type: str | None = None) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(data, out, 1024 * 1024)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        with open(path, "rb") as data:
            self.put(key, data, content_type)

    def get_file(self, key: str, dest: Path) -> None:
        shutil.copyfile(self._existing(key), dest)

    def copy(self, source: str, dest: str) -> None:
        """A hard link where the file system allows (instant, no space), else a byte copy;
        either way through a temp name and a rename. A link is safe because no object is
        changed in place: `put` and `delete` replace or remove a name, never the file."""
        target, origin = self.path(dest), self._existing(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".incoming-{uuid.uuid4().hex}"
        try:
            try:
                os.link(origin, tmp)
            except FileNotFoundError:
                raise ObjectNotFound(source) from None
            except OSError:  # another device, or no links on this file system
                shutil.copyfile(origin, tmp)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def exists(self, key: str) -> bool:
        try:
            self._existing(key)
        except ObjectNotFound:
            return False
        return True

    def size(self, key: str) -> int:
        return self._existing(key).stat().st_size

    def delete(self, key: str) -> None:
        path = self.root / check_key(key)
        if path.parent.resolve().is_relative_to(self._real_root):
            path.unlink(missing_ok=True)  # a link itself, never what it points at

    def presigned_url(self, key: str, expires_in: int) -> str:
        check_key(key)
        expires = int(time.time()) + expires_in
        query = urlencode({"expires": expires, "signature": self._sign(key, expires)})
        return f"{self.base_url}{LOCAL_FILES_PATH}{quote(key)}?{query}"

    def verify_link(self, key: str, expires: str, signature: str) -> Path:
        """The file a signed link names, if the signature is good and not expired.

        Raises `ObjectNotFound` for every failure alike, so a link prober learns nothing.
        """
        try:
            check_key(key)
            deadline = int(expires)
        except (InvalidKey, ValueError):
            raise ObjectNotFound(key) from None
        good = hmac.compare_digest(self._sign(key, deadline).encode(), signature.encode())
        if not good or deadline < time.time():
            raise ObjectNotFound(key)
        return self._existing(key)

    def ping(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"storage directory {self.root} is not writable") from exc

    def _sign(self, key: str, expires: int) -> str:
        message = f"{key}\n{expires}".encode()
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()


@contextmanager
def _unavailable_on_s3_trouble() -> Iterator[None]:
    """Network errors and 5xx answers from S3 become `StorageUnavailable` (503)."""
    try:
        yield
    except BotoCoreError as exc:
        raise StorageUnavailable(f"object store unreachable: {type(exc).__name__}") from exc
    except ClientError as exc:
        status = _status(exc)
        if status >= 500:
            raise StorageUnavailable(f"object store answered {status}") from exc
        raise
    except S3UploadFailedError as exc:
        # upload_file (not upload_fileobj) wraps the ClientError that stopped the
        # transfer, a single PUT's or a part's: a 5xx is a store fault here too.
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ClientError) and _status(cause) >= 500:
            raise StorageUnavailable(f"object store answered {_status(cause)}") from exc
        raise


def _status(exc: ClientError) -> int:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)


class S3ObjectStore:
    """An S3 bucket through boto3; works with AWS, Cloudflare R2, MinIO and moto."""

    def __init__(self, config: S3Storage) -> None:
        self.bucket = config.bucket
        self._client = boto3.client(
            "s3",
            endpoint_url=config.endpoint_url,
            region_name=config.region,
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=config.secret_access_key,
            config=Config(
                signature_version="s3v4",
                # R2 and other S3-compatibles reject the newer default checksums.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                # "standard": 5xx answers, throttling, timeouts and resets are retried
                # with exponential backoff and jitter. total_max_attempts counts the
                # first try (botocore's older "max_attempts" counts retries only).
                retries={"total_max_attempts": config.max_attempts, "mode": "standard"},
                connect_timeout=config.connect_timeout,
                read_timeout=config.read_timeout,
            ),
        )

    def put(self, key: str, data: BinaryIO, content_type: str | None = None) -> None:
        with _unavailable_on_s3_trouble():
            self._client.upload_fileobj(data, self.bucket, check_key(key),
                                        ExtraArgs=_served_as(content_type))

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        with _unavailable_on_s3_trouble():
            self._client.upload_file(str(path), self.bucket, check_key(key),
                                     ExtraArgs=_served_as(content_type))

    def get_file(self, key: str, dest: Path) -> None:
        try:
            with _unavailable_on_s3_trouble():
                self._client.download_file(self.bucket, check_key(key), str(dest))
        except ClientError as exc:
            if _is_not_found(exc):
                raise ObjectNotFound(key) from None
            raise

    def copy(self, source: str, dest: str) -> None:
        """S3 CopyObject (the content type comes along); past its 5 GiB limit, boto3's
        managed copy in parts (UploadPartCopy). Neither moves the bytes through here."""
        source_spec = {"Bucket": self.bucket, "Key": check_key(source)}
        try:
            with _unavailable_on_s3_trouble():
                try:
                    self._client.copy_object(CopySource=source_spec, Bucket=self.bucket,
                                             Key=check_key(dest))
                except ClientError as exc:
                    if _error_code(exc) not in ("EntityTooLarge", "InvalidRequest"):
                        raise
                    self._client.copy(source_spec, self.bucket, dest, Config=LARGE_COPY)
        except ClientError as exc:
            if _is_not_found(exc):
                raise ObjectNotFound(source) from None
            raise

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except ObjectNotFound:
            return False
        return True

    def size(self, key: str) -> int:
        try:
            with _unavailable_on_s3_trouble():
                head = self._client.head_object(Bucket=self.bucket, Key=check_key(key))
        except ClientError as exc:
            if _is_not_found(exc):
                raise ObjectNotFound(key) from None
            raise
        return int(head["ContentLength"])

    def delete(self, key: str) -> None:
        with _unavailable_on_s3_trouble():
            self._client.delete_object(Bucket=self.bucket, Key=check_key(key))

    def presigned_url(self, key: str, expires_in: int) -> str:
        return self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": check_key(key)},
            ExpiresIn=expires_in,
        )

    def ping(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise StorageUnavailable(f"bucket {self.bucket} is not reachable: {exc}") from exc


def _served_as(content_type: str | None) -> dict[str, str]:
    """What a presigned GET of the object answers with: the type, and whether a browser
    may show it in place (S3 keeps both with the object, and a copy keeps them)."""
    extra = {"ContentDisposition": disposition(content_type)}
    if content_type:
        extra["ContentType"] = content_type
    return extra


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _is_not_found(exc: ClientError) -> bool:
    return _error_code(exc) in ("404", "NoSuchKey", "NotFound")


def local_signing_key(settings: Settings) -> bytes:
    """Derived from WORKER_TOKEN so there is one less secret to manage."""
    return hmac.new(
        settings.worker_token.encode(), b"soundreel local object links", hashlib.sha256
    ).digest()


def object_store(settings: Settings) -> ObjectStore:
    """The adapter the settings ask for."""
    if isinstance(settings.storage, LocalStorage):
        return LocalObjectStore(
            settings.storage.root,
            base_url=settings.public_base_url,
            signing_key=local_signing_key(settings),
        )
    return S3ObjectStore(settings.storage)
