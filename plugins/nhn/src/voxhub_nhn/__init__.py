"""NHN Cloud Speech-to-Text (API v2.0 and v2.1) provider plugin for voxhub.

The provider lives in :mod:`voxhub_nhn.provider`, its emulator in
:mod:`voxhub_nhn.sandbox`; :mod:`voxhub_nhn.plugin` is the entry point voxhub loads.
"""

from .provider import NhnProvider
from .sandbox import NhnSandbox

__all__ = ["NhnProvider", "NhnSandbox"]
__version__ = "0.1.0"
