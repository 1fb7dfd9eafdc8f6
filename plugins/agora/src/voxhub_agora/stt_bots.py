"""The RTC tokens of the STT bots (``subBotToken``, ``pubBotToken``).

Seed ``000`` (client-side STT): REST auth with an AccessToken2 means the project has an
App Certificate, and then every uid joining its channels — the two bots included —
needs an RTC token. voxhub builds them from ``app_certificate``; without it they must
be given as options, and a start is refused locally (before any request) when they
are not: Agora would create a task whose bots cannot join.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voxhub.plugin import InvalidInputError, ProviderContext

from .accesstoken import RtcRole
from .auth import AgoraAuth, AuthMode

__all__ = ["check_bot_tokens", "with_bot_tokens"]

_BOTS = (("sub_bot_token", "subBotUid", "subBotToken", RtcRole.SUBSCRIBER),
         ("pub_bot_token", "pubBotUid", "pubBotToken", RtcRole.PUBLISHER))


def check_bot_tokens(ctx: ProviderContext, auth: AgoraAuth, body: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidInputError` (naming the option) if the bots could not join."""
    if auth.mode is not AuthMode.TOKEN or auth.can_sign:
        return
    rtc = body["rtcConfig"]
    missing = [option for option, _uid, key, _role in _BOTS if not rtc.get(key)]
    if missing:
        raise InvalidInputError(
            f"option {' and '.join(repr(m) for m in missing)} required: token auth means "
            "the project has an App Certificate, so the bots need RTC tokens; give "
            "sub_bot_token and pub_bot_token, or set app_certificate to have them built",
            field=missing[0], provider=ctx.provider, operation="validate",
        )


def with_bot_tokens(ctx: ProviderContext, auth: AgoraAuth, channel: str,
                    body: Mapping[str, Any], expire: int) -> dict[str, Any]:
    """``body`` with the bots' RTC tokens built from the certificate where none was given.

    Without a certificate nothing is added: with Basic auth the project may have none
    (then it needs no tokens); with token auth it has one, and :func:`check_bot_tokens`
    refuses the start first.
    """
    check_bot_tokens(ctx, auth, body)
    out = dict(body)
    rtc = dict(out["rtcConfig"])
    if auth.can_sign:
        now = ctx.clock.time()
        for _option, uid_key, token_key, role in _BOTS:
            if not rtc.get(token_key):
                rtc[token_key] = auth.rtc_token(channel, int(rtc[uid_key]), role=role,
                                                expire=expire, now=now)
    out["rtcConfig"] = rtc
    return out
