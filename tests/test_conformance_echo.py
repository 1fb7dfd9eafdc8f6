"""The echo test provider passes the conformance suite (which also tests the suite itself)."""

from __future__ import annotations

from pathlib import Path

from voxhub import JobRequest, RemoteUrl
from voxhub.testing import ProviderConformance


class TestEchoConformance(ProviderConformance):
    provider = "echo"
    invalid_options = [
        ({"speed": 0}, "speed"),
        ({"speed": "fast"}, "speed"),
        ({"text": "x" * 201}, "text"),
        ({"fail": True, "text": "x"}, "fail"),
    ]

    def make_request(self, tmp_path: Path) -> JobRequest:
        return JobRequest(provider="echo", media=RemoteUrl("http://127.0.0.1/hello there"))
