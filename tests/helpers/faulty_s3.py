"""A reverse proxy in front of an S3 server that fails or hangs writes on demand.

The storage fault tests point the API and the workers at this proxy instead of
moto, then switch its mode while the stack runs, in-process:

- ``pass``: forward every request unchanged (the Host header too, so presigned
  URLs still match what was signed).
- ``error500``: answer object writes (PutObject, the multipart calls, CopyObject)
  with a 500 and an S3 ``InternalError`` XML body, as S3 and R2 do when they
  are having trouble; reads, listings and deletes still pass.
- ``hang``: accept the write (send ``100 Continue``, read the body) and never
  answer, until the client gives up and closes the connection.

Only writes whose key starts with one of ``fault_prefixes`` and whose operation is
in ``fault_operations`` are faulted, so a test can let the input upload through and
fail only the outputs, or fail only ``UploadPart`` to break a multipart upload
half-way. Every request is recorded (method, operation, key, time, outcome) so a
test can count the tries a client made and the time between them.

Path-style addressing only (``/{bucket}/{key}``): boto3 uses it for an IP endpoint.
Runs in a thread: ``with FaultyS3(upstream) as proxy: ...``.
"""

from __future__ import annotations

import http.client
import itertools
import select
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, unquote, urlsplit

from jobs.constants import PREPARED_PREFIX, PREVIEWS_PREFIX, RENDERS_PREFIX

#: Forward everything.
PASSTHROUGH = "pass"
#: Answer faulted writes with 500 InternalError.
ERROR500 = "error500"
#: Take faulted writes and never answer.
HANG = "hang"
MODES = (PASSTHROUGH, ERROR500, HANG)

#: The S3 operations that write an object.
WRITE_OPERATIONS = frozenset({
    "PutObject", "CopyObject", "CreateMultipartUpload", "UploadPart",
    "CompleteMultipartUpload",
})
#: What a worker writes; uploads/ (the API's input uploads) is left alone.
OUTPUT_PREFIXES = (RENDERS_PREFIX, PREVIEWS_PREFIX, PREPARED_PREFIX)

#: Headers that belong to one hop, not to the request or answer being relayed.
_HOP_HEADERS = frozenset({
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade",
    "expect", "content-length",
})
_ERROR_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    "<Message>We encountered an internal error. Please try again.</Message>"
    "<Resource>{resource}</Resource><RequestId>{request_id}</RequestId></Error>"
)


@dataclass(frozen=True)
class Seen:
    """One request the proxy received, and what it did with it."""

    method: str
    #: S3 operation name, e.g. PutObject, UploadPart, AbortMultipartUpload.
    operation: str
    bucket: str | None
    key: str | None
    #: time.monotonic() when the request (headers and body) had arrived.
    at: float
    #: PASSTHROUGH (forwarded), ERROR500 or HANG.
    outcome: str


def operation_of(method: str, key: str | None, query: str, headers: Iterable[str]) -> str:
    """The S3 operation a path-style request is, from its method, key and query."""
    params = parse_qs(query, keep_blank_values=True)
    has_copy_source = "x-amz-copy-source" in {name.lower() for name in headers}
    if key is None:
        if method == "POST" and "delete" in params:
            return "DeleteObjects"
        if method == "GET" and "uploads" in params:
            return "ListMultipartUploads"
        return {"GET": "ListObjects", "HEAD": "HeadBucket", "PUT": "CreateBucket",
                "DELETE": "DeleteBucket"}.get(method, method)
    if method == "PUT":
        if "partNumber" in params:
            return "UploadPart"
        return "CopyObject" if has_copy_source else "PutObject"
    if method == "POST":
        if "uploads" in params:
            return "CreateMultipartUpload"
        return "CompleteMultipartUpload" if "uploadId" in params else "PostObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in params else "DeleteObject"
    if method == "GET":
        return "ListParts" if "uploadId" in params else "GetObject"
    return {"HEAD": "HeadObject"}.get(method, method)


