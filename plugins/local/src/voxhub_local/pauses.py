"""Where the speech and the pauses of a piece of audio are, from the signal's energy.

Whisper is trained on clips of at most 30 seconds that hold whole
utterances. Fed a long recording, it moves on in 30-second steps cut
wherever its own timestamps fall, and ``tiny.en`` then misses or mangles
words at those steps more often than on short clips. :class:`Levels` lets
a long file be decoded as a series of pieces shaped like short clips: each
piece ends in the longest pause of its last seconds
(:meth:`Levels.find_cut`), so it holds whole utterances, and the next piece
starts in that same pause. It also tells whether a stretch of a piece holds
any sound at all (:meth:`Levels.loud_seconds`), which is how the engine
catches the two ways Whisper goes wrong at a piece's edges: text made up
over silence, and speech left out.

It works on the decoded PCM alone (no model, no word timestamps): the level
of each 20 ms frame in dB, and a threshold set from the piece's own quiet
and loud frames, so that it adapts to the recording's noise floor.

Pure numpy, no engine import.
"""

from __future__ import annotations

from typing import Final

import attrs
import numpy as np
import numpy.typing as npt

__all__ = ["FRAME_SECONDS", "Levels", "frame_levels"]

Float32Array = npt.NDArray[np.float32]
FloatArray = npt.NDArray[np.float64]

#: Length of one analysis frame.
FRAME_SECONDS: Final = 0.02
#: The quiet threshold sits this share of the way from the piece's quiet level
#: (10th percentile of its frames) to its loud level (90th percentile)...
_THRESHOLD_SHARE: Final = 0.3
#: ...but never more than this many dB above the quiet level (on clean audio,
#: where the two are 60 dB or more apart, only near-silence counts as a pause).
_THRESHOLD_MAX_DB: Final = 12.0
#: A piece ends this long after the start of the pause it is cut in (or mid-pause).
_END_MARGIN_SECONDS: Final = 0.1
#: An utterance's piece ends in the middle of the pause after it, but at most this far in.
_UTTERANCE_MARGIN_SECONDS: Final = 0.5
#: Frames below this (dB of full scale) are digital silence, not a noise floor.
_DIGITAL_SILENCE_DB: Final = -90.0
#: Below any real signal: keeps log10 finite on digital silence.
_SILENCE_POWER: Final = 1e-10


def frame_levels(samples: Float32Array, frame: int) -> FloatArray:
    """The level in dB (of mean power) of each whole ``frame``-sample frame of ``samples``."""
    count = len(samples) // frame
    if count == 0:
        return np.zeros(0, dtype=np.float64)
    frames = samples[: count * frame].astype(np.float64).reshape(count, frame)
    power = np.mean(frames * frames, axis=1)
    levels: FloatArray = 10.0 * np.log10(power + _SILENCE_POWER)
    return levels


