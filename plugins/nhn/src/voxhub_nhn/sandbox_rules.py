"""How the NHN sandbox judges requests, written from NHN's pages, not from the client's code.

Part of the NHN sandbox (:mod:`voxhub_nhn.sandbox`). Nothing here imports the
client's ``options``, ``errors`` or ``audio`` checks: a client that misread NHN's
limits, formats or result codes must not pass its own tests because the emulator
shares its reading. Sources: ``overview.md`` (limits, formats), ``error-code.md``
(result codes) and the API Gateway error page, as summarised in ``specs/nhn.md``.
"""

from __future__ import annotations

import contextlib
import io
import wave
from typing import Final

import attrs

from .audio import AudioInfo

__all__ = [
    "GATEWAY_STATUS",
    "MB",
    "NHN_LIMITS",
    "RESULT_KEYS",
    "SandboxLimits",
    "examine_audio",
    "http_status_of",
    "result_key",
]

#: NHN's "MB"; the sandbox reads it as 10**6 bytes (NHN does not say which).
MB: Final = 1_000_000


@attrs.frozen
class SandboxLimits:
    """One API's media limits as the emulated server enforces them (bytes, seconds)."""

    max_bytes: int
    min_seconds: float = 0.36
    max_seconds: float = 3600.0


#: overview.md since 2026-07: sync and async, 150 MB, 0.36-3,600 s.
NHN_LIMITS: Final = SandboxLimits(150 * MB, 0.36, 3600.0)

#: error-code.md keys (the message NHN puts in ``resultMessage`` when it has no other).
RESULT_KEYS: Final[dict[int, str]] = {
    0: "SUCCESS", -1: "FAIL", 400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN",
    404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 415: "UNSUPPORTED_MEDIA_TYPE",
    4000001: "INVALID_PARAMETER", 4000002: "MAX_UPLOAD_SIZE_EXCEEDED",
    4000003: "INVALID_FILE_TYPE", 4000004: "UPLOADED_FILE_IS_EMPTY",
    4000201: "INVALID_AUDIO_FILE", 4000202: "AUDIO_LENGTH_TOO_LONG",
    4000203: "AUDIO_LENGTH_TOO_SHORT", 4000204: "SPEECH_NOT_DETECTED",
    4010001: "INVALID_APPKEY_SECRETKEY", 4010002: "INVALID_UUID", 4010003: "NOT_ALLOWED_USER",
    4010004: "INVALID_PROJECT", 4010005: "UNAUTHORIZED_ROLE", 4010006: "INVALID_ASYNC_ID",
    4010007: "INVALID_TOKEN", 4010008: "PERMISSION_DENIED", 5000001: "INTERNAL_API_FAIL",
    5000002: "ERROR_PARSING_FAIL", 5000003: "DATABASE_FAIL", 5000004: "RESOURCE_DELETE_FAIL",
    5000005: "FILE_READ_FAIL", 5004001: "STT_API_FAIL", 5004002: "STT_API_RETURN_EMPTY",
    5004003: "STT_API_CONVERSION_FAIL", 5004004: "STT_API_AUDIO_READ_FAIL",
}

#: API Gateway codes: sent with a real HTTP status, never with 200.
GATEWAY_STATUS: Final[dict[int, int]] = {
    4131000: 413, 4291000: 429, 4041007: 404, 5020001: 502, 5030001: 503, 4031007: 403,
    5021001: 502, 4012001: 401, 4012002: 401,
    **{code: 401 for code in range(4011001, 4011010)},
}


def result_key(code: int) -> str:
    """The documented key of ``code`` (``"FAIL"`` for an unlisted one)."""
    return RESULT_KEYS.get(code, "FAIL")


def http_status_of(code: int) -> int:
    """The status a code encodes: 7-digit codes are HTTP status * 10**4 + sub-code."""
    if code in GATEWAY_STATUS:
        return GATEWAY_STATUS[code]
    if code <= 0:
        return 200 if code == 0 else 500
    status = code // 10_000 if code >= 1_000_000 else code
    return status if 100 <= status <= 599 else 500


# --- media ---------------------------------------------------------------------------


def _kind(head: bytes) -> str | None:
    """overview.md's formats (WAV, WebM, MP3, OGG, FLAC, AAC, AC3), told by content."""
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    for magic, kind in ((b"\x1a\x45\xdf\xa3", "webm"), (b"OggS", "ogg"), (b"fLaC", "flac"),
                        (b"ID3", "mp3"), (b"ADIF", "aac"), (b"\x0b\x77", "ac3")):
        if head.startswith(magic):
            return kind
    if len(head) >= 2 and head[0] == 0xFF:
        if head[1] & 0xF6 == 0xF0:
            return "aac"  # ADTS
        if head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
            return "mp3"  # an MPEG audio frame
    return None


def _decode(data: bytes) -> tuple[float, bool] | None:
    """Duration and silence of decodable audio, or ``None`` when it will not decode."""
    try:
        import numpy
        import soundfile
    except (ImportError, OSError):
        soundfile = None
    if soundfile is not None:
        with contextlib.suppress(RuntimeError, ValueError, TypeError, OSError, EOFError):
            samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
            if rate:
                silent = samples.size == 0 or float(numpy.abs(samples).max()) < 1e-3
                return len(samples) / float(rate), bool(silent)
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            rate, frames = wav.getframerate(), wav.getnframes()
            pcm = wav.readframes(frames)
    except (wave.Error, EOFError, OSError, RuntimeError, ValueError):
        return None
    if not rate:
        return None
    return frames / rate, len(set(pcm)) <= 1


def examine_audio(data: bytes) -> AudioInfo | str:
    """What the emulated server learns of an upload, or the reason it is not audio it takes.

    Returns ``"type"`` for a format NHN does not list and ``"invalid"`` for listed
    audio that does not decode. WebM, AAC and AC3 are not decoded here: their
    duration is estimated from the size at 128 kbit/s.
    """
    kind = _kind(data[:16])
    if kind is None:
        return "type"
    if kind in ("webm", "aac", "ac3"):
        return AudioInfo(kind, len(data), len(data) / 16_000, silent=False, decodable=True)
    decoded = _decode(data)
    if decoded is None:
        return "invalid"
    duration, silent = decoded
    return AudioInfo(kind, len(data), duration, silent=silent, decodable=True)
