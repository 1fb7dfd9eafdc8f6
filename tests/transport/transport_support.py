"""Loopback servers and helpers shared by the transport tests.

Imported by name: ``conftest.py`` puts this folder on ``sys.path``, because test
modules cannot import a conftest in importlib mode.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from voxhub.clock import FakeClock
from voxhub.transport import HttpClient
from werkzeug.wrappers import Request, Response

Handler = Callable[[Request], Response]
RawHandler = Callable[[socket.socket, threading.Event], None]
MiB = 1024 * 1024


class RawServer:
    """A loopback TCP server handing each connection to ``handle(conn, stop)`` in a thread.

    For what a WSGI server cannot do: never read a body, reset a connection half-way.
    It stops accepting after 30 s, or when its test ends.
    """

    def __init__(self, handle: RawHandler, tls: ssl.SSLContext | None = None) -> None:
        self.handle = handle
        self.tls = tls
        self.stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self._threads: list[threading.Thread] = []
        self._deadline = time.monotonic() + 30
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self.stop.is_set() and time.monotonic() < self._deadline:
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)
        self._sock.close()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self.handle(conn, self.stop)

    def close(self) -> None:
        self.stop.set()
        self._accepting.join(5)
        for thread in self._threads:
            thread.join(5)


def read_head(conn: socket.socket) -> tuple[bytes, int]:
    """Read a request's head; returns it and the body bytes already read past it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("client went away")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, len(rest)


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def reset(conn: socket.socket) -> None:
    """Close with a RST (SO_LINGER 0): the client sees a reset, not a clean end."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


def sequence(*responses: Response) -> tuple[Handler, list[Request]]:
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        request.get_data()
        seen.append(request)
        return responses[min(len(seen), len(responses)) - 1]

    return handler, seen


def client(clock: FakeClock | None = None, **kw: object) -> HttpClient:
    return HttpClient(clock=clock or FakeClock(), **kw)  # type: ignore[arg-type]


def sparse_file(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that takes no disk space (a hole), with a marked tail."""
    with path.open("wb") as fh:
        fh.truncate(size)
        fh.seek(-4, 2)
        fh.write(b"tail")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def self_signed_tls(folder: Path) -> tuple[ssl.SSLContext, str]:
    """A server TLS context for 127.0.0.1 and the CA file a client must trust for it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "voxhub test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, str(cert_file)
