"""Actions: off unless --allow-actions; then the token, a session's CSRF token and a
same-origin request are needed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest


def _wait(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_a_read_only_dashboard_refuses_every_action(world: Any, dashboard: Any) -> None:
    job_id = world.jobs["closable"]
    assert dashboard.get("login").status == 404
    for headers in ({}, {"Authorization": "Bearer anything"}, {"Origin": dashboard.url[:-1]}):
        answer = dashboard.post(f"actions/jobs/{job_id}/close", **headers)
        assert answer.status == 403 and b"actions are disabled" in answer.data
    page = dashboard.get(f"jobs/{job_id}").data.decode()
    assert "Close at the provider" not in page and "read-only" in page
    assert world.orch.store.get(job_id).phase != "closed"


@pytest.mark.both_stores
def test_actions_need_the_token_and_csrf_and_then_work(
    world: Any, acting: Any, page: Any, shots: Path
) -> None:
    job_id = world.jobs["closable"]
    origin = acting.url[:-1]
    path = f"actions/jobs/{job_id}/close"
    assert acting.post(path).status == 403  # nothing
    assert acting.post(path, Origin=origin).status == 403  # same origin, not signed in
    assert acting.post(path, Authorization="Bearer wrong-token").status == 403
    assert acting.post("login", {"token": "wrong"}, Origin=origin).status == 403
    # The right token from another site's page is refused too.
    assert acting.post("login", {"token": acting.token}, Origin="http://evil.example").status == 403

    # In the browser: the job page offers no action until signed in.
    page.goto(f"{acting.url}jobs/{job_id}")
    assert page.locator("text=Close at the provider").count() == 0
    page.click("text=Sign in for actions")
    page.fill("#token", acting.token)
    page.click("form.stack button")
    page.wait_for_url("**note=signed-in")
    cookie = next(c for c in page.context.cookies() if c["name"] == "voxhub_dashboard")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.goto(f"{acting.url}jobs/{job_id}")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    session = f"voxhub_dashboard={cookie['value']}"
    # The session alone, a wrong CSRF token, or another origin: refused.
    assert acting.post(path, Cookie=session, Origin=origin).status == 403
    assert acting.post(path, {"csrf": "nope"}, Cookie=session, Origin=origin).status == 403
    evil = acting.post(path, {"csrf": csrf}, Cookie=session, Origin="http://evil.example")
    assert evil.status == 403 and b"cross-origin" in evil.data
    assert acting.post(path, {"csrf": csrf}, Cookie=session).status == 403  # no Origin/Referer
    assert world.orch.store.get(job_id).phase != "closed"

    page.screenshot(path=str(shots / "job-actions.png"), full_page=True)
    page.click("text=Close at the provider")
    page.wait_for_url("**note=closed")
    assert page.locator("p.note").inner_text() == "The job was closed at its provider."
    assert world.orch.store.get(job_id).phase == "closed"
    assert world.echo.sandbox.counters.get("requests") > 0

    # Echo cannot retry: the provider's one-line refusal comes back, nothing changes.
    failed = next(i for i in world.orch.batch_items(world.batches["nightly"], state="failed")
                  if i.job_id)  # fmt: skip
    page.goto(f"{acting.url}jobs/{failed.job_id}")
    page.click("text=Retry at the provider")
    assert "cannot retry jobs" in page.locator("p.error").inner_text()
    assert world.orch.store.get(failed.job_id).status.state.value == "failed"


@pytest.mark.both_stores
def test_a_script_resumes_a_batch_with_the_token(world: Any, acting: Any) -> None:
    batch_id = world.batches["to-resume"]
    assert world.orch.batch(batch_id).counts.done == 0
    answer = acting.post(f"actions/batches/{batch_id}/resume",
                         Authorization=f"Bearer {acting.token}")  # fmt: skip
    assert answer.status == 200 and answer.json()["ok"] is True
    _wait(lambda: world.orch.batch(batch_id).counts.done == 3)
