"""``voxhub dashboard``: a small web app over the job store, for operators and reviewers.

Server-rendered pages (werkzeug + Jinja2) and a few KB of hand-written JavaScript:

* **batches**: counts per state, progress, throughput over time, ETA;
* **one batch**: each input with its state, provider, duration and error, failures
  grouped by reason, filters by state and provider, paged;
* **one job**: its event timeline, handle, options (secrets masked), result and
  export links (txt, json, srt, vtt);
* **a transcript**: the audio of a stored local file plays in the page, the current
  word is highlighted, clicking a word seeks there; speakers and confidence shown.

Pages update themselves by polling small JSON endpoints. Everything is read through
the orchestrator's and the store's public reads, and every value shown passes
:mod:`voxhub.redact` (see :mod:`voxhub.dashboard.views`). Actions (resume a batch,
retry or close a job) exist only with ``--allow-actions``, and need the token printed
at start plus a per-session CSRF token and a same-origin request
(:mod:`voxhub.dashboard.guard`).

Install with ``pip install 'voxhub[dashboard]'`` (Jinja2).
"""

from __future__ import annotations

from .app import DashboardApp

__all__ = ["DashboardApp"]
