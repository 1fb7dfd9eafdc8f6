"""The dashboard's WSGI application: routes, pages, JSON endpoints, audio and actions.

Pages are rendered on the server (Jinja2, autoescaped); ``static/dashboard.js``
then polls the page's JSON twin every two seconds and updates the figures in place.
Each answer's text passes the registered-value secret net once more before it leaves.
"""

from __future__ import annotations

import json
import mimetypes
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import structlog
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect, send_file
from werkzeug.wrappers import Request, Response

from ..batches import BatchRun, ItemState
from ..errors import InvalidInputError, NotFoundError, VoxhubError
from ..export import FORMATS, render
from ..redact import redact_text
from . import views
from .guard import COOKIE, Guard, security_headers

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from ..orchestrator import Orchestrator

__all__ = ["DashboardApp"]

#: What a page shows for a missing value.
DASH = "\u2013"

log = structlog.get_logger("voxhub.dashboard")

HERE = Path(__file__).parent
STATIC = HERE / "static"

#: What an action's redirect may say on the page (nothing else is ever echoed).
NOTES = {
    "resumed": "The batch is being resumed by the dashboard.",
    "retried": "The job was sent to its provider again.",
    "closed": "The job was closed at its provider.",
    "signed-in": "Signed in: actions are enabled for this browser.",
    "signed-out": "Signed out.",
}

_RULES = [
    Rule("/", endpoint="batches"),
    Rule("/batches/<batch_id>", endpoint="batch"),
    Rule("/jobs/<job_id>", endpoint="job"),
    Rule("/jobs/<job_id>/transcript", endpoint="transcript"),
    Rule("/jobs/<job_id>/audio", endpoint="audio"),
    Rule("/jobs/<job_id>/export/<fmt>", endpoint="export"),
    Rule("/api/batches", endpoint="api_batches"),
    Rule("/api/batches/<batch_id>", endpoint="api_batch"),
    Rule("/api/jobs/<job_id>", endpoint="api_job"),
    Rule("/login", endpoint="login", methods=["GET", "POST"]),
    Rule("/logout", endpoint="logout", methods=["POST"]),
    Rule("/actions/batches/<batch_id>/<action>", endpoint="batch_action", methods=["POST"]),
    Rule("/actions/jobs/<job_id>/<action>", endpoint="job_action", methods=["POST"]),
    Rule("/static/<name>", endpoint="static"),
]


