"""SSRF guard for every URL a user gives us (``audioUrl``, ``webhookUrl``).

Two checks, because a URL that was harmless when submitted can point elsewhere
by the time a worker fetches it:

- `check_url` runs at submission: syntax, scheme, the address of an IP literal,
  the host name, and (optionally) every address the name resolves to. It gives
  the user an immediate 400 for what is plainly wrong.
- `guarded_request` runs at fetch time and is the check that actually protects
  us: it resolves the name **once**, refuses if *any* address is not public,
  and connects to that very IP (TLS still verifies the certificate against the
  host name). A DNS answer that changes between the check and the connection
  (DNS rebinding) therefore cannot steer the connection anywhere else. Every
  redirect hop is checked the same way, and the whole exchange is bounded by a
  total deadline and a byte cap.

What is refused (see `_address_problem` for the full list): anything that is not
public unicast, i.e. loopback, private, carrier-grade NAT, link-local, multicast,
broadcast, unspecified, reserved, documentation and benchmarking ranges, IPv6
unique-local and site-local, NAT64, Teredo, IPv4-compatible addresses, and
IPv4-mapped / 6to4 addresses whose embedded IPv4 address is any of those; host
names ``localhost``, ``*.localhost``, ``*.local``, ``*.localdomain``,
``*.internal``, ``*.home.arpa``; IPv4 addresses written in any form other than
canonical ``a.b.c.d`` (``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``),
because resolvers and browsers disagree about what such forms mean.

``ALLOW_PRIVATE_URLS`` (parsed by `parse_allow_list`) names exact ``host:port``
pairs exempt from the name and address rules, for local development and tests;
the syntax, scheme and user-info rules still apply to them.

Errors::

    UrlFetchError       .code, .message (safe to show the user); the class itself is
    │                   raised with fetch_failed | too_many_redirects | too_large | timed_out
    └── ForbiddenUrl    forbidden_url: refused by the rules above (.reason: which rule)

Messages never contain the URL itself (it may be signed); at most the host and
the one refused address.

Proxies from the environment (``HTTP_PROXY`` …) are never used: urllib3 does not
read them, and a proxy would do the resolving for us, defeating the guard.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from socket import getaddrinfo  # a module attribute, so tests can fake DNS here alone
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import certifi
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from jobs.errors import CodedError

try:  # IDNA 2008 + UTS #46, as browsers do; a dependency of requests.
    import idna as _idna
except ImportError:  # pragma: no cover - fall back to the stdlib's IDNA 2003 codec
    _idna = None

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Longest URL we accept; longer ones are refused before any parsing.
MAX_URL_LENGTH = 2048
SCHEMES = {"http": 80, "https": 443}
#: Host names that always mean "this machine" or "this private network".
FORBIDDEN_NAMES = ("localhost", "localdomain")
FORBIDDEN_SUFFIXES = (".localhost", ".local", ".localdomain", ".internal", ".home.arpa")
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Cap on each connect and each socket read, under the total deadline.
STEP_TIMEOUT = 10.0
#: How long `check_url` waits for DNS at submission before leaving it to the fetch.
RESOLVE_TIMEOUT = 5.0
CHUNK = 64 * 1024
#: Headers that must not follow a redirect to another origin (like browsers).
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


class UrlFetchError(CodedError):
    """A URL we would not or could not fetch; ``code`` is stable, ``message`` is for the user."""

    code = "fetch_failed"


class ForbiddenUrl(UrlFetchError):
    """The URL is malformed or points at something that is not the public internet."""

    code = "forbidden_url"
    #: The rule that refused it, e.g. "it points to a loopback address 127.0.0.1".
    reason = ""


# --- addresses -----------------------------------------------------------------

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

#: (network, description) for IPv4, most specific first. ``is_global`` alone is not
#: enough: Python counts multicast (224/4) as global, for one.
_V4_RANGES: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/32"), "the unspecified address"),
    (_V4("0.0.0.0/8"), "a 'this network' address"),
    (_V4("10.0.0.0/8"), "a private address"),
    (_V4("100.64.0.0/10"), "a carrier-grade NAT address"),
    (_V4("127.0.0.0/8"), "a loopback address"),
    (_V4("169.254.0.0/16"), "a link-local address"),
    (_V4("172.16.0.0/12"), "a private address"),
    (_V4("192.0.0.0/24"), "an IETF protocol address"),
    (_V4("192.0.2.0/24"), "a documentation address"),
    (_V4("192.88.99.0/24"), "a 6to4 relay address"),
    (_V4("192.168.0.0/16"), "a private address"),
    (_V4("198.18.0.0/15"), "a benchmarking address"),
    (_V4("198.51.100.0/24"), "a documentation address"),
    (_V4("203.0.113.0/24"), "a documentation address"),
    (_V4("224.0.0.0/4"), "a multicast address"),
    (_V4("255.255.255.255/32"), "the broadcast address"),
    (_V4("240.0.0.0/4"), "a reserved address"),
)

_V6_RANGES: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "the unspecified address"),
    (_V6("::1/128"), "a loopback address"),
    (_V6("::/96"), "an IPv4-compatible address"),
    (_V6("64:ff9b::/96"), "a NAT64 address"),
    (_V6("64:ff9b:1::/48"), "a NAT64 address"),
    (_V6("100::/64"), "a discard-only address"),
    (_V6("2001::/32"), "a Teredo address"),
    (_V6("2001:db8::/32"), "a documentation address"),
    (_V6("3fff::/20"), "a documentation address"),
    (_V6("fc00::/7"), "a unique-local address"),
    (_V6("fe80::/10"), "a link-local address"),
    (_V6("fec0::/10"), "a site-local address"),
    (_V6("ff00::/8"), "a multicast address"),
)
_V4_MAPPED = _V6("::ffff:0:0/96")
_SIX_TO_FOUR = _V6("2002::/16")
#: Everything public in IPv6 is in 2000::/3; the rest is reserved or special.
_V6_GLOBAL_UNICAST = _V6("2000::/3")


def _address_problem(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be contacted (e.g. ``"a loopback address 127.0.0.1"``), or None."""
    if isinstance(ip, ipaddress.IPv4Address):
        for network, what in _V4_RANGES:
            if ip in network:
                return f"{what} {ip}"
        if not ip.is_global or ip.is_reserved or ip.is_multicast:
            return f"a non-public address {ip}"
        return None
    ip = ipaddress.IPv6Address(int(ip))  # drop any %scope: it only matters for link-local
    if ip in _V4_MAPPED:
        inner = _address_problem(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        return f"{ip}, an IPv4-mapped form of {inner}" if inner else None
    if ip in _SIX_TO_FOUR:
        inner = _address_problem(ip.sixtofour)  # type: ignore[arg-type]
        return f"{ip}, a 6to4 address embedding {inner}" if inner else None
    for network, what in _V6_RANGES:
        if ip in network:
            return f"{what} {ip}"
    if ip not in _V6_GLOBAL_UNICAST or not ip.is_global or ip.is_reserved:
        return f"a non-public address {ip}"
    return None


def _connect_address(ip: IPAddress) -> str:
    """The address to open a socket to: IPv4-mapped becomes plain IPv4 (no v6 stack needed)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


# --- parsing -------------------------------------------------------------------

#: The last label of a host that resolvers (inet_aton) and browsers read as a number.
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
_HOST_NAME = re.compile(r"^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?$")
_PORT = re.compile(r"^[0-9]{1,5}$")
_BRACKETED = re.compile(r"^\[([^\[\]]*)\](?::(.*))?$")


@dataclass(frozen=True)
class _Target:
    """A URL that passed the syntax rules, split the way we connect to it."""

    scheme: str
    #: ASCII, lower-case, as written (a trailing dot kept); IPv6 without brackets.
    host: str
    port: int
    #: Set when the host is an IP literal.
    ip: IPAddress | None
    #: Path and query, percent-encoded, never empty; the fragment is dropped.
    request_target: str

    @property
    def host_in_url(self) -> str:
        return f"[{self.host}]" if isinstance(self.ip, ipaddress.IPv6Address) else self.host

    @property
    def allow_key(self) -> str:
        return f"{self.host_in_url}:{self.port}"

    @property
    def host_header(self) -> str:
        default = SCHEMES[self.scheme] == self.port
        return self.host_in_url if default else f"{self.host_in_url}:{self.port}"

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


def _forbidden(reason: str, *, redirected: bool = False) -> ForbiddenUrl:
    if redirected:
        message = f"The URL redirects to a place that is not allowed: {reason}."
    else:
        message = f"This URL is not allowed: {reason}. Give a public http(s) URL."
    error = ForbiddenUrl(message)
    error.reason = reason
    return error


def _has_bad_characters(text: str) -> bool:
    # urlsplit silently strips some of these (tabs, newlines, edges); we refuse instead.
    return any(c.isspace() or ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text)


def _encode_host(raw: str) -> str:
    """Lower-cased ASCII host name, IDNA-encoded; ForbiddenUrl if it is not a valid name."""
    if raw.isascii():
        name = raw.lower()
    else:
        try:
            if _idna is not None:
                # UTS #46 maps look-alikes first: full-width digits and dots, Ⓛ → l …
                name = _idna.encode(raw, uts46=True, transitional=False).decode("ascii")
            else:  # pragma: no cover
                name = raw.encode("idna").decode("ascii")
        except (UnicodeError, ValueError) as exc:  # idna.IDNAError is a UnicodeError
            raise _forbidden("the host is not a valid domain name") from exc
        name = name.lower()
    if not _HOST_NAME.match(name) or len(name.rstrip(".")) > 253:
        raise _forbidden("the host is not a valid domain name")
    if any(len(label) > 63 for label in name.split(".")):
        raise _forbidden("the host is not a valid domain name")
    return name


def _parse_ipv4(name: str) -> ipaddress.IPv4Address | None:
    """The address if ``name`` is numeric; ForbiddenUrl unless it is canonical a.b.c.d.

    ``2130706433``, ``0x7f.1``, ``0177.0.0.1`` and ``127.1`` all mean 127.0.0.1 to
    inet_aton (and so to many resolvers and HTTP clients) but to nobody else, so
    anything numeric that is not written the one canonical way is refused.
    """
    last = name.rstrip(".").rsplit(".", 1)[-1]
    if not _NUMERIC_LABEL.match(last):
        return None
    parts = name.split(".")
    canonical = len(parts) == 4 and all(
        p.isdigit() and p == str(int(p)) and int(p) <= 255 for p in parts
    )
    if not canonical:
        raise _forbidden("an IP address must be written as a.b.c.d (four decimal numbers)")
    return ipaddress.IPv4Address(name)


def _parse(url: str) -> _Target:
    """Apply the syntax rules (scheme, user info, host, port, length, characters)."""
    if not isinstance(url, str) or not url:
        raise _forbidden("the URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise _forbidden(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if _has_bad_characters(url):
        raise _forbidden("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise _forbidden("the URL is not valid") from exc
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise _forbidden("only http:// and https:// URLs are accepted")
    netloc = parts.netloc
    if "@" in netloc:
        raise _forbidden("the URL must not contain a user name or password")
    if not netloc:
        raise _forbidden("the URL has no host")

    ip: IPAddress | None = None
    bracketed = _BRACKETED.match(netloc)
    if bracketed:
        literal, port_text = bracketed.group(1), bracketed.group(2)
        if "%" in literal:  # zone ids only make sense for link-local addresses
            raise _forbidden("the URL's IPv6 address has a zone id")
        try:
            ip = ipaddress.IPv6Address(literal)
        except ValueError as exc:
            raise _forbidden("the URL's IPv6 address is not valid") from exc
        host = ip.compressed
    else:
        if "[" in netloc or "]" in netloc or netloc.count(":") > 1:
            raise _forbidden("the URL's host is not valid (write IPv6 addresses in [brackets])")
        raw_host, colon, after = netloc.partition(":")
        port_text = after if colon else None
        if not raw_host:
            raise _forbidden("the URL has no host")
        host = _encode_host(raw_host)
        ip = _parse_ipv4(host)
    if port_text is None:
        port = SCHEMES[scheme]
    elif _PORT.match(port_text) and 1 <= int(port_text) <= 65535:
        port = int(port_text)
    else:
        raise _forbidden("the port must be a number from 1 to 65535")

    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    # Keep what is already escaped; escape the rest (non-ASCII paths) as requests does.
    target = quote(target, safe="!#$%&'()*+,/:;=?@[]~")
    return _Target(scheme, host, port, ip, target)


def _name_problem(host: str) -> str | None:
    name = host.rstrip(".")
    if name in FORBIDDEN_NAMES or name.endswith(FORBIDDEN_SUFFIXES):
        return f"the host {name} is a local or internal name"
    return None


# --- resolving -----------------------------------------------------------------


class _ResolveTimeout(Exception):
    pass


def _resolve(host: str, port: int, timeout: float) -> list[IPAddress]:
    """Every address ``host`` resolves to (both families), in the resolver's order.

    getaddrinfo has no timeout of its own, so it runs in a daemon thread we stop
    waiting for. Raises OSError (socket.gaierror) or `_ResolveTimeout`.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["infos"] = getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="urlguard-resolve", daemon=True)
    worker.start()
    worker.join(max(timeout, 0.0))
    if worker.is_alive():
        raise _ResolveTimeout(host)
    if "error" in outcome:
        raise outcome["error"]
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in outcome["infos"]:
        ip = ipaddress.ip_address(str(sockaddr[0]))
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise socket.gaierror(f"{host} has no addresses")
    return addresses


