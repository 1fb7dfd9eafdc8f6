"""voxhub-nhn passes the voxhub provider conformance suite (async URL path) against its sandbox."""

from __future__ import annotations

from pathlib import Path

from voxhub import JobRequest, RemoteUrl
from voxhub.testing import ProviderConformance


class TestNhnConformance(ProviderConformance):
    provider = "nhn"
    sandbox_options = {"processing_seconds": 0.1}
    invalid_options = [
        ({"biasing_list": ["no-underscore-here"]}, "biasing_list"),
        ({"biasing_list": "not a list"}, "biasing_list"),
    ]

    def make_request(self, tmp_path: Path) -> JobRequest:
        return JobRequest(provider="nhn", media=RemoteUrl("https://media.example.com/talk.wav"))