class DashboardApp:
    """The dashboard over ``orch``'s store, answering for ``hosts`` (``host:port``).

    ``allow_actions`` enables resume/retry/close behind ``token`` (a random one when
    not given; :attr:`token`). Call :meth:`shutdown` to stop batches it resumed.
    """

    def __init__(
        self,
        orch: Orchestrator,
        *,
        hosts: Iterable[str],
        allow_actions: bool = False,
        token: str | None = None,
        poll_seconds: float = 2.0,
    ) -> None:
        self.orch = orch
        self.guard = Guard(hosts, allow_actions=allow_actions, token=token)
        self.poll_seconds = poll_seconds
        self.throughput = views.Throughput(orch)
        self._urls = Map(_RULES, strict_slashes=False)
        self._env = jinja2.Environment(
            loader=jinja2.PackageLoader("voxhub.dashboard", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self._env.filters["when"] = _when
        self._env.filters["seconds"] = _seconds
        self._env.filters["percent"] = lambda v: DASH if v is None else f"{100 * float(v):.0f}%"
        self._runs: dict[str, BatchRun] = {}
        self._runs_lock = threading.Lock()

    @property
    def token(self) -> str:
        """The action token (print it once at start; never log it)."""
        return self.guard.token

    # --- WSGI ----------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        response = self.respond(request)
        return response(environ, start_response)

    def respond(self, request: Request) -> Response:
        """The answer to one request (security headers added)."""
        if not self.guard.host_ok(request):
            response = Response("unknown host\n", status=421, mimetype="text/plain")
        else:
            try:
                endpoint, args = self._urls.bind_to_environ(request.environ).match()
                handler: Callable[..., Response] = getattr(self, f"on_{endpoint}")
                response = handler(request, **args)
            except NotFoundError as exc:
                response = self._error(request, 404, str(exc))
            except InvalidInputError as exc:
                response = self._error(request, 400, str(exc))
            except HTTPException as exc:
                response = self._error(request, exc.code or 500, exc.description or exc.name)
        return security_headers(response)

    # --- rendering -----------------------------------------------------------------------

    def _page(self, request: Request, template: str, **context: Any) -> Response:
        note = NOTES.get(request.args.get("note", ""))
        html = self._env.get_template(template).render(
            actions=self.guard.allow_actions,
            csrf=self.guard.csrf(request),
            note=note,
            poll_ms=int(self.poll_seconds * 1000),
            **context,
        )
        return Response(redact_text(html), mimetype="text/html")

    def _json(self, data: Any, status: int = 200) -> Response:
        text = json.dumps(views.clean(data), ensure_ascii=False, separators=(",", ":"))
        return Response(redact_text(text), status=status, mimetype="application/json")

    def _error(self, request: Request, status: int, message: str) -> Response:
        message = redact_text(message)
        if request.path.startswith("/api/") or request.headers.get("Authorization"):
            return self._json({"error": message}, status)
        response = self._page(request, "error.html", status=status, message=message)
        response.status_code = status
        return response

    # --- pages ---------------------------------------------------------------------------

    def _batches_data(self, request: Request) -> dict[str, Any]:
        page = _page_number(request)
        now = time.time()
        infos = self.orch.batches(limit=views.PAGE, offset=(page - 1) * views.PAGE)
        total = self.orch.batch_count()
        # The chart shows a running batch, else the newest that has finished anything.
        featured = next(
            (i for i in infos if i.owner_alive),
            next((i for i in infos if i.counts.finished), infos[0] if infos else None),
        )
        rows = []
        for info in infos:
            live = info.owner_alive or info is featured
            rows.append(views.batch_summary(info, self.throughput if live else None, now))
        chart = next((r for r in rows if featured and r["batch_id"] == featured.batch_id), None)
        return {
            "batches": rows,
            "chart": chart,
            "page": page,
            "total": total,
            "more": page * views.PAGE < total,
            "now": now,
        }

    def on_batches(self, request: Request) -> Response:
        return self._page(request, "batches.html", **self._batches_data(request))

    def on_api_batches(self, request: Request) -> Response:
        return self._json(self._batches_data(request))

    def _batch_data(self, request: Request, batch_id: str) -> dict[str, Any]:
        info = self.orch.batch(batch_id)
        state = request.args.get("state") or None
        if state is not None and state not in {s.value for s in ItemState}:
            raise InvalidInputError(
                f"state must be one of {', '.join(s.value for s in ItemState)}", field="state"
            )
        provider = (request.args.get("provider") or None) if request.args else None
        if provider is not None and len(provider) > 100:
            raise InvalidInputError("provider is too long", field="provider")
        now = time.time()
        summary = views.batch_summary(info, self.throughput, now)
        page = views.batch_page(
            self.orch, info, state=state, provider=provider, page=_page_number(request), now=now
        )
        return {
            "batch": summary,
            "settings": {
                "format": info.settings.format,
                "concurrency": info.settings.concurrency,
                "output_dir": info.settings.output_dir,
            },
            "failures": views.failure_groups(self.orch, batch_id) if info.counts.failed else [],
            "filters": {"state": state, "provider": provider},
            "states": [s.value for s in ItemState],
            "provider_names": sorted(summary["providers"]),
            "now": now,
            **page,
        }

    def on_batch(self, request: Request, batch_id: str) -> Response:
        return self._page(request, "batch.html", **self._batch_data(request, batch_id))

    def on_api_batch(self, request: Request, batch_id: str) -> Response:
        return self._json(self._batch_data(request, batch_id))

    def on_job(self, request: Request, job_id: str) -> Response:
        return self._page(request, "job.html", job=views.job_page(self.orch, job_id))

    def on_api_job(self, request: Request, job_id: str) -> Response:
        return self._json(views.job_page(self.orch, job_id))

    def on_transcript(self, request: Request, job_id: str) -> Response:
        job = views.job_page(self.orch, job_id)
        transcript = views.transcript_page(self.orch, job_id)
        if transcript is None:
            raise NotFound(f"job {job_id} has no stored transcript")
        response = self._page(request, "transcript.html", job=job, transcript=transcript)
        audio = transcript["audio"]
        if audio and not audio.startswith("/"):
            # A remote URL without credentials plays from its own origin.
            from urllib.parse import urlsplit

            parts = urlsplit(audio)
            security_headers(response, media_origins=f"{parts.scheme}://{parts.netloc}")
        return response

    def on_audio(self, request: Request, job_id: str) -> Response:
        # Only the stored local file of a stored job: never a path from the request.
        path = views.local_audio(self.orch, job_id)
        if path is None:
            raise NotFound("no local audio file is stored for this job")
        mimetype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        response = send_file(path, request.environ, mimetype=mimetype, conditional=True, max_age=0)
        response.headers["Cache-Control"] = "no-store"
        return response

    def on_export(self, request: Request, job_id: str, fmt: str) -> Response:
        if fmt not in FORMATS:
            raise InvalidInputError(f"format must be one of {', '.join(FORMATS)}", field="format")
        self.orch.record(job_id)  # a typed NotFoundError for an unknown job
        result = self.orch.store.result(job_id)
        if result is None:
            raise NotFound(f"job {job_id} has no stored result")
        # Rendered from the stored result: a read-only dashboard never calls a vendor.
        text = redact_text(render(result, fmt, speakers=request.args.get("speakers") == "1"))
        types = {"json": "application/json", "vtt": "text/vtt", "srt": "application/x-subrip"}
        response = Response(text, mimetype=types.get(fmt, "text/plain"))
        disposition = "inline" if request.args.get("inline") else "attachment"
        response.headers["Content-Disposition"] = f'{disposition}; filename="{job_id}.{fmt}"'
        return response

    def on_static(self, request: Request, name: str) -> Response:
        path = STATIC / name
        if name not in {p.name for p in STATIC.iterdir()} or not path.is_file():
            raise NotFound()
        types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
        response = Response(path.read_bytes(), mimetype=types.get(path.suffix, "text/plain"))
        response.headers["Cache-Control"] = "no-cache"
        return response

    # --- signing in and actions ----------------------------------------------------------

    def on_login(self, request: Request) -> Response:
        if not self.guard.allow_actions:
            raise NotFound("actions are disabled (start the dashboard with --allow-actions)")
        if request.method == "GET":
            return self._page(request, "login.html", failed=False)
        if not self.guard.same_origin(request) or not self.guard.token_ok(
            request.form.get("token")
        ):
            response = self._page(request, "login.html", failed=True)
            response.status_code = 403
            return response
        session, _csrf = self.guard.sign_in()
        response = redirect("/?note=signed-in", code=303)
        response.set_cookie(COOKIE, session, httponly=True, samesite="Strict", path="/")
        return response

    def on_logout(self, request: Request) -> Response:
        why = self.guard.may_act(request)
        if why is not None:
            return self._error(request, 403, why)
        self.guard.sign_out(request)
        response = redirect("/?note=signed-out", code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    def on_batch_action(self, request: Request, batch_id: str, action: str) -> Response:
        why = self.guard.may_act(request)
        if why is not None:
            return self._error(request, 403, why)
        if action not in ("resume", "retry-failed"):
            raise NotFound(f"no batch action {action!r}")
        self.orch.batch(batch_id)  # a typed NotFoundError first
        try:
            run = self.orch.run_batch(batch_id, retry_failed=action == "retry-failed")
        except VoxhubError as exc:
            return self._error(request, 409, str(exc))
        with self._runs_lock:
            self._runs[batch_id] = run
        threading.Thread(
            target=self._drain, args=(batch_id, run), name=f"dashboard-{batch_id}", daemon=True
        ).start()
        log.info("dashboard.batch_resumed", batch_id=batch_id, retry_failed=action != "resume")
        return self._done(request, f"/batches/{batch_id}", "resumed")

    def _drain(self, batch_id: str, run: BatchRun) -> None:
        try:
            for _outcome in run:
                pass
        except VoxhubError as exc:
            log.warning("dashboard.batch_failed", batch_id=batch_id, error=str(exc))
        finally:
            with self._runs_lock:
                if self._runs.get(batch_id) is run:
                    del self._runs[batch_id]

    def on_job_action(self, request: Request, job_id: str, action: str) -> Response:
        why = self.guard.may_act(request)
        if why is not None:
            return self._error(request, 403, why)
        try:
            if action == "retry":
                self.orch.retry(job_id)
                note = "retried"
            elif action == "close":
                self.orch.close(job_id)
                note = "closed"
            else:
                raise NotFound(f"no job action {action!r}")
        except (NotFoundError, HTTPException):
            raise
        except VoxhubError as exc:
            return self._error(request, 409, str(exc))
        log.info("dashboard.job_action", job_id=job_id, action=action)
        return self._done(request, f"/jobs/{job_id}", note)

    def _done(self, request: Request, page: str, note: str) -> Response:
        if request.headers.get("Authorization"):
            return self._json({"ok": True, "note": NOTES[note]})
        return redirect(f"{page}?note={note}", code=303)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the batches this dashboard resumed (in-flight requests land) and wait
        up to ``timeout`` seconds for them to give their batch up."""
        with self._runs_lock:
            runs = list(self._runs.values())
        for run in runs:
            run.stop()
        deadline = time.monotonic() + timeout
        for thread in threading.enumerate():
            if thread.name.startswith("dashboard-vb_"):
                thread.join(max(0.0, deadline - time.monotonic()))


def _page_number(request: Request) -> int:
    text = request.args.get("page", "1")
    if not text.isdigit() or not 1 <= int(text) <= 1_000_000:
        raise InvalidInputError("page must be a whole number from 1", field="page")
    return int(text)


def _when(value: float | None) -> str:
    if value is None:
        return DASH
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))


def _seconds(value: float | None) -> str:
    if value is None:
        return DASH
    value = float(value)
    if value < 1:
        return f"{value:.2f} s"
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
