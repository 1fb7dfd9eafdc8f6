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


# --- utterances ------------------------------------------------------------------------


def tone(seconds: float) -> npt.NDArray[np.float32]:
    """A 440 Hz tone at a speech-like level: loud throughout, so its edges are exact."""
    t = np.arange(round(seconds * RATE)) / RATE
    return (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def parts(*spans: tuple[str, float]) -> npt.NDArray[np.float32]:
    return np.concatenate([tone(s) if kind == "sound" else silence(s) for kind, s in spans])


@pytest.mark.parametrize("noise_db", [None, -50.0])
def test_an_utterance_ends_in_the_first_long_pause_after_enough_sound(
        noise_db: float | None) -> None:
    # 0.6 s sound, a 0.7 s pause too early to count (a short utterance joins the
    # next), 2 s sound, a 0.3 s pause too short, 1 s sound, a 0.8 s pause: the end.
    audio = parts(("sound", 0.6), ("pause", 0.7), ("sound", 2.0), ("pause", 0.3),
                  ("sound", 1.0), ("pause", 0.8), ("sound", 1.0))
    if noise_db is not None:
        audio = with_noise(audio, noise_db)
    levels = Levels.of(audio, RATE)
    end = levels.find_utterance_end(shortest=1.0, pause=0.5, limit=30.0)
    # In the middle of the 0.8 s pause starting at 4.6 s (one frame of slack).
    assert end is not None and abs(end / RATE - 5.0) <= FRAME_SECONDS
    # The same pause beyond the limit: no end (the caller cuts at a pause near the limit).
    assert levels.find_utterance_end(shortest=1.0, pause=0.5, limit=4.5) is None
    # A shorter shortest utterance: the early pause counts.
    end = levels.find_utterance_end(shortest=0.3, pause=0.5, limit=30.0)
    assert end is not None and abs(end / RATE - 0.95) <= FRAME_SECONDS


def test_a_long_pause_is_cut_half_a_second_in_and_silence_has_no_utterance() -> None:
    audio = parts(("pause", 1.5), ("sound", 2.0), ("pause", 4.0), ("sound", 1.0))
    end = Levels.of(audio, RATE).find_utterance_end(shortest=1.0, pause=0.5, limit=30.0)
    # The leading silence does not count as speech; the piece keeps 0.5 s of the pause.
    assert end is not None and abs(end / RATE - 4.0) <= FRAME_SECONDS
    quiet = Levels.of(silence(10.0), RATE)
    assert quiet.find_utterance_end(shortest=1.0, pause=0.5, limit=30.0) is None
    # Sound to the end of the searched stretch: no pause, no end.
    assert Levels.of(tone(5.0), RATE).find_utterance_end(1.0, 0.5, 30.0) is None


def test_utterance_pieces_put_long_silence_alone_and_keep_the_last_tail() -> None:
    from voxhub_local.windows import LEAD_SECONDS, utterance_end

    # 3 s of silence first: a piece of its own, ending LEAD_SECONDS before the sound.
    audio = parts(("pause", 3.0), ("sound", 2.0), ("pause", 1.0), ("sound", 2.0))
    end, final = utterance_end(Levels.of(audio, RATE), len(audio), 30.0, final=True)
    assert abs(end / RATE - (3.0 - LEAD_SECONDS)) <= FRAME_SECONDS and not final
    # The rest: the first utterance ends in its pause; the file's last one keeps its tail.
    rest = audio[end:]
    cut, final = utterance_end(Levels.of(rest, RATE), len(rest), 30.0, final=True)
    assert abs(cut / RATE - (LEAD_SECONDS + 2.0 + 0.5)) <= FRAME_SECONDS and not final
    last = parts(("sound", 2.0), ("pause", 2.0))
    assert utterance_end(Levels.of(last, RATE), len(last), 30.0, final=True) == (len(last), True)
    # Silence throughout: one piece; sound throughout: cut as chunking=pauses would.
    assert utterance_end(Levels.of(silence(12.0), RATE), 12 * RATE, 12.0, False) == (12 * RATE,
                                                                                    False)
    steady = with_noise(tone(12.0), -40.0)
    cut, final = utterance_end(Levels.of(steady, RATE), len(steady), 12.0, final=False)
    assert 6 * RATE <= cut <= 12 * RATE and not final
