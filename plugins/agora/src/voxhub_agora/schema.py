"""The fields of Agora's answers that the providers rely on, as attrs classes.

Read with :meth:`~voxhub.plugin.ApiClient.read` (cattrs): a missing or mistyped field
is a :class:`~voxhub.plugin.ProviderError` that names the class, instead of a ``None``
found later. Unknown fields are ignored (Agora adds fields), and whole answers are
still kept as ``raw`` where voxhub shows them. Field names are Agora's own.
"""

from __future__ import annotations

import attrs

__all__ = ["AgentAnswer", "BuilderTokenAnswer", "TaskAnswer"]


@attrs.frozen
class BuilderTokenAnswer:
    """Acquire (STT spec 1.3, Cloud Transcoder 2.3): the builder token to start with."""

    tokenName: str
    createTs: int | None = None


@attrs.frozen
class TaskAnswer:
    """A started STT task (v5/v6) or a created transcoding task: its id and status."""

    taskId: str
    status: str | None = None
    createTs: int | None = None


@attrs.frozen
class AgentAnswer:
    """An STT v7 agent (join, query and list answers)."""

    agent_id: str
    status: str | None = None
    create_ts: int | None = None
    name: str | None = None