def _check_addresses(host: str, addresses: Iterable[IPAddress]) -> None:
    for ip in addresses:
        problem = _address_problem(ip)
        if problem:
            raise _forbidden(f"the host {host.rstrip('.')} resolves to {problem}")


# --- the submission-time check -------------------------------------------------


def check_url(url: str, allow: frozenset[str] = frozenset(), resolve: bool = True) -> None:
    """Raise `ForbiddenUrl` if ``url`` may not be fetched; return None if it may.

    With ``resolve``, every address the host resolves to must be public. A name
    that does not resolve (or not within `RESOLVE_TIMEOUT`) passes: DNS may be
    down for a moment, and `guarded_request` checks again when it fetches.
    ``allow`` holds exact ``host:port`` pairs exempt from the name and address rules.
    """
    target = _parse(url)
    if target.allow_key in allow:
        return
    if target.ip is not None:
        problem = _address_problem(target.ip)
        if problem:
            raise _forbidden(f"it points to {problem}")
        return
    problem = _name_problem(target.host)
    if problem:
        raise _forbidden(problem)
    if not resolve:
        return
    try:
        addresses = _resolve(target.host, target.port, RESOLVE_TIMEOUT)
    except (OSError, UnicodeError, ValueError, _ResolveTimeout):
        return
    _check_addresses(target.host, addresses)


