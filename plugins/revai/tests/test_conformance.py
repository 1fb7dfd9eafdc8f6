"""voxhub-revai passes the voxhub provider conformance suite against its sandbox."""

from __future__ import annotations

from pathlib import Path

from voxhub import JobRequest, RemoteUrl
from voxhub.testing import ProviderConformance


class TestRevaiConformance(ProviderConformance):
    provider = "revai"
    sandbox_options = {"processing_seconds": 0.1}
    invalid_options = [
        ({"speaker_channels_count": 9}, "speaker_channels_count"),
        ({"transcriber": "robot"}, "transcriber"),
        ({"verbatim": "maybe"}, "verbatim"),
    ]

    def make_request(self, tmp_path: Path) -> JobRequest:
        # A non-loopback URL: the sandbox answers with its placeholder transcript (cheap).
        return JobRequest(provider="revai", media=RemoteUrl("https://media.example.com/talk.wav"))
