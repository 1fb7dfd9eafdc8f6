"""Rev.ai asynchronous speech-to-text for voxhub: the ``revai`` provider and its sandbox."""

from .provider import RevaiProvider
from .sandbox import RevaiSandbox

__all__ = ["RevaiProvider", "RevaiSandbox"]
__version__ = "0.1.0"