def parse_allow_list(raw: str) -> frozenset[str]:
    """``ALLOW_PRIVATE_URLS``: comma-separated ``host:port`` pairs, e.g. ``127.0.0.1:8123``.

    Entries are lower-cased to match `check_url`'s comparison; IPv6 hosts go in
    brackets (``[::1]:8123``) and are compared in compressed form. A missing or
    invalid port is a ValueError, so a typo in the setting stops the process at
    start-up instead of silently allowing nothing.
    """
    entries: set[str] = set()
    for item in (raw or "").split(","):
        entry = item.strip().lower()
        if not entry:
            continue
        host, sep, port = entry.rpartition(":")
        bracketed = host.startswith("[") and host.endswith("]")
        if (
            not sep
            or not host
            or not _PORT.match(port)
            or not 1 <= int(port) <= 65535
            or (":" in host and not bracketed)
            or any(c.isspace() for c in host)
        ):
            raise ValueError(
                f"ALLOW_PRIVATE_URLS entry {item.strip()!r} must be host:port, "
                "e.g. 127.0.0.1:8123 or [::1]:8123"
            )
        if bracketed:  # compare IPv6 in the compressed form `check_url` uses
            try:
                host = f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
            except ValueError:
                raise ValueError(
                    f"ALLOW_PRIVATE_URLS entry {item.strip()!r} has an invalid IPv6 address"
                ) from None
        entries.add(f"{host}:{int(port)}")
    return frozenset(entries)


