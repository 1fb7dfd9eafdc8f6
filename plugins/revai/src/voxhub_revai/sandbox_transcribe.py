"""How the Rev.ai emulator turns a job's media into a transcript, or into a failed job.

Part of ``voxhub sandbox revai`` (:mod:`voxhub_revai.sandbox`). The text comes
from the sandbox's text source (the installed recognizer, a sidecar ``.txt``, or
:data:`PLACEHOLDER_TEXT`); word times are spread over the WAV's duration, or one
second per three words for other media. URL media is fetched from loopback only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import urllib3
from voxhub.sandbox_kit import wav_info

from .sandbox_render import monologues

__all__ = ["PLACEHOLDER_TEXT", "Outcome", "download", "sidecar_text", "transcribe"]

PLACEHOLDER_TEXT = (
    "This is a placeholder transcript from the voxhub Rev.ai sandbox. "
    "No speech recognizer or sidecar text was available for this media."
)

#: What processing a job gave: a failure ``(reason, detail)``, or its duration and monologues.
Outcome = tuple[tuple[str, str] | None, float | None, list[dict[str, Any]]]


def transcribe(options: Mapping[str, Any], media: Path | None, text_for: Callable[[], str]
               ) -> Outcome:
    """Transcribe ``media`` as Rev would, with the job's ``options``.

    ``text_for`` is asked only once the media passed Rev's checks (a recognizer is
    slow): a job asking for more speaker channels than the media has fails first.
    """
    info = wav_info(media) if media is not None else None
    count = options.get("speaker_channels_count")
    if isinstance(count, int) and info is not None and count > info.channels:
        return ("invalid_media", f"speaker_channels_count {count} is more than the "
                f"{info.channels} channel(s) of the media"), None, []
    text = text_for()
    duration = info.duration if info is not None else max(1.0, len(text.split()) / 3.0)
    return None, duration, monologues(text, duration, options)


def download(url: str, headers: Mapping[str, str], target: Path) -> bool:
    """Fetch ``url`` (and its sidecar ``<url>.txt``, if served) into ``target``."""
    pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(10.0))
    try:
        resp = pool.request("GET", url, headers=dict(headers), preload_content=False)
        if resp.status != 200:
            resp.release_conn()
            return False
        with target.open("wb") as fh:
            for chunk in resp.stream(1 << 16):
                fh.write(chunk)
        resp.release_conn()
        side = pool.request("GET", url + ".txt", headers=dict(headers))
        if side.status == 200:
            Path(f"{target}.txt").write_bytes(side.data)
    except (urllib3.exceptions.HTTPError, OSError):
        return False
    finally:
        pool.clear()
    return True


def sidecar_text(media: Path | None, name: str | None, dirs: Sequence[Path]) -> str | None:
    """The text of ``<media>.txt``, else of ``<name>.txt`` in one of ``dirs``, if any."""
    candidates: list[Path] = []
    if media is not None:
        candidates.append(Path(f"{media}.txt"))
    if name:
        candidates.extend(d / f"{name}.txt" for d in dirs)
    for candidate in candidates:
        if candidate.is_file():
            text = candidate.read_text("utf-8", "replace").strip()
            if text:
                return text
    return None
