"""Finding pauses and sound in audio (voxhub_local.pauses) and what the engine does with them.

Audio: the checked-in spoken samples (docs/samples, CC0), joined with pauses
of known places and lengths, with and without a noise floor.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
import soundfile
from voxhub_local.common import Segment
from voxhub_local.pauses import FRAME_SECONDS, Levels, frame_levels
from voxhub_local.whisper import _heard

from .conftest import SAMPLES

RATE = 16000


def clip(name: str) -> npt.NDArray[np.float32]:
    data, rate = soundfile.read(str(SAMPLES / name), dtype="float32")
    assert rate == RATE
    return np.asarray(data, dtype=np.float32)


def silence(seconds: float) -> npt.NDArray[np.float32]:
    return np.zeros(round(seconds * RATE), dtype=np.float32)


def with_noise(audio: npt.NDArray[np.float32], db: float) -> npt.NDArray[np.float32]:
    """``audio`` plus white noise at ``db`` dB of full scale (a recording's noise floor)."""
    noise = np.random.default_rng(7).normal(0.0, 10 ** (db / 20), len(audio))
    return (audio + noise).astype(np.float32)


def test_frame_levels_are_db_of_mean_power() -> None:
    samples = np.concatenate([np.full(320, 0.5, np.float32), np.zeros(320, np.float32),
                              np.ones(100, np.float32)])  # the last, partial frame is left out
    levels = frame_levels(samples, 320)
    assert levels.shape == (2,)
    assert levels[0] == pytest.approx(10 * np.log10(0.25))
    assert levels[1] < -90


def speech_bounds(audio: npt.NDArray[np.float32]) -> tuple[float, float]:
    """Seconds from the start to the first and after the last clearly audible sample."""
    audible = np.flatnonzero(np.abs(audio) > 0.01)
    return audible[0] / RATE, (audible[-1] + 1) / RATE


@pytest.mark.parametrize("noise_db", [None, -50.0, -35.0])
def test_the_cut_falls_in_the_longest_pause_near_the_limit(noise_db: float | None) -> None:
    # Speech, a short pause (0.3 s more), speech, a long pause (1.2 s more), speech: ~23 s.
    hello, meeting, weather = clip("hello.wav"), clip("meeting.flac"), clip("weather.flac")
    audio = np.concatenate([hello, silence(0.3), meeting, silence(1.2), weather])
    if noise_db is not None:
        audio = with_noise(audio, noise_db)
    # The pauses run from the end of one sample's speech to the start of the next one's.
    short_pause = (speech_bounds(hello)[1], len(hello) / RATE + 0.3 + speech_bounds(meeting)[0])
    after_meeting = len(hello) / RATE + 0.3 + len(meeting) / RATE
    long_pause = (after_meeting - len(meeting) / RATE + speech_bounds(meeting)[1],
                  after_meeting + 1.2 + speech_bounds(weather)[0])
    levels = Levels.of(audio, RATE)
    # Both pauses lie in the search span: the longer one wins, cut early in it (the
    # faint last tens of milliseconds of a word may count as pause: 0.1 s of slack).
    cut = levels.find_cut(limit=len(audio) / RATE - 0.5, search=20.0) / RATE
    assert long_pause[0] - 0.1 < cut <= long_pause[0] + 0.2 and cut < long_pause[1]
    # Only the short one lies in the span: it is taken.
    cut = levels.find_cut(limit=short_pause[1] + 1.0, search=short_pause[1] - short_pause[0]
                          + 1.5) / RATE
    assert short_pause[0] - 0.1 < cut <= short_pause[0] + 0.2 and cut < short_pause[1]


def test_without_a_pause_the_cut_is_at_the_quietest_frame_of_the_span() -> None:
    audio = with_noise(clip("office.flac"), -40.0)
    levels = Levels.of(audio, RATE)
    cut = levels.find_cut(limit=5.0, search=2.0)
    assert 3.0 * RATE <= cut <= 5.0 * RATE
    frame = round(FRAME_SECONDS * RATE)
    first, last = 3.0 / FRAME_SECONDS, 5.0 / FRAME_SECONDS
    span = levels.levels[int(first):int(last)]
    if not (span <= levels.threshold).any():
        assert cut // frame == int(first) + int(np.argmin(span))
    else:  # a pause between two words of the sample: it is used
        assert levels.levels[cut // frame] <= levels.threshold


def test_loud_seconds_tells_speech_from_silence_and_noise_floor() -> None:
    hello = clip("hello.wav")
    audio = with_noise(np.concatenate([silence(2.0), hello, silence(2.0)]), -55.0)
    levels = Levels.of(audio, RATE)
    speech = len(hello) / RATE
    assert levels.loud_seconds(0.0, 1.9) == 0.0
    assert levels.loud_seconds(2.0 + speech + 0.1, 4.0 + speech) == 0.0
    assert levels.loud_seconds(2.0, 2.0 + speech) > speech / 2
    assert levels.loud_seconds(5.0, 4.0) == 0.0  # an empty stretch


def test_digital_silence_does_not_set_the_noise_floor() -> None:
    # A noisy recording with a pause edited in as zeros: the recording's own noise
    # floor (-45 dB) is still a pause, not sound.
    hello = with_noise(clip("hello.wav"), -45.0)
    audio = np.concatenate([hello, silence(3.0), hello])
    levels = Levels.of(audio, RATE)
    tail = with_noise(silence(1.0), -45.0)
    noisy = Levels.of(np.concatenate([audio, tail]), RATE)
    assert noisy.loud_seconds(len(audio) / RATE, len(audio) / RATE + 1.0) < 0.1
    assert levels.threshold > -60


def test_a_segment_over_silence_is_not_heard() -> None:
    hello = clip("hello.wav")
    audio = np.concatenate([hello, silence(2.0)])
    levels = Levels.of(audio, RATE)
    end = len(hello) / RATE
    offset = 100.0  # the piece starts 100 s into the file
    made_up = Segment((), "Thank you.", offset + end + 0.2, offset + end + 1.8, 0.3)
    spoken = Segment((), "Hello", offset + 0.0, offset + 1.0, 0.9)
    assert not _heard(made_up, levels, offset)
    assert _heard(spoken, levels, offset)