# --- the fetch -----------------------------------------------------------------


class _Watchdog:
    """Enforces the total deadline by shutting down every socket the request opened.

    Socket timeouts bound each read, but a server that sends one byte just inside
    every timeout (or dribbles a header line) would never trip them. When the
    deadline passes, a timer thread shuts the sockets down, which wakes any
    blocked read. It holds ``dup()``s of the sockets: TLS wrapping detaches the
    original socket object, a duplicate still reaches the same connection.
    """

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            dup = sock.dup()
            self._sockets.append(dup)
            if self.fired:
                _shutdown(dup)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                _shutdown(sock)

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _WatchedMixin:
    """Hands every new socket to the request's `_Watchdog` (passed as ``watchdog=``)."""

    def __init__(self, *args: Any, watchdog: _Watchdog, **kwargs: Any) -> None:
        self._watchdog = watchdog
        super().__init__(*args, **kwargs)

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # type: ignore[misc]
        try:
            self._watchdog.watch(sock)
        except OSError as exc:  # out of file descriptors: fail like any connection error
            sock.close()
            message = f"cannot watch the socket: {exc}"
            raise urllib3.exceptions.NewConnectionError(self, message) from exc  # type: ignore[arg-type]
        return sock


class _WatchedHTTPConnection(_WatchedMixin, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedMixin, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


@dataclass
class GuardedResponse:
    """The final response: ``body`` is empty when a ``sink`` took the chunks."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    #: The URL that answered, after redirects.
    url: str
    redirects: list[str] = field(default_factory=list)


class _Clock:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        remaining = self._end - time.monotonic()
        if remaining <= 0:
            raise self.error()
        return remaining

    def expired(self) -> bool:
        return time.monotonic() >= self._end

    def timeout(self) -> urllib3.Timeout:
        remaining = self.remaining()
        step = min(remaining, STEP_TIMEOUT)
        return urllib3.Timeout(connect=step, read=step)

    def error(self) -> UrlFetchError:
        return UrlFetchError(
            f"The server did not answer in full within {self.seconds:g} s; try again later.",
            code="timed_out",
        )


def _pick_address(target: _Target, allow: frozenset[str], clock: _Clock) -> str:
    """Resolve once, check every address, return the one to connect to."""
    allowed = target.allow_key in allow
    if target.ip is not None:
        if not allowed:
            problem = _address_problem(target.ip)
            if problem:
                raise _forbidden(f"it points to {problem}")
        return _connect_address(target.ip)
    if not allowed:
        problem = _name_problem(target.host)
        if problem:
            raise _forbidden(problem)
    try:
        addresses = _resolve(target.host, target.port, clock.remaining())
    except _ResolveTimeout:
        raise clock.error() from None
    except (OSError, UnicodeError, ValueError):
        raise UrlFetchError(
            f"Could not resolve the host {target.host.rstrip('.')}; check the URL.",
            code="fetch_failed",
        ) from None
    if not allowed:
        _check_addresses(target.host, addresses)
    return _connect_address(addresses[0])


def _open_pool(target: _Target, address: str, watchdog: _Watchdog) -> HTTPConnectionPool:
    common: dict[str, Any] = {"maxsize": 1, "retries": False, "watchdog": watchdog}
    if target.scheme == "http":
        return _HTTPPool(address, target.port, **common)
    name = target.host.rstrip(".")
    return _HTTPSPool(
        address,
        target.port,
        server_hostname=name,  # SNI, and ...
        assert_hostname=name,  # ... the certificate must name the host, not the IP
        cert_reqs="CERT_REQUIRED",
        ca_certs=certifi.where(),
        **common,
    )


def _read_body(
    response: urllib3.BaseHTTPResponse,
    max_bytes: int,
    sink: Callable[[bytes], None] | None,
    watchdog: _Watchdog,
    clock: _Clock,
) -> bytes:
    """The body, within the byte cap; chunks go to ``sink`` as they arrive if one is given."""
    too_large = UrlFetchError(
        f"The response is larger than the limit of {max_bytes} bytes.", code="too_large"
    )
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    received = 0
    for chunk in response.stream(CHUNK, decode_content=True):
        received += len(chunk)
        if received > max_bytes:
            raise too_large
        if sink is not None:
            sink(chunk)
        else:
            chunks.append(chunk)
    if watchdog.fired:  # a shut-down socket looks like the end of a close-delimited body
        raise clock.error()
    return b"".join(chunks)


def guarded_request(
    method: str,
    url: str,
    *,
    allow: frozenset[str] = frozenset(),
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    deadline: float = 30.0,
    max_bytes: int = 10 * 2**20,
    max_redirects: int = 5,
    follow_redirects: bool = True,
    sink: Callable[[bytes], None] | None = None,
) -> GuardedResponse:
    """Fetch ``url`` only if it (and every redirect) passes the rules, connecting to the
    address that was checked.

    ``deadline`` is wall-clock seconds for everything (resolving, connecting,
    redirects, the whole body); ``max_bytes`` caps the (decoded) body. Any status
    is returned, not raised: the caller decides what a 404 means. Raises
    `ForbiddenUrl`, or `UrlFetchError` with code ``too_many_redirects``,
    ``fetch_failed``, ``too_large`` or ``timed_out``.

    Redirects are followed like browsers do: 303, and 301/302 after a POST, turn
    into a GET without a body; credentials headers are dropped when the origin
    changes. Webhook deliveries pass ``follow_redirects=False``.
    """
    clock = _Clock(deadline)
    watchdog = _Watchdog(deadline)
    method = method.upper()
    send_headers = {k: v for k, v in (headers or {}).items() if k.lower() != "host"}
    redirects: list[str] = []
    previous: _Target | None = None
    try:
        current = url
        while True:
            try:
                target = _parse(current)
                address = _pick_address(target, allow, clock)
            except ForbiddenUrl as refused:
                if not redirects:
                    raise
                raise _forbidden(refused.reason, redirected=True) from None
            if previous is not None and previous.origin != target.origin:
                send_headers = {
                    k: v for k, v in send_headers.items() if k.lower() not in CREDENTIAL_HEADERS
                }
            try:
                with _open_pool(target, address, watchdog) as pool:
                    response = pool.urlopen(
                        method,
                        target.request_target,
                        body=body,
                        headers={**send_headers, "Host": target.host_header},
                        retries=False,
                        redirect=False,
                        preload_content=False,
                        decode_content=True,
                        timeout=clock.timeout(),
                    )
                    try:
                        location = response.headers.get("Location")
                        if not (
                            follow_redirects and response.status in REDIRECT_STATUSES and location
                        ):
                            content = _read_body(response, max_bytes, sink, watchdog, clock)
                            return GuardedResponse(
                                status=response.status,
                                headers=response.headers,
                                body=content,
                                url=current,
                                redirects=redirects,
                            )
                    finally:
                        response.close()  # also closes its connection: nothing is reused
            except urllib3.exceptions.HTTPError as exc:
                # urllib3 wraps socket and http.client errors; errors raised by the
                # sink (a full disk) are not wrapped and reach the caller unchanged.
                if watchdog.fired or clock.expired():
                    raise clock.error() from None
                raise UrlFetchError(
                    f"Could not fetch the URL from {target.host_in_url} "
                    f"({type(exc).__name__}); check that the server is up and try again.",
                    code="fetch_failed",
                ) from None

            if len(redirects) >= max_redirects:
                raise UrlFetchError(
                    f"The URL redirected more than {max_redirects} times; give the final URL.",
                    code="too_many_redirects",
                )
            next_url = urljoin(current, location.strip())
            if (response.status == 303 and method != "HEAD") or (
                response.status in (301, 302) and method == "POST"
            ):
                method, body = "GET", None
                send_headers = {
                    k: v
                    for k, v in send_headers.items()
                    if k.lower() not in ("content-type", "content-length", "transfer-encoding")
                }
            redirects.append(next_url)
            previous, current = target, next_url
    finally:
        watchdog.close()