@attrs.frozen
class Levels:
    """The level of each frame of a stretch of audio, and its quiet threshold.

    Attributes:
        levels: dB per :data:`FRAME_SECONDS` frame (see :func:`frame_levels`).
        threshold: Frames at or below this level are quiet (pauses), above it loud.
        rate: Samples per second of the audio measured.
    """

    levels: FloatArray
    threshold: float
    rate: int

    @classmethod
    def of(cls, samples: Float32Array, rate: int) -> Levels:
        """Measure ``samples``: the threshold comes from their own 10th and 90th percentiles."""
        levels = frame_levels(samples, cls.frame_samples(rate))
        if len(levels) == 0:
            return cls(levels, 0.0, rate)
        # Digital silence (a pause edited in, a silent lead-in) says nothing about the
        # noise floor of the recording: left out unless it is nearly all there is.
        audible = levels[levels > _DIGITAL_SILENCE_DB]
        measured = audible if len(audible) >= len(levels) // 10 else levels
        quiet_level, loud_level = (float(v) for v in np.percentile(measured, [10.0, 90.0]))
        threshold = quiet_level + min(_THRESHOLD_MAX_DB,
                                      _THRESHOLD_SHARE * (loud_level - quiet_level))
        return cls(levels, threshold, rate)

    @staticmethod
    def frame_samples(rate: int) -> int:
        """Samples in one frame at ``rate``."""
        return max(1, round(FRAME_SECONDS * rate))

    def loud_seconds(self, start: float, end: float) -> float:
        """Seconds of loud frames between ``start`` and ``end`` (seconds from the beginning)."""
        first = max(0, int(start / FRAME_SECONDS))
        last = min(len(self.levels), int(np.ceil(end / FRAME_SECONDS)))
        if last <= first:
            return 0.0
        return float(np.count_nonzero(self.levels[first:last] > self.threshold)) * FRAME_SECONDS

    def first_sound(self) -> float | None:
        """Seconds from the start to the first loud frame; ``None`` if there is none."""
        sounds = np.flatnonzero(self.levels > self.threshold)
        return float(sounds[0]) * FRAME_SECONDS if len(sounds) else None

    def find_utterance_end(self, shortest: float, pause: float, limit: float) -> int | None:
        """The sample at which to end a piece holding one utterance, or ``None``.

        An utterance ends at the first pause (run of quiet frames) of at
        least ``pause`` seconds that starts ``shortest`` seconds or more
        after the first loud frame: a shorter stretch of speech (a word or
        two) stays with the next one. Only the first ``limit`` seconds are
        searched; ``None`` when they hold no sound or no such pause.

        Returns:
            A sample index in the middle of the pause, at most
            :data:`_UTTERANCE_MARGIN_SECONDS` after its start (ending a piece in
            the middle, as a short clip would, gave fewer errors than early).
        """
        stop = min(len(self.levels), int(limit / FRAME_SECONDS))
        loud = self.levels[:stop] > self.threshold
        sounds = np.flatnonzero(loud)
        if len(sounds) == 0:
            return None
        first = int(sounds[0]) + max(1, round(shortest / FRAME_SECONDS))
        needed = max(1, round(pause / FRAME_SECONDS))
        # Runs of quiet frames from ``first`` on: where each starts and how long it is.
        quiet = np.concatenate(([False], ~loud[first:], [False])).astype(np.int8)
        edges = np.flatnonzero(np.diff(quiet))
        starts, lengths = edges[0::2], edges[1::2] - edges[0::2]
        long_enough = np.flatnonzero(lengths >= needed)
        if len(long_enough) == 0:
            return None
        run = long_enough[0]
        at = first + int(starts[run]) + min(float(lengths[run]) / 2,
                                            _UTTERANCE_MARGIN_SECONDS / FRAME_SECONDS)
        return max(1, round(at * self.frame_samples(self.rate)))

    def find_cut(self, limit: float, search: float) -> int:
        """The sample at which to end a piece that must not be longer than ``limit`` seconds.

        The cut goes in the longest pause (run of quiet frames) within the
        last ``search`` seconds before ``limit`` (the latest of equally long
        ones, so pieces stay long), shortly after its start; without any
        quiet frame there, in the quietest frame.

        Returns:
            A sample index between ``limit - search`` and ``limit`` seconds, at least 1.
        """
        frame = self.frame_samples(self.rate)
        stop = min(len(self.levels), int(limit / FRAME_SECONDS))
        first = min(stop, max(0, int((limit - search) / FRAME_SECONDS)))
        span = self.levels[first:stop]
        quiet = (span <= self.threshold).tolist()
        best_start, best_length, run_start = -1, 0, -1
        for index, is_quiet in enumerate(quiet):
            if is_quiet and run_start < 0:
                run_start = index
            if run_start >= 0 and (not is_quiet or index == len(quiet) - 1):
                end = index + 1 if is_quiet else index
                if end - run_start >= best_length:  # >=: the latest of equal pauses
                    best_start, best_length = run_start, end - run_start
                run_start = -1
        if best_length:
            # Early in the pause: the piece then ends soon after its last words (Whisper
            # tends to make text up over a long silence at the end), and the next one
            # starts with the rest of the pause (which Whisper skips well).
            at = best_start + min(best_length / 2, _END_MARGIN_SECONDS / FRAME_SECONDS)
        elif len(span):  # sound throughout: the quietest frame (a word may be cut there)
            at = float(np.argmin(span)) + 0.5
        else:
            at = 0.0
        return max(1, min(round(limit * self.rate), round((first + at) * frame)))
