"""The typed way the core calls one provider's lifecycle hooks.

The hook specifications in :mod:`voxhub.hookspecs` stay the plugin contract; this
module is how the core reaches them. :class:`ProviderCalls` has one method per
lifecycle hook, with the hook's own parameter and return types, so a reader (and
mypy) can follow a job from the orchestrator into a provider::

    calls = plugins.calls("revai")
    answer = calls.submit(ctx, request, handle)     # -> JobHandle | Submitted

Each call reaches exactly one provider (pluggy's ``subset_hook_caller`` with every
other provider removed), so observer wrappers still see it. This is the one place
where an unexpected exception raised by a plugin becomes :class:`PluginError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .errors import PluginError, VoxhubError
from .models import JobHandle, JobRequest, JobStatus

if TYPE_CHECKING:
    from .models import Result
    from .provider import CallbackEvent, CallbackRequest, ProviderContext, Submitted

__all__ = ["ProviderCalls"]

#: Builds the pluggy caller of one hook for one provider (given by the plugin manager).
HookCallerFactory = Callable[[str], Callable[..., Any]]


class ProviderCalls:
    """One provider's lifecycle hooks as typed methods (see :mod:`voxhub.hookspecs`)."""

    __slots__ = ("_callers", "_factory", "provider")

    def __init__(self, provider: str, factory: HookCallerFactory) -> None:
        self.provider = provider
        self._factory = factory
        self._callers: dict[str, Callable[..., Any]] = {}

    def _call(self, hook: str, **kwargs: Any) -> Any:
        caller = self._callers.get(hook)
        if caller is None:
            caller = self._callers[hook] = self._factory(hook)
        try:
            return caller(**kwargs)
        except VoxhubError:
            raise
        except Exception as exc:
            # A plugin bug (KeyError, TypeError...) is named as one, never mistaken for,
            # say, "job not found"; the traceback stays attached for --debug.
            raise PluginError(
                f"provider plugin failed in {hook}: {type(exc).__name__}: {exc}",
                provider=self.provider,
                operation=hook,
            ) from exc

    def _expect(self, hook: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
        if not isinstance(value, kind):
            raise PluginError(
                f"{hook} must return {what}, got {type(value).__name__}",
                provider=self.provider,
                operation=hook,
            )
        return value

    # --- lifecycle ---------------------------------------------------------------------

    def authenticate(self, ctx: ProviderContext) -> Any:
        return self._call("authenticate", ctx=ctx)

    def validate(self, ctx: ProviderContext, request: JobRequest) -> JobRequest:
        validated = self._call("validate", ctx=ctx, request=request)
        # ``None`` means "nothing to change" for hook functions that only check.
        return request if validated is None else self._expect(
            "validate", validated, JobRequest, "a JobRequest"
        )

    def submit(
        self, ctx: ProviderContext, request: JobRequest, handle: JobHandle
    ) -> JobHandle | Submitted:
        from .provider import Submitted

        answer = self._call("submit", ctx=ctx, request=request, handle=handle)
        return self._expect("submit", answer, (JobHandle, Submitted), "a JobHandle or Submitted")  # type: ignore[no-any-return]

    def submit_batch(
        self, ctx: ProviderContext, items: Sequence[tuple[JobRequest, JobHandle]]
    ) -> list[JobHandle | Submitted]:
        answers = self._call("submit_batch", ctx=ctx, items=items)
        if not isinstance(answers, list) or len(answers) != len(items):
            raise PluginError(
                "submit_batch must return one handle per item",
                provider=self.provider,
                operation="submit",
            )
        return answers

    def recover(
        self, ctx: ProviderContext, request: JobRequest, handle: JobHandle
    ) -> JobHandle | None:
        found = self._call("recover", ctx=ctx, request=request, handle=handle)
        return None if found is None else self._expect(
            "recover", found, JobHandle, "a JobHandle or None"
        )

    def status(self, ctx: ProviderContext, handle: JobHandle) -> JobStatus:
        return self._expect(  # type: ignore[no-any-return]
            "status", self._call("status", ctx=ctx, handle=handle), JobStatus, "a JobStatus"
        )

    def fetch(self, ctx: ProviderContext, handle: JobHandle) -> Result:
        result: Result = self._call("fetch", ctx=ctx, handle=handle)
        return result

    def export(self, ctx: ProviderContext, handle: JobHandle, fmt: str) -> str | None:
        text = self._call("export", ctx=ctx, handle=handle, fmt=fmt)
        return None if text is None else self._expect("export", text, str, "a string or None")

    def close(self, ctx: ProviderContext, handle: JobHandle) -> None:
        self._call("close", ctx=ctx, handle=handle)

    def retry(self, ctx: ProviderContext, handle: JobHandle) -> JobHandle:
        return self._expect(  # type: ignore[no-any-return]
            "retry", self._call("retry", ctx=ctx, handle=handle), JobHandle, "a JobHandle"
        )

    def parse_callback(self, ctx: ProviderContext, request: CallbackRequest) -> CallbackEvent:
        event: CallbackEvent = self._call("parse_callback", ctx=ctx, request=request)
        return event
