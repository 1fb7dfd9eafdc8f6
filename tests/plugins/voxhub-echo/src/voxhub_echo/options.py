"""What the echo provider declares (kept apart from its code, so listing it is cheap)."""

from __future__ import annotations

from voxhub.plugin import (
    Capability,
    CredentialField,
    JobKind,
    OptionSpec,
    PollingHints,
    ProviderInfo,
)

__all__ = ["INFO"]

INFO = ProviderInfo(
    name="echo",
    kinds=frozenset({JobKind.TRANSCRIPTION}),
    description="Test provider echoing file names (core tests only).",
    capabilities=frozenset(
        {
            Capability.UPLOAD,
            Capability.URL,
            Capability.RECOVER,
            Capability.PROGRESS,
            Capability.DELETE,
            Capability.LIST,
        }
    ),
    options=(
        OptionSpec("fail", bool, "Make the job fail."),
        OptionSpec("speed", int, "A ranged option.", min=1, max=10),
        OptionSpec("text", str, "Transcript text to return.", max_length=200),
    ),
    credentials=(CredentialField("api_key", "The echo API key."),),
    default_base_url="http://127.0.0.1:9",
    polling=PollingHints(first_poll=0.05, typical_duration=0.2, max_interval=0.2),
    export_formats=frozenset(),
    # Echo transcribes file names, not sounds: core tests feed it any bytes.
    media_types=frozenset({"*/*"}),
)