class FaultyS3:
    """The proxy: start it, point S3_ENDPOINT_URL at ``url``, set ``mode`` at will."""

    def __init__(
        self,
        upstream: str,
        *,
        mode: str = PASSTHROUGH,
        fault_prefixes: tuple[str, ...] = OUTPUT_PREFIXES,
        fault_operations: frozenset[str] = WRITE_OPERATIONS,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        self.upstream = (parts.hostname, parts.port)
        self.fault_prefixes = fault_prefixes
        self.fault_operations = fault_operations
        self.mode = mode
        self._seen: list[Seen] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True  # a hung request must not block stop()
        self._server.proxy = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="faulty-s3", daemon=True
        )

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self._mode = mode

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultyS3:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hung requests are let go (their connections closed)."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultyS3:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- what a test reads ---------------------------------------------------

    def seen(
        self, *, key: str | None = None, operation: str | None = None, writes_only: bool = False
    ) -> list[Seen]:
        """The requests received so far, oldest first, optionally filtered."""
        with self._lock:
            rows = list(self._seen)
        return [
            row for row in rows
            if (key is None or row.key == key)
            and (operation is None or row.operation == operation)
            and (not writes_only or row.operation in WRITE_OPERATIONS)
        ]

    def counts(self) -> Counter[str]:
        """Requests received so far, by HTTP method."""
        return Counter(row.method for row in self.seen())

    def forget(self) -> None:
        """Clear what was recorded (between phases of a test)."""
        with self._lock:
            self._seen.clear()

    # --- what the handler calls -----------------------------------------------

    def _fault_for(self, operation: str, key: str | None) -> str:
        mode = self._mode
        if (
            mode == PASSTHROUGH
            or key is None
            or operation not in self.fault_operations
            or not key.startswith(self.fault_prefixes)
        ):
            return PASSTHROUGH
        return mode

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self._seen.append(seen)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1: keep-alive as S3 does, and "Expect: 100-continue" answered as S3 does.
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet: the test reads `FaultyS3.seen`, not stderr."""

    def _handle(self) -> None:
        proxy: FaultyS3 = self.server.proxy  # type: ignore[attr-defined]
        body = self._read_body()
        parts = urlsplit(self.path)
        bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
        operation = operation_of(self.command, key or None, parts.query, self.headers.keys())
        outcome = proxy._fault_for(operation, key or None)
        proxy._record(Seen(self.command, operation, bucket or None, key or None,
                           time.monotonic(), outcome))
        if outcome == ERROR500:
            self._error500(parts.path, next(proxy._ids))
        elif outcome == HANG:
            self._hang(proxy._stopping)
        else:
            self._forward(proxy.upstream, body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _error500(self, resource: str, request_id: int) -> None:
        body = _ERROR_BODY.format(resource=resource, request_id=f"faulty-s3-{request_id}").encode()
        self.send_response(500, "Internal Server Error")
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _hang(self, stopping: threading.Event) -> None:
        """Say nothing until the client hangs up (or the proxy stops)."""
        self.close_connection = True
        conn = self.connection
        while not stopping.is_set():
            readable, _, _ = select.select([conn], [], [], 0.1)
            if not readable:
                continue
            try:
                if not conn.recv(65536):
                    return  # the client closed the connection: it gave up
            except OSError:
                return

    def _forward(self, upstream: tuple[str, int], body: bytes) -> None:
        headers = [(name, value) for name, value in self.headers.items()
                   if name.lower() not in _HOP_HEADERS]
        conn = http.client.HTTPConnection(*upstream, timeout=60)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            if body or self.command in ("PUT", "POST"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            answer = conn.getresponse()
            data = answer.read()
        except (OSError, http.client.HTTPException):
            self.send_error(502, "upstream S3 server unreachable")
            return
        finally:
            conn.close()
        self.send_response_only(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() not in _HOP_HEADERS:
                self.send_header(name, value)
        length = answer.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

