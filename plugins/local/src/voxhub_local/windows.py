"""The ways a long file is cut for Whisper, and the sample buffer they read from.

* **Pauses** (``chunking="pauses"``): before decoding, the
  audio is cut into pieces of at most 30 seconds, each ending in the longest
  pause of its last seconds (:func:`voxhub_local.pauses.find_cut`), and every
  piece is decoded on its own like a short clip. Nothing is decoded twice;
  a word can only be split where the audio has no pause at all for
  :data:`PAUSE_SEARCH_SECONDS`.
* **Utterances** (the default, ``chunking="utterances"``): as pauses, but each piece
  ends at the first pause of :data:`UTTERANCE_PAUSE_SECONDS` once
  :data:`SHORTEST_UTTERANCE_SECONDS` of it have passed (:func:`utterance_end`),
  so it holds one utterance, as a short clip would. One encoder pass per
  utterance instead of per 30 s: about twice the work of pauses.
* **Windows** (``chunking="windows"``, the earlier method): windows of
  ``window`` seconds are decoded (Whisper moves through each in its own
  30-second steps); only the text that ends at least :data:`GUARD_SECONDS`
  before a window's end is kept, cut in the longest pause *between decoded
  words* (:func:`keep_until_pause`), and the next window starts exactly
  there, so its first seconds are decoded again.

Either way memory holds one piece or window of samples at a time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt

from .pauses import Levels

__all__ = ["CUT_SEARCH_SECONDS", "GUARD_SECONDS", "PAUSE_PIECE_SECONDS",
           "PAUSE_SEARCH_SECONDS", "SHORTEST_UTTERANCE_SECONDS", "TAIL_LOUD_SECONDS",
           "UTTERANCE_PAUSE_SECONDS", "Buffer", "Part", "keep_until_pause", "utterance_end"]

Float32Array = npt.NDArray[np.float32]

#: Longest piece with ``chunking="pauses"``: Whisper's own window.
PAUSE_PIECE_SECONDS: Final = 30.0
#: A piece's end is looked for in this many seconds before its longest length.
PAUSE_SEARCH_SECONDS: Final = 10.0
#: Utterances: a pause at least this long ends an utterance (a sentence boundary)...
UTTERANCE_PAUSE_SECONDS: Final = 0.5
#: ...once it has lasted this long from its first sound (a shorter one joins the next).
SHORTEST_UTTERANCE_SECONDS: Final = 1.0
#: Utterances: a piece starts this long before its first sound (longer silence goes alone).
LEAD_SECONDS: Final = 0.5
#: A piece's decoding ends when less sound than this is left after a segment.
TAIL_LOUD_SECONDS: Final = 0.2
#: Windows: text ending less than this before a window's end is decoded again in the next one.
GUARD_SECONDS: Final = 3.0
#: Windows: the cut is looked for in this many seconds before the guard (or the
#: window's second half, if shorter): late enough that little is decoded twice.
CUT_SEARCH_SECONDS: Final = 15.0


class Buffer:
    """Streamed samples (blocks of :func:`voxhub_local.common.iter_pcm`), read from the front."""

    def __init__(self, blocks: Any) -> None:
        self._blocks = blocks
        self._parts: deque[Float32Array] = deque()
        self.size = 0
        self.base = 0  # absolute sample offset of the first buffered sample
        self.exhausted = False

    def fill(self, wanted: int) -> None:
        """Read blocks until ``wanted`` samples are held or the stream has ended."""
        while self.size < wanted and not self.exhausted:
            block = next(self._blocks, None)
            if block is None:
                self.exhausted = True
            elif len(block.samples):
                self._parts.append(block.samples)
                self.size += len(block.samples)

    def head(self, count: int) -> Float32Array:
        """The first ``count`` samples held (fewer at the end of the stream)."""
        joined = np.concatenate(list(self._parts)) if self._parts else np.zeros(0, np.float32)
        self._parts = deque([joined]) if len(joined) else deque()
        return joined[:count]

    def drop(self, count: int) -> None:
        """Forget the first ``count`` samples (``base`` moves on by as many)."""
        count = min(count, self.size)
        joined = self.head(self.size)
        rest = joined[count:]
        self._parts = deque([rest]) if len(rest) else deque()
        self.size -= count
        self.base += count


def keep_until_pause(found: Sequence[Any], limit: float) -> tuple[list[Any], float | None]:
    """Segments of a non-final window to keep, and where the next window starts.

    ``limit`` is the window's length less the guard. The cut goes in the
    longest pause between two words in the last ``CUT_SEARCH_SECONDS`` before
    ``limit`` (the next window then starts in silence, not mid-word, and what
    follows the cut, decoded again by the next window, is short), taking the
    kept words' segments whole and the segment it falls in partly. Without
    word times, whole segments ending by ``limit`` are kept. ``None``: nothing
    was kept, start again at ``limit``.
    """
    timed = [(index, word) for index, segment in enumerate(found)
             for word in (segment.words or ())]
    if timed:
        best: tuple[float, int] | None = None  # (pause, position in timed)
        earliest = limit - min(CUT_SEARCH_SECONDS, limit / 2)
        for position in range(len(timed) - 1):
            word, following = timed[position][1], timed[position + 1][1]
            if earliest <= word.end <= limit:
                pause = float(following.start) - float(word.end)
                if best is None or pause > best[0]:
                    best = (pause, position)
        if best is None:  # no word ends in the search span: the last one ending by the limit
            ending = [p for p, (_, w) in enumerate(timed) if w.end <= limit]
            best = (0.0, ending[-1]) if ending else None
        if best is not None:
            pause, position = best
            index, last = timed[position]
            words = [w for i, w in timed[: position + 1] if i == index]
            kept = list(found[:index])
            if words:
                kept.append(Part.of(found[index], words))
            return kept, float(last.end) + max(0.0, pause) / 2
    kept = [s for s in found if s.end <= limit]
    if kept:
        return kept, float(kept[-1].end)
    return [], None


@attrs.frozen
class Part:
    """The parts of a faster-whisper segment this module reads (to keep part of one)."""

    start: float
    end: float
    text: str
    avg_logprob: float
    words: Sequence[Any]

    @classmethod
    def of(cls, segment: Any, words: Sequence[Any]) -> Part:
        """``segment`` up to the last of ``words`` (a prefix of its words)."""
        if len(words) == len(segment.words or ()):
            return cls(segment.start, segment.end, segment.text, segment.avg_logprob, words)
        return cls(segment.start, words[-1].end, "".join(w.word for w in words),
                   segment.avg_logprob, words)


def utterance_end(levels: Levels, samples: int, seconds: float,
                   final: bool) -> tuple[int, bool]:
    """Where a piece of ``chunking=utterances`` ends in ``samples``, and whether it is last.

    ``levels`` measure the ``samples`` held from the piece's start; ``final``: they are
    the rest of the file.

    The piece is the silence before the next utterance when that is long
    (it is then not decoded, and the utterance starts shortly before its
    sound, like a short clip), else the next utterance, else (no pause long
    enough) a piece cut as ``chunking=pauses`` cuts one.
    """
    start = levels.first_sound()
    if start is None:
        return samples, final  # no sound at all: one piece, not decoded
    if start > 2 * LEAD_SECONDS:
        return round((start - LEAD_SECONDS) * levels.rate), False
    found = levels.find_utterance_end(SHORTEST_UTTERANCE_SECONDS, UTTERANCE_PAUSE_SECONDS,
                                      seconds)
    # After the last utterance of the file, its trailing silence stays with it.
    if found is not None and (not final or levels.loud_seconds(
            found / levels.rate, samples / levels.rate) >= TAIL_LOUD_SECONDS):
        return found, False
    if final:
        return samples, True
    return levels.find_cut(seconds, min(PAUSE_SEARCH_SECONDS, seconds / 2)), False
