"""The SSRF guard (security/urlguard.py): hostile URLs are refused at submission
and at fetch time before any connection is made; the fetch connects to the
address it checked (resolving once per hop), follows redirects only to places
that pass the same rules, and is bounded by a total deadline and a byte cap.

No network beyond 127.0.0.1: DNS is faked in the module under test (unknown
names do not resolve), and every connection urllib3 opens is recorded; one to
anything but loopback fails the test.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import pickle
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import urllib3.util.connection

from security import urlguard
from security.urlguard import (
    ForbiddenUrl,
    UrlFetchError,
    check_url,
    guarded_request,
    parse_allow_list,
)
from tests.helpers.hostile import HOSTILE_URLS

PUBLIC_IP = "93.184.216.34"

# --- fakes and servers -----------------------------------------------------------


class FakeDNS:
    """Stands in for getaddrinfo inside urlguard; answers only the names it was given."""

    def __init__(self) -> None:
        #: name -> successive answers (the last one repeats)
        self.answers: dict[str, list[list[str]]] = {}
        self.calls: list[tuple[str, int]] = []

    def set(self, name: str, *answers: list[str]) -> None:
        self.answers[name] = list(answers)

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002
        self.calls.append((host, port))
        queue = self.answers.get(host.rstrip(".").lower())
        if not queue:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        infos = []
        for address in answer:
            if ipaddress.ip_address(address).version == 6:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return infos


#: Made-up names and the forbidden addresses they "resolve" to.
HOSTILE_NAMES = {
    "evil.example": [["127.0.0.1"]],
    "meta.example": [["169.254.169.254"]],
    "intranet.example": [["10.0.0.1"]],
    "cgnat.example": [["100.64.0.1"]],
    "loop6.example": [["::1"]],
    "nat64.example": [["64:ff9b::7f00:1"]],
    "mapped.example": [["::ffff:10.0.0.1"]],
    "ula.example": [["fd00::1"]],
    # one public address first, a private one second: any bad address refuses
    "rebind.example": [[PUBLIC_IP, "127.0.0.1"]],
    "public.example": [[PUBLIC_IP]],
}


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    fake = FakeDNS()
    for name, answers in HOSTILE_NAMES.items():
        fake.set(name, *answers)
    monkeypatch.setattr(urlguard, "getaddrinfo", fake)
    return fake


class Connections:
    """Every TCP connection urllib3 opens during a test."""

    def __init__(self) -> None:
        self.opened: list[tuple[str, int]] = []
        self.outside: list[tuple[str, int]] = []


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[Connections]:
    seen = Connections()
    real = urllib3.util.connection.create_connection

    def create_connection(address, *args, **kwargs):
        host, port = address[0], address[1]
        seen.opened.append((host, port))
        if not ipaddress.ip_address(host.strip("[]")).is_loopback:
            seen.outside.append((host, port))
            raise OSError("the test refused to leave loopback")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)
    yield seen
    assert seen.outside == [], "urllib3 tried to connect beyond loopback"


Route = Callable[[BaseHTTPRequestHandler], None]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.server.hits.append((self.command, self.path))  # type: ignore[attr-defined]
        route = self.server.routes.get(self.path.split("?")[0])  # type: ignore[attr-defined]
        if route is None:
            reply(self, 404, b"no route")
        else:
            route(self)

    do_POST = do_PUT = do_HEAD = do_GET

    def log_message(self, *args: object) -> None:
        pass


class LocalServer(ThreadingHTTPServer):
    """A real HTTP server on 127.0.0.1 in a thread that counts connections."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.port = self.server_address[1]
        self.connections = 0
        self.hits: list[tuple[str, str]] = []
        self.routes: dict[str, Route] = {}
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def get_request(self):  # noqa: ANN201
        request = super().get_request()
        self.connections += 1
        return request

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", **headers: str) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def redirect(status: int, location: str | Callable[[], str]) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        reply(handler, status, Location=location() if callable(location) else location)

    return route


