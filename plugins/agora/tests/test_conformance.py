"""Both Agora providers pass the voxhub provider conformance suite against their sandboxes.

Channel transcription and transcoding are live tasks: healthy while RUNNING.
"""

from __future__ import annotations

import json
from pathlib import Path

from voxhub import JobHandle, JobKind, JobRequest, RtcChannel
from voxhub.testing import ProviderConformance

# A small valid layout: one RTC host in, one mixed RTC stream out.
LAYOUT = {
    "idleTimeout": 300,
    "audioInputs": [{"rtc": {"rtcChannel": "show", "rtcUid": 1001}}],
    "videoInputs": [
        {
            "rtc": {"rtcChannel": "show", "rtcUid": 1001},
            "region": {"x": 0, "y": 0, "width": 640, "height": 360, "zOrder": 2},
        }
    ],
    "canvas": {"width": 640, "height": 360, "color": 0},
    "outputs": [
        {
            "rtc": {"rtcChannel": "show-mixed", "rtcUid": 2002},
            "videoOption": {
                "width": 640,
                "height": 360,
                "bitrate": 800,
                "codec": "H264",
                "fps": 15,
            },
        }
    ],
}


class TestAgoraSttConformance(ProviderConformance):
    provider = "agora-stt"
    live = True
    invalid_options = [
        ({"max_idle_time": 1}, "max_idle_time"),
        ({"api_version": "v9"}, "api_version"),
        ({"encryption_mode": 99}, "encryption_mode"),
    ]

    def make_request(self, tmp_path: Path) -> JobRequest:
        return JobRequest(
            provider="agora-stt",
            media=RtcChannel(f"conf-{tmp_path.name}"),
            options={"languages": ["en-US"]},
        )


class TestAgoraTranscoderConformance(ProviderConformance):
    provider = "agora-transcoder"
    live = True
    invalid_options = [({"token_expire": 5}, "token_expire")]

    def ghost_vendor_ids(self, handle: JobHandle) -> dict[str, str]:
        # Keep the builder token (the session): only the task is unknown.
        return {k: v if "token" in k else "nonexistent0000" for k, v in handle.vendor_ids.items()}

    def make_request(self, tmp_path: Path) -> JobRequest:
        path = tmp_path / "layout.json"
        path.write_text(json.dumps(LAYOUT))
        return JobRequest(
            provider="agora-transcoder",
            kind=JobKind.TRANSCODING,
            options={"config_file": str(path), "instance_id": tmp_path.name[-20:]},
        )
