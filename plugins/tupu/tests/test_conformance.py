"""voxhub-tupu passes the voxhub provider conformance suite (results arrive by signed callback)."""

from __future__ import annotations

from pathlib import Path

from voxhub import JobRequest, StreamUrl
from voxhub.testing import ProviderConformance


class TestTupuConformance(ProviderConformance):
    provider = "tupu"
    callback_only = True
    # Streams end on the sandbox's own timers and say so by callback, so the suite's
    # waits wake on callbacks; these make each stream's four slices take ~0.25 s.
    sandbox_options = {
        "slice_interval": 0.05,
        "end_callback_delay": 0.05,
        "callback_schedule": (0.05, 0.1, 0.2, 0.4),
    }
    invalid_options = [
        ({"callback_rules": "sometimes"}, "callback_rules"),
        ({"return_pre_speech": "perhaps"}, "return_pre_speech"),
    ]

    def make_request(self, tmp_path: Path) -> JobRequest:
        return JobRequest(
            provider="tupu", media=StreamUrl(f"rtmp://live.example.com/app/{tmp_path.name}")
        )