def trickle(handler: BaseHTTPRequestHandler, byte: bytes) -> None:
    """``byte`` every 0.2 s for up to 20 s (until the client hangs up)."""
    for _ in range(100):
        try:
            handler.wfile.write(byte)
            handler.wfile.flush()
        except OSError:
            return
        time.sleep(0.2)


def dribble(handler: BaseHTTPRequestHandler) -> None:
    """Headers, then one byte every 0.2 s for up to 20 s (until the client hangs up)."""
    handler.send_response(200)
    handler.end_headers()
    trickle(handler, b"x")


def dribble_headers(handler: BaseHTTPRequestHandler) -> None:
    """A status line, then a header line one byte every 0.2 s: never a complete head."""
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    trickle(handler, b"a")


def big(handler: BaseHTTPRequestHandler) -> None:
    """2 MiB with no Content-Length (the end is the connection closing)."""
    handler.send_response(200)
    handler.end_headers()
    try:
        for _ in range(32):
            handler.wfile.write(b"b" * 65536)
    except OSError:
        return


def big_declared(handler: BaseHTTPRequestHandler) -> None:
    """Declares 2 MiB and sends none of it: the client must refuse on the header."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(2 * 2**20))
    handler.end_headers()
    handler.wfile.flush()
    time.sleep(0.5)


def echo(handler: BaseHTTPRequestHandler) -> None:
    length = int(handler.headers.get("Content-Length") or 0)
    payload = {
        "method": handler.command,
        "body": handler.rfile.read(length).decode() if length else "",
        "host": handler.headers.get("Host"),
        "authorization": handler.headers.get("Authorization"),
    }
    reply(handler, 200, json.dumps(payload).encode(), Content_Type="application/json")


@pytest.fixture(scope="module")
def canary() -> Iterator[LocalServer]:
    """A local server no hostile URL may reach: its connection count must stay put."""
    server = LocalServer()
    server.routes["/"] = lambda h: reply(h, 200, b"canary")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(canary: LocalServer) -> Iterator[LocalServer]:
    """The allowed test server: the routes the fetch tests use."""
    srv = LocalServer()
    srv.routes.update(
        {
            "/hello": lambda h: reply(h, 200, b"hello", X_Seen_Host=h.headers.get("Host", "")),
            "/echo": echo,
            "/relative": redirect(302, "hello"),
            "/to-canary": redirect(302, lambda: canary.url("/")),
            "/to-metadata": redirect(302, "http://169.254.169.254/latest/meta-data/"),
            "/to-file": redirect(302, "file:///etc/passwd"),
            "/loop": redirect(302, "/loop"),
            "/see-other": redirect(303, "/echo"),
            "/found": redirect(302, "/echo"),
            "/temporary": redirect(307, "/echo"),
            "/to-localhost": redirect(302, lambda: f"http://localhost:{srv.port}/echo"),
            "/slow": dribble,
            "/slow-headers": dribble_headers,
            "/big": big,
            "/big-declared": big_declared,
        }
    )
    yield srv
    srv.stop()


@pytest.fixture
def allow(server: LocalServer) -> frozenset[str]:
    return frozenset({f"127.0.0.1:{server.port}"})


# --- hostile URLs ---------------------------------------------------------------



@pytest.mark.parametrize("template", HOSTILE_URLS)
def test_hostile_urls_are_refused_before_any_connection(template, canary, connections):
    url = template.format(port=canary.port)
    before = canary.connections

    with pytest.raises(ForbiddenUrl) as checked:
        check_url(url)
    assert checked.value.code == "forbidden_url"
    with pytest.raises(ForbiddenUrl) as fetched:
        guarded_request("GET", url, deadline=5)
    assert fetched.value.code == "forbidden_url"

    assert connections.opened == []
    assert canary.connections == before


def test_refusal_names_the_address_but_not_the_url():
    with pytest.raises(ForbiddenUrl) as refused:
        check_url("http://intranet.example/secret-path?signature=abc")
    message = refused.value.message
    assert "10.0.0.1" in message and "private" in message
    assert "secret-path" not in message and "signature" not in message


def test_non_canonical_ipv4_is_told_how_to_write_it():
    with pytest.raises(ForbiddenUrl, match=r"a\.b\.c\.d"):
        check_url("http://0x5d.0xb8.0xd8.0x22/")  # 93.184.216.34, but written in hex


def test_errors_survive_pickling_between_processes():
    error = pickle.loads(pickle.dumps(UrlFetchError("too big", code="too_large")))  # noqa: S301
    assert (type(error), error.code, error.message) == (UrlFetchError, "too_large", "too big")
    forbidden = pickle.loads(pickle.dumps(ForbiddenUrl("no")))  # noqa: S301
    assert isinstance(forbidden, UrlFetchError) and forbidden.code == "forbidden_url"


# --- allowed URLs -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"http://{PUBLIC_IP}/",
        f"https://{PUBLIC_IP}:8443/audio.mp3?sig=abc#fragment",
        "http://[2606:2800:220:1:248:1893:25c8:1946]/",
        "https://example.com/podcast/episode.mp3",
        "HTTPS://Example.COM/x",
        "https://bücher.example/",
    ],
)
def test_public_urls_pass_without_resolving(url, dns):
    check_url(url, resolve=False)
    assert dns.calls == []


def test_a_name_resolving_to_public_addresses_passes(dns):
    check_url("https://public.example/a.mp3")
    assert dns.calls == [("public.example", 443)]


def test_a_name_that_does_not_resolve_is_left_to_the_fetch(dns):
    # not refused at submission (a name may resolve later); the fetch decides
    assert check_url("https://no-such-name.example/a.mp3") is None
    assert dns.calls == [("no-such-name.example", 443)]


def test_allow_list_exempts_only_that_host_and_port():
    allow = frozenset({"127.0.0.1:8123", "evil.example:80"})
    check_url("http://127.0.0.1:8123/hook", allow)
    check_url("http://evil.example/hook", allow)
    for refused in ("http://127.0.0.1:8124/", "http://127.0.0.1/", "http://evil.example:81/"):
        with pytest.raises(ForbiddenUrl):
            check_url(refused, allow)


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1:8123/", "http://user:pw@127.0.0.1:8123/", "http://127.1:8123/"]
)
def test_allow_list_does_not_exempt_the_syntax_rules(url):
    with pytest.raises(ForbiddenUrl):
        check_url(url, frozenset({"127.0.0.1:8123", "127.1:8123"}))


def test_allow_list_lets_guarded_request_reach_that_port_only(server, canary, allow):
    response = guarded_request("GET", server.url("/hello"), allow=allow)
    assert (response.status, response.body) == (200, b"hello")
    assert response.headers["X-Seen-Host"] == f"127.0.0.1:{server.port}"
    assert response.url == server.url("/hello")

    before = canary.connections
    with pytest.raises(ForbiddenUrl):
        guarded_request("GET", canary.url("/"), allow=allow)
    assert canary.connections == before


def test_post_sends_the_body_and_headers(server, allow):
    response = guarded_request(
        "POST",
        server.url("/echo"),
        allow=allow,
        body=b'{"a": 1}',
        headers={"Content-Type": "application/json", "Host": "spoofed.example"},
    )
    seen = json.loads(response.body)
    assert seen["method"] == "POST" and seen["body"] == '{"a": 1}'
    assert seen["host"] == f"127.0.0.1:{server.port}"  # the caller cannot pick the Host


def test_sink_receives_the_body_in_chunks(server, allow):
    chunks: list[bytes] = []
    response = guarded_request(
        "GET", server.url("/big"), allow=allow, sink=chunks.append, max_bytes=4 * 2**20
    )
    assert response.body == b""
    assert b"".join(chunks) == b"b" * 2 * 2**20


def test_connection_refused_is_fetch_failed():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UrlFetchError) as failed:
        guarded_request("GET", f"http://127.0.0.1:{port}/", allow=frozenset({f"127.0.0.1:{port}"}))
    assert failed.value.code == "fetch_failed"


def test_a_name_that_does_not_resolve_fails_the_fetch():
    with pytest.raises(UrlFetchError) as failed:
        guarded_request("GET", "http://no-such-name.example/")
    assert failed.value.code == "fetch_failed"
    assert not isinstance(failed.value, ForbiddenUrl)


# --- resolving once (DNS rebinding) -------------------------------------------------


def test_guarded_request_resolves_once_and_connects_to_the_checked_address(
    server, dns, connections
):
    # The first answer is the one checked and used; a rebinding resolver would
    # answer differently the next time, but there is no next time.
    dns.set("rebind.test", ["127.0.0.1"], ["10.0.0.1"])
    response = guarded_request(
        "GET",
        f"http://rebind.test:{server.port}/hello",
        allow=frozenset({f"rebind.test:{server.port}"}),
    )
    assert response.status == 200
    assert response.headers["X-Seen-Host"] == f"rebind.test:{server.port}"
    assert dns.calls == [("rebind.test", server.port)]
    assert connections.opened == [("127.0.0.1", server.port)]


def test_each_redirect_hop_is_resolved_once(server, dns, connections):
    dns.set("rebind.test", ["127.0.0.1"])
    response = guarded_request(
        "GET",
        f"http://rebind.test:{server.port}/relative",
        allow=frozenset({f"rebind.test:{server.port}"}),
    )
    assert (response.status, response.body) == (200, b"hello")
    assert dns.calls == [("rebind.test", server.port)] * 2
    assert connections.opened == [("127.0.0.1", server.port)] * 2


def test_a_name_that_rebinds_after_submission_is_refused_at_fetch(dns, canary, connections):
    dns.set("flip.example", [PUBLIC_IP], ["127.0.0.1"])
    url = f"http://flip.example:{canary.port}/"
    check_url(url)  # at submission it resolved to a public address
    before = canary.connections
    with pytest.raises(ForbiddenUrl, match="127.0.0.1"):
        guarded_request("GET", url)
    assert connections.opened == []
    assert canary.connections == before


# --- redirects --------------------------------------------------------------------


def test_redirect_to_a_port_not_allowed_is_refused(server, canary, allow, connections):
    before = canary.connections
    with pytest.raises(ForbiddenUrl):
        guarded_request("GET", server.url("/to-canary"), allow=allow)
    assert canary.connections == before
    assert connections.opened == [("127.0.0.1", server.port)]


@pytest.mark.parametrize(
    ("path", "reason"), [("/to-metadata", "169.254.169.254"), ("/to-file", "http://")]
)
def test_redirect_to_a_forbidden_place_is_refused(server, allow, connections, path, reason):
    with pytest.raises(ForbiddenUrl, match="redirects") as refused:
        guarded_request("GET", server.url(path), allow=allow)
    assert reason in refused.value.message
    assert connections.opened == [("127.0.0.1", server.port)]


def test_redirect_loop_is_too_many_redirects(server, allow):
    hits_before = len(server.hits)
    with pytest.raises(UrlFetchError) as failed:
        guarded_request("GET", server.url("/loop"), allow=allow, max_redirects=3)
    assert failed.value.code == "too_many_redirects"
    assert len(server.hits) - hits_before == 4  # the first request and three redirects


def test_relative_redirect_is_followed(server, allow):
    response = guarded_request("GET", server.url("/relative"), allow=allow)
    assert (response.status, response.body) == (200, b"hello")
    assert response.url == server.url("/hello")
    assert response.redirects == [server.url("/hello")]


def test_redirects_are_not_followed_when_told_not_to(server, allow):
    response = guarded_request("POST", server.url("/relative"), allow=allow, follow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "hello"


@pytest.mark.parametrize(
    ("path", "method", "body"),
    [("/see-other", "GET", ""), ("/found", "GET", ""), ("/temporary", "POST", "payload")],
)
def test_post_redirects_change_method_like_browsers(server, allow, path, method, body):
    response = guarded_request("POST", server.url(path), allow=allow, body=b"payload")
    seen = json.loads(response.body)
    assert (seen["method"], seen["body"]) == (method, body)


def test_credentials_do_not_follow_a_redirect_to_another_origin(server, dns):
    dns.set("localhost", ["127.0.0.1"])
    allow = frozenset({f"127.0.0.1:{server.port}", f"localhost:{server.port}"})
    headers = {"Authorization": "Bearer secret"}
    same = guarded_request("GET", server.url("/found"), allow=allow, headers=headers)
    assert json.loads(same.body)["authorization"] == "Bearer secret"
    other = guarded_request("GET", server.url("/to-localhost"), allow=allow, headers=headers)
    assert json.loads(other.body)["authorization"] is None


# --- deadline and byte cap -----------------------------------------------------------


@pytest.mark.parametrize("path", ["/slow", "/slow-headers"])
def test_total_deadline_stops_a_server_that_dribbles(server, allow, path):
    started = time.monotonic()
    with pytest.raises(UrlFetchError) as failed:
        guarded_request("GET", server.url(path), allow=allow, deadline=1.0)
    assert failed.value.code == "timed_out"
    assert time.monotonic() - started < 5  # a sanity bound, not a timing assertion


def test_body_over_the_cap_is_too_large(server, allow):
    with pytest.raises(UrlFetchError) as failed:
        guarded_request("GET", server.url("/big"), allow=allow, max_bytes=2**20)
    assert failed.value.code == "too_large"


def test_declared_length_over_the_cap_is_refused_before_reading(server, allow):
    chunks: list[bytes] = []
    with pytest.raises(UrlFetchError) as failed:
        guarded_request(
            "GET", server.url("/big-declared"), allow=allow, max_bytes=2**20, sink=chunks.append
        )
    assert failed.value.code == "too_large"
    assert chunks == []


# --- TLS verifies the name while connecting to the checked IP ------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalServer, Path]]:
    """An HTTPS server on 127.0.0.1 whose certificate (from a test CA) names tls.test."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject, issuer, key, signer, *, ca: bool, names=()):
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False
            ).add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "urlguard test CA")])
    ca_cert = certificate(ca_name, ca_name, ca_key, ca_key, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tls.test")])
    leaf = certificate(leaf_name, ca_name, leaf_key, ca_key, ca=False, names=["tls.test"])

    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (directory / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (directory / "leaf.key").write_bytes(
        leaf_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "leaf.pem", directory / "leaf.key")
    srv = LocalServer(tls=context)
    srv.routes["/hello"] = lambda h: reply(h, 200, b"secure hello")
    yield srv, directory / "ca.pem"
    srv.stop()


def test_https_verifies_the_host_name_not_the_ip(tls_server, dns, connections, monkeypatch):
    srv, ca = tls_server
    monkeypatch.setattr(urlguard.certifi, "where", lambda: str(ca))
    dns.set("tls.test", ["127.0.0.1"])
    dns.set("other.test", ["127.0.0.1"])
    allow = frozenset({f"tls.test:{srv.port}", f"other.test:{srv.port}"})

    response = guarded_request("GET", f"https://tls.test:{srv.port}/hello", allow=allow)
    assert (response.status, response.body) == (200, b"secure hello")
    assert connections.opened == [("127.0.0.1", srv.port)]

    # Same IP, same certificate, but a name the certificate does not carry.
    with pytest.raises(UrlFetchError) as failed:
        guarded_request("GET", f"https://other.test:{srv.port}/hello", allow=allow)
    assert failed.value.code == "fetch_failed"


# --- ALLOW_PRIVATE_URLS ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", frozenset()),
        ("   ", frozenset()),
        ("127.0.0.1:8123", frozenset({"127.0.0.1:8123"})),
        (
            " 127.0.0.1:8123 , Hooks.Local:9000,,",
            frozenset({"127.0.0.1:8123", "hooks.local:9000"}),
        ),
        ("[::1]:8123", frozenset({"[::1]:8123"})),
        ("[0:0::0:1]:8123", frozenset({"[::1]:8123"})),
    ],
)
def test_parse_allow_list(raw, expected):
    assert parse_allow_list(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["127.0.0.1", "127.0.0.1:", ":8123", "host:0", "host:65536", "host:http", "::1:8123", "[x]:1"],
)
def test_parse_allow_list_refuses_entries_without_a_valid_port(raw):
    with pytest.raises(ValueError, match="ALLOW_PRIVATE_URLS entry"):
        parse_allow_list(raw)
