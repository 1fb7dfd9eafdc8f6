"""Reading a media source from a command-line argument."""

from __future__ import annotations

from pathlib import Path

from .models import LocalFile, Media, RemoteUrl, RtcChannel, StreamUrl

__all__ = ["media_from"]

_STREAM_SCHEMES = ("rtmp://", "rtmps://", "rtsp://", "hls://")


def media_from(value: str | Path) -> Media:
    """Turn a CLI argument into a media source: URL schemes by prefix, else a local path.

    ``http(s)://`` is a remote file, ``rtmp(s)://``/``rtsp://``/``hls://`` or a
    ``.m3u8`` playlist a live stream, ``rtc:CHANNEL`` a real-time channel, and
    anything else a local file (``~`` expanded).
    """
    text = str(value)
    lowered = text.lower()
    if lowered.startswith(("http://", "https://")):
        return RemoteUrl(text)
    if lowered.startswith(_STREAM_SCHEMES) or lowered.endswith(".m3u8"):
        return StreamUrl(text)
    if lowered.startswith("rtc:"):
        return RtcChannel(text[4:])
    return LocalFile(Path(text).expanduser())
