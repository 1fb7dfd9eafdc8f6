"""Who may do what on the dashboard: the host check, the action token, sessions, CSRF.

* Every request must name one of the dashboard's own hosts in ``Host`` (a page on
  another site that rebinds its DNS name to 127.0.0.1 gets nothing).
* Actions exist only with ``--allow-actions``. A browser signs in once with the token
  printed at start and gets a session cookie (``HttpOnly``, ``SameSite=Strict``); each
  action then needs the session's CSRF token in the form and a same-origin
  ``Origin`` (or ``Referer``). A script sends ``Authorization: Bearer TOKEN`` instead
  (a header another site's page cannot set without a CORS preflight, which the
  dashboard never grants).
* Every answer carries a strict Content-Security-Policy: scripts and styles only from
  the dashboard itself, no framing.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Iterable
from urllib.parse import urlsplit

from werkzeug.wrappers import Request, Response

__all__ = ["COOKIE", "Guard", "security_headers"]

#: The session cookie's name.
COOKIE = "voxhub_dashboard"

#: Sessions kept at most (the oldest is forgotten first).
MAX_SESSIONS = 256


class Guard:
    """The dashboard's host list, action token and signed-in sessions."""

    def __init__(
        self, hosts: Iterable[str], *, allow_actions: bool, token: str | None = None
    ) -> None:
        self.hosts = frozenset(h.lower() for h in hosts)
        self.allow_actions = allow_actions
        self.token = token or secrets.token_urlsafe(24)
        self._sessions: dict[str, str] = {}  # session id -> its CSRF token
        self._lock = threading.Lock()

    def host_ok(self, request: Request) -> bool:
        """Whether the request's ``Host`` is one of the dashboard's own."""
        return request.host.lower() in self.hosts

    def same_origin(self, request: Request) -> bool:
        """Whether the request comes from one of the dashboard's own pages: ``Origin``
        (or, without it, ``Referer``) names this scheme and host."""
        source = request.headers.get("Origin") or request.headers.get("Referer")
        if not source or source == "null":
            return False
        parts = urlsplit(source)
        return parts.scheme == request.scheme and parts.netloc.lower() == request.host.lower()

    def token_ok(self, given: str | None) -> bool:
        """Whether ``given`` is the action token (compared in constant time)."""
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def sign_in(self) -> tuple[str, str]:
        """A new session: its id (the cookie) and its CSRF token."""
        session, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                self._sessions.pop(next(iter(self._sessions)))
            self._sessions[session] = csrf
        return session, csrf

    def sign_out(self, request: Request) -> None:
        """Forget the request's session."""
        with self._lock:
            self._sessions.pop(request.cookies.get(COOKIE, ""), None)

    def csrf(self, request: Request) -> str | None:
        """The CSRF token of the request's session, ``None`` when not signed in."""
        session = request.cookies.get(COOKIE)
        if not session:
            return None
        with self._lock:
            return self._sessions.get(session)

    def may_act(self, request: Request) -> str | None:
        """``None`` when the request may run an action, else why not (one line)."""
        if not self.allow_actions:
            return "actions are disabled (start the dashboard with --allow-actions)"
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return None if self.token_ok(auth[7:].strip()) else "wrong token"
        if not self.same_origin(request):
            return "cross-origin request refused"
        expected = self.csrf(request)
        if expected is None:
            return "sign in with the dashboard's token first"
        given = request.form.get("csrf", "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return "missing or wrong CSRF token"
        return None


def security_headers(response: Response, *, media_origins: str = "") -> Response:
    """Add the dashboard's security headers to ``response`` (a policy already set, one
    that lets a transcript's remote audio play, is kept)."""
    media = f"'self' {media_origins}".strip()
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"media-src {media}; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'",
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Cache-Control", "no-store")
    return response
