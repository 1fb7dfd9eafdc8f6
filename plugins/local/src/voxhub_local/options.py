"""What the ``local`` provider declares: its options and metadata (:data:`INFO`).

Kept apart from the provider, so that listing providers does not import the
recognition engine (pocketsphinx, numpy).
"""

from __future__ import annotations

from typing import Final

from voxhub.plugin import Capability, JobKind, OptionSpec, PollingHints, ProviderInfo

__all__ = ["INFO", "NAME", "OPTIONS"]

NAME: Final = "local"

OPTIONS: Final = (
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
    OptionSpec("segment_gap", float,
               "A pause longer than this many seconds starts a new segment (default 0.5).",
               default=0.5),
)


INFO: Final = ProviderInfo(
    name=NAME,
    kinds=frozenset({JobKind.TRANSCRIPTION}),
    description="Offline speech recognition on this machine (PocketSphinx, US English).",
    capabilities=frozenset({Capability.UPLOAD, Capability.PROGRESS, Capability.CANCEL,
                            Capability.WORD_TIMINGS}),
    options=OPTIONS,
    credentials=(),
    # Jobs of a few seconds are common (decoding runs ~5x faster than real
    # time): poll soon, and never wait more than a second between polls.
    polling=PollingHints(first_poll=0.2, typical_duration=5.0, max_interval=1.0),
    docs_url="https://github.com/cmusphinx/pocketsphinx",
)
