"""voxhub-local passes the parts of the conformance suite that apply to an offline engine."""

from __future__ import annotations

from pathlib import Path

from voxhub import JobRequest, LocalFile
from voxhub.testing import ProviderConformance

SAMPLE = Path(__file__).resolve().parents[3] / "docs" / "samples" / "hello.wav"


class TestLocalConformance(ProviderConformance):
    provider = "local"
    has_sandbox = False
    invalid_options = [
        ({"kws_threshold": "high"}, "kws_threshold"),
        ({"model_dir": "/no/such/model"}, "model_dir"),
    ]

    def make_request(self, tmp_path: Path) -> JobRequest:
        return JobRequest(provider="local", media=LocalFile(SAMPLE))

