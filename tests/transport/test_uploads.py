"""Transport uploads: multipart and raw bodies streamed in constant memory, and the
connect / write / read timeouts, against real loopback servers.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from transport_support import (
    Handler,
    MiB,
    RawHandler,
    client,
    content_length,
    read_head,
    reset,
    self_signed_tls,
    sequence,
    sha256_of,
    sparse_file,
)
from voxhub.errors import InvalidInputError, RequestTimeoutError, TransportError
from voxhub.transport import MultipartBody, Part, RawBody, RetryPolicy, Timeouts
from werkzeug.wrappers import Request, Response

# --- streamed bodies ------------------------------------------------------------------


def test_streaming_multipart_upload_of_a_large_sparse_file(
    server: Callable[[Handler], str], tmp_path: Path
) -> None:
    big = sparse_file(tmp_path / "big.wav", 64 * MiB)
    received: dict[str, object] = {}

    def upload(request: Request) -> Response:
        part = request.files["media"]
        digest = hashlib.sha256()
        size = 0
        while chunk := part.stream.read(MiB):
            digest.update(chunk)
            size += len(chunk)
        received.update(
            size=size,
            sha=digest.hexdigest(),
            name=part.filename,
            ctype=part.content_type,
            options=request.form["options"],
            length=request.content_length,
        )
        return Response("{}", content_type="application/json")

    progress: list[tuple[int, int]] = []
    body = MultipartBody([Part("options", '{"a": 1}'), Part("media", path=big)])
    resp = (
        client()
        .bind("t")
        .request(
            "POST",
            server(upload),
            operation="submit",
            body=body,
            progress=lambda s, t: progress.append((s, t)),
        )
    )
    assert resp.ok
    assert received["size"] == big.stat().st_size
    assert received["sha"] == sha256_of(big)
    assert received["name"] == "big.wav"  # the base name only, never the directory
    assert received["ctype"] in {"audio/x-wav", "audio/wav"}
    assert received["options"] == '{"a": 1}'
    assert received["length"] == body.content_length
    assert progress[-1] == (big.stat().st_size, big.stat().st_size)
    assert [s for s, _ in progress] == sorted(s for s, _ in progress)


def test_raw_upload_of_a_large_sparse_file_in_constant_memory(
    raw_server: Callable[[RawHandler], str],
    tmp_path: Path,
) -> None:
    big = sparse_file(tmp_path / "big.mp3", 96 * MiB)
    received: dict[str, object] = {}

    def upload(conn: socket.socket, stop: threading.Event) -> None:
        head, have = read_head(conn)
        # Read into one reused buffer, so the memory traced below is the client's.
        buffer = memoryview(bytearray(MiB))
        digest = hashlib.sha256(b"\0" * have)  # the file's first bytes: a hole reads as zeros
        left = content_length(head) - have
        while left > 0:
            n = conn.recv_into(buffer, min(left, MiB))
            if not n:
                break
            digest.update(buffer[:n])
            left -= n
        lines = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(b":") for line in head.split(b"\r\n")[1:])
        }
        received.update(
            size=content_length(head) - left,
            sha=digest.hexdigest(),
            ctype=lines.get(b"content-type"),
            length=lines.get(b"content-length"),
            chunked=lines.get(b"transfer-encoding"),
        )
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    # The client runs alone in a child process, so that what tracemalloc sees there is
    # the upload's memory and nothing of this process's other threads.
    result = subprocess.run(
        [sys.executable, "-c", UPLOAD_IN_A_CHILD, raw_server(upload), str(big)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    peak, status, calls, last = json.loads(result.stdout.splitlines()[-1])
    size = big.stat().st_size
    assert status == 200
    assert received == {
        "size": size,
        "sha": sha256_of(big),
        "ctype": b"application/octet-stream",
        "length": str(size).encode(),
        "chunked": None,
    }
    # A few chunks in flight, whatever the file's size (96 MiB here).
    assert peak < 4 * MiB, f"peak {peak / MiB:.1f} MiB"
    assert calls == size // (256 * 1024) and last == [size, size]


UPLOAD_IN_A_CHILD = """
import json, sys, tracemalloc
from pathlib import Path
from voxhub.transport import HttpClient, RawBody, upload_progress
http = HttpClient().bind("t")
seen = []
tracemalloc.start()
with upload_progress(lambda sent, total: seen.append((sent, total))):
    resp = http.request("POST", sys.argv[1], operation="upload", body=RawBody(Path(sys.argv[2])))
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
assert [s for s, _ in seen] == sorted(s for s, _ in seen)
print(json.dumps([peak, resp.status, len(seen), list(seen[-1])]))
"""


def test_raw_bodies_from_file_objects_and_iterables_are_replayed_for_retries(
    server: Callable[[Handler], str], tmp_path: Path
) -> None:
    bodies: list[tuple[bytes, str | None]] = []

    def handler(request: Request) -> Response:
        bodies.append((request.get_data(), request.headers.get("Content-Type")))
        return Response("busy", 503) if len(bodies) % 2 else Response("ok")

    url = server(handler)
    http = client().bind("t", retry=RetryPolicy(max_attempts=3))
    (tmp_path / "a.bin").write_bytes(b"0123456789" * 100_000)
    with (tmp_path / "a.bin").open("rb") as fh:
        fh.seek(5)  # a file object is sent from where it stands, and rewound to there
        assert http.request("PUT", url, operation="u", body=RawBody(fh)).ok
    chunks = [b"ab", b"", b"cd"]
    body = RawBody(chunks, length=4, content_type="audio/wav")
    assert http.request("PUT", url, operation="u", body=body).ok
    expected_file = (b"0123456789" * 100_000)[5:]
    assert bodies == [
        (expected_file, "application/octet-stream"),
        (expected_file, "application/octet-stream"),
        (b"abcd", "audio/wav"),
        (b"abcd", "audio/wav"),
    ]


def test_a_one_shot_body_is_sent_once(server: Callable[[Handler], str]) -> None:
    handler, seen = sequence(Response("busy", 429, headers={"Retry-After": "0"}), Response("ok"))

    def generate() -> Iterator[bytes]:
        yield b"hello "
        yield b"world"

    resp = (
        client()
        .bind("t")
        .request("PUT", server(handler), operation="u", body=RawBody(generate(), length=11))
    )
    assert resp.status == 429 and len(seen) == 1  # nothing to resend from: the answer stands
    assert seen[0].get_data() == b"hello world"


def test_a_body_longer_than_announced_fails_before_its_last_byte(
    server: Callable[[Handler], str],
) -> None:
    handler, seen = sequence(Response("ok"))
    url = server(handler)
    http = client().bind("t")
    with pytest.raises(InvalidInputError) as info:
        http.request("POST", url, operation="u", body=RawBody([b"abc", b"def"], length=3))
    assert info.value.field == "body" and "more than its 3 bytes" in str(info.value)
    with pytest.raises(InvalidInputError, match="ended after 3 of its 5 bytes"):
        http.request("POST", url, operation="u", body=RawBody([b"abc"], length=5))
    # The broken connections were discarded: the next request is read cleanly.
    assert http.request("POST", url, operation="u", body=b"fine").ok
    assert seen[-1].get_data() == b"fine"


def test_raw_body_rejects_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"pathlib\.Path"):
        RawBody(str(tmp_path))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="length is required"):
        RawBody(iter([b"x"]))
    with pytest.raises(ValueError, match="more than the 3 bytes"):
        RawBody(b"abc", length=4)
    with pytest.raises(TypeError, match="binary mode"):
        RawBody(io.StringIO("text"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Timeouts\.write"):
        Timeouts(write=0)


# --- connect, write and read timeouts -------------------------------------------------


def test_a_server_pausing_longer_than_the_connect_timeout_does_not_fail_the_upload(
    server: Callable[[Handler], str], tmp_path: Path
) -> None:
    big = sparse_file(tmp_path / "big.bin", 64 * MiB)  # far more than the socket buffers hold
    received: list[int] = []

    def busy_then_read(request: Request) -> Response:
        time.sleep(1.0)  # longer than the connect timeout, shorter than the write timeout
        size = 0
        while chunk := request.stream.read(MiB):
            size += len(chunk)
        received.append(size)
        return Response("ok")

    http = client(timeouts=Timeouts(connect=0.3, read=5, write=5)).bind(
        "t", retry=RetryPolicy(max_attempts=1)
    )
    resp = http.request("POST", server(busy_then_read), operation="submit", body=RawBody(big))
    assert resp.ok and received == [big.stat().st_size]


def test_a_server_that_never_reads_fails_the_upload_as_stalled(
    raw_server: Callable[[RawHandler], str],
    tmp_path: Path,
) -> None:
    big = sparse_file(tmp_path / "big.bin", 64 * MiB)

    def never_reads(conn: socket.socket, stop: threading.Event) -> None:
        read_head(conn)
        stop.wait(20)

    url = raw_server(never_reads)
    http = client(timeouts=Timeouts(connect=2, read=2, write=0.3)).bind(
        "t", retry=RetryPolicy(max_attempts=2)
    )
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError) as info:
        http.request("POST", url, operation="submit", body=RawBody(big))
    # Bounded: two attempts of a 0.3 s stall each, not the read timeout nor a hang.
    assert time.monotonic() - started < 15
    assert "upload stalled: the server read nothing for 0.3 s" in str(info.value)
    assert "dropped" not in str(info.value)
    # Stalled before the end of the body: the server cannot have acted, so even a
    # submit was retried, and the job is not in doubt.
    assert info.value.in_doubt is False and info.value.details["attempts"] == 2


def test_a_reset_before_the_body_is_sent_is_not_in_doubt_but_after_it_is(
    raw_server: Callable[[RawHandler], str],
    tmp_path: Path,
) -> None:
    big = sparse_file(tmp_path / "big.bin", 64 * MiB)

    def reset_after_head(conn: socket.socket, stop: threading.Event) -> None:
        read_head(conn)
        reset(conn)

    def reset_after_body(conn: socket.socket, stop: threading.Event) -> None:
        head, have = read_head(conn)
        left = content_length(head) - have
        while left > 0:
            left -= len(conn.recv(min(left, MiB)))
        reset(conn)

    http = client().bind("t", retry=RetryPolicy(max_attempts=2))
    with pytest.raises(TransportError) as early:
        http.request("POST", raw_server(reset_after_head), operation="submit", body=RawBody(big))
    assert early.value.in_doubt is False and early.value.details["attempts"] == 2
    assert "before the whole request was sent" in str(early.value)
    with pytest.raises(TransportError) as late:
        http.request("POST", raw_server(reset_after_body), operation="submit", body=b"{}")
    assert late.value.in_doubt is True and late.value.details["attempts"] == 1
    assert "connection dropped by the server" in str(late.value)


def test_https_uploads_have_the_same_write_timeout(
    raw_server: Callable[..., str], tmp_path: Path
) -> None:
    tls, ca_file = self_signed_tls(tmp_path)
    big = sparse_file(tmp_path / "big.bin", 32 * MiB)
    received: list[int] = []

    def busy_then_read(conn: socket.socket, stop: threading.Event) -> None:
        head, have = read_head(conn)
        time.sleep(1.0)  # longer than the connect timeout, shorter than the write timeout
        left = content_length(head) - have
        buffer = memoryview(bytearray(MiB))
        while left > 0 and (n := conn.recv_into(buffer, min(left, MiB))):
            left -= n
        received.append(content_length(head) - left)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def never_reads(conn: socket.socket, stop: threading.Event) -> None:
        read_head(conn)
        stop.wait(20)

    policy = RetryPolicy(max_attempts=1)
    slow = client(timeouts=Timeouts(connect=0.3, read=5, write=5), ca_bundle=ca_file)
    resp = slow.bind("t", retry=policy).request(
        "POST", raw_server(busy_then_read, tls), operation="submit", body=RawBody(big)
    )
    assert resp.text == "ok" and received == [big.stat().st_size]
    stalled = client(timeouts=Timeouts(connect=2, read=2, write=0.3), ca_bundle=ca_file)
    with pytest.raises(RequestTimeoutError, match="upload stalled") as info:
        stalled.bind("t", retry=policy).request(
            "POST", raw_server(never_reads, tls), operation="submit", body=RawBody(big)
        )
    assert info.value.in_doubt is False
