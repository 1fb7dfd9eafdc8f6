"""A batch run by another process updates the open page without a reload."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from voxhub.batches import ItemState


@pytest.mark.both_stores
def test_a_running_batch_updates_the_open_page_without_a_reload(
    world: Any, dashboard: Any, page: Any, shots: Path
) -> None:
    batch_id = world.batches["live"]
    page.goto(f"{dashboard.url}batches/{batch_id}")
    page.wait_for_function("() => Number(document.body.dataset.polls || 0) >= 1")
    assert page.locator("#count-done").inner_text() == "0"
    assert page.locator("#count-left").inner_text() == "60"
    page.evaluate("window.__sameDocument = 'yes'")  # gone if the page reloads
    seen: list[str] = []
    page.expose_function("noteDone", lambda text: seen.append(text))
    page.evaluate(
        """() => new MutationObserver(() => window.noteDone(
             document.getElementById('count-done').textContent))
           .observe(document.getElementById('count-done'),
                    {childList: true, characterData: true, subtree: true})"""
    )

    # An operator's `voxhub batches resume` in another process (the real clock: each
    # echo job takes a few status polls, so the run lasts seconds).
    voxhub = dashboard.proc.args[0]
    run = subprocess.Popen(
        [voxhub, "--config", str(world.config), "batches", "resume", batch_id,
         "--concurrency", "3"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=world.process_env(),
    )  # fmt: skip
    try:
        page.wait_for_function(
            "() => document.getElementById('count-done').textContent === '60'", timeout=30_000
        )
    finally:
        _out, err = run.communicate(timeout=30)
    assert run.returncode == 0, err
    assert page.evaluate("window.__sameDocument") == "yes"
    info = world.orch.batch(batch_id)
    assert info.counts.done == 60 and info.counts.failed == 0
    assert page.locator("#count-left").inner_text() == "0"
    # The numbers moved while it ran, and the table's rows followed.
    assert seen and seen[-1] == "60"
    states = page.locator("tbody[data-rows=items] tr td:nth-child(3)").all_inner_texts()
    assert states == [ItemState.DONE.value] * 50
    assert page.locator("svg.chart rect.bar").count() >= 1
    page.screenshot(path=str(shots / "batch-live.png"), full_page=True)
