"""voxhub-tupu passes the voxhub provider conformance suite (results arrive by signed callback)."""

from __future__ import annotations

from pathlib import Path

from voxhub import JobRequest, StreamUrl
from voxhub.testing import ProviderConformance


class TestTupuConformance(ProviderConformance):
    provider = "tupu"
    callback_only = True
    invalid_options = [
        ({"callback_rules": "sometimes"}, "callback_rules"),
        ({"return_pre_speech": "perhaps"}, "return_pre_speech"),
    ]

    def make_request(self, tmp_path: Path) -> JobRequest:
        return JobRequest(
            provider="tupu", media=StreamUrl(f"rtmp://live.example.com/app/{tmp_path.name}")
        )
