"""Handles and results as the job store writes them, without cattrs or a redaction walk.

A result is stored as the JSON value of ``redact(dump(result))`` (what
:func:`voxhub.serialization.load` reads back) and a handle as ``dumps(dump(handle))``;
this module makes the same texts faster for handles (two writes per job) and for
transcripts, the common and the largest results:

* the transcript is turned into plain data by hand, in the field order ``dump`` uses;
* redaction is decided on the JSON text once instead of on every value: when the text
  holds no JSON escape (so every string in it appears verbatim), no key that looks
  secret and no registered secret value, redaction would change nothing and the text
  is stored as it is. In any other case (or when ``raw`` holds something only cattrs
  can dump) the text is made the long way, so the rules stay those of ``redact``.
"""

from __future__ import annotations

import re
from typing import Any

from ._records import dumps
from .models import JobHandle, Result, Segment, Transcript, Word
from .redact import is_secret_key, redact, redact_text
from .serialization import dump

__all__ = ["handle_text", "reads_back_as_itself", "result_text", "transcript_data"]

# Without backslashes in the text every JSON string is a plain ``"..."``, so this scans the
# strings in order; a string followed by ":" is a key.
_STRINGS = re.compile(r'"([^"]*)"(:?)')


def _word(w: Word) -> dict[str, Any]:
    return {"start": w.start, "end": w.end, "text": w.text, "confidence": w.confidence}


def _segment(s: Segment) -> dict[str, Any]:
    return {
        "start": s.start,
        "end": s.end,
        "text": s.text,
        "speaker": s.speaker,
        "confidence": s.confidence,
        "words": [_word(w) for w in s.words],
    }


def transcript_data(t: Transcript) -> dict[str, Any]:
    """``dump(t)`` for a transcript whose ``raw`` is plain JSON data (same keys, same order)."""
    return {
        "provider": t.provider,
        "job_id": t.job_id,
        "text": t.text,
        "language": t.language,
        "duration": t.duration,
        "segments": [_segment(s) for s in t.segments],
        "raw": t.raw,
        "type": "transcript",
    }


def _needs_redaction(text: str) -> bool:
    """Whether ``redact`` could change the data that ``text`` (compact JSON) encodes."""
    if "\\" in text:
        # An escaped string differs from its value: a secret inside it could hide from a
        # text match, so let redact look at the values themselves.
        return True
    if any(colon and is_secret_key(key) for key, colon in _STRINGS.findall(text)):
        return True
    # One pass over the whole text: no match means no string in it holds a secret.
    return redact_text(text) != text


def result_text(result: Result) -> str:
    """The JSON text the store keeps for ``result``: ``dumps(redact(dump(result)))``'s value."""
    if isinstance(result, Transcript):
        try:
            text = dumps(transcript_data(result))
        except (TypeError, ValueError):
            pass  # raw holds a non-JSON value (a Secret, a datetime, a model): cattrs dumps it
        else:
            if not _needs_redaction(text):
                return text
    return dumps(redact(dump(result)))


def handle_text(handle: JobHandle) -> str:
    """``dumps(dump(handle))``: what the store keeps for a handle."""
    data = {
        "job_id": handle.job_id,
        "provider": handle.provider,
        "kind": handle.kind.value,
        "profile": handle.profile,
        "endpoint": handle.endpoint,
        "vendor_ids": handle.vendor_ids,
        "vendor_state": handle.vendor_state,
        "idempotency_key": handle.idempotency_key,
        "created_at": handle.created_at.isoformat(),
    }
    try:
        return dumps(data)
    except (TypeError, ValueError):  # vendor_state holds a value only cattrs can dump
        return dumps(dump(handle))


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any) -> bool:
    cls = type(value)
    if cls in _SCALARS:
        return True
    if cls is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if cls is list:
        return all(_plain(v) for v in value)
    return False


def reads_back_as_itself(handle: JobHandle) -> bool:
    """Whether loading :func:`handle_text`'s text gives ``handle`` back (its vendor state is
    plain JSON data: no tuples, models or dates), so the store need not decode it again."""
    return _plain(handle.vendor_state)
