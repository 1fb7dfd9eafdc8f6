"""Language codes of requests, as each engine understands them (light: no engine import)."""

from __future__ import annotations

from typing import Final

from .errors import ConfigError

__all__ = ["BUNDLED_LANGUAGE", "sphinx_language", "whisper_language"]

#: Language of the model bundled with pocketsphinx, and the spellings accepted for it.
BUNDLED_LANGUAGE: Final = "en-us"
_BUNDLED_ALIASES: Final = frozenset({"en", "en-us"})


def _normal(language: str) -> str:
    return language.strip().lower().replace("_", "-")


def sphinx_language(language: str | None, *, other_model: bool) -> str:
    """The label of a PocketSphinx transcript; refuses what the bundled model cannot do."""
    if language is None or not language.strip():
        return BUNDLED_LANGUAGE
    code = _normal(language)
    if code in _BUNDLED_ALIASES:
        return BUNDLED_LANGUAGE
    if other_model:
        # Another model was given: its language is the user's business; we only label it.
        return code
    raise ConfigError(
        "language",
        f"{language!r} is not supported by the bundled PocketSphinx model, which recognises "
        "US English only (en-us); for another language give a PocketSphinx model with the "
        "options model_dir, dictionary and language_model, or use engine whisper",
    )


def whisper_language(language: str | None) -> tuple[str | None, str | None]:
    """``(label, Whisper code)`` of a request's language; ``(None, None)`` to detect it.

    ``en-US`` is labelled ``en-us`` and decoded as ``en`` (Whisper knows
    languages, not regions).
    """
    from .whisper import LANGUAGES

    if language is None or not language.strip():
        return None, None
    label = _normal(language)
    code = label.split("-", 1)[0]
    if code not in LANGUAGES:
        raise ConfigError("language", f"{language!r} is not a language Whisper knows "
                          "(an ISO 639-1 code such as en, fr, de, optionally with a region)")
    return label, code
