"""Each page in Chromium, its figures checked against the store; the transcript played."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from voxhub.export import FORMATS, render
from voxhub.models import Transcript

DASH = "\u2013"  # what a page shows for a missing value


def _live(page: Any) -> None:
    """Wait until the page's script has applied at least one poll."""
    page.wait_for_function("() => Number(document.body.dataset.polls || 0) >= 1")


@pytest.mark.both_stores
def test_the_batches_page_shows_each_batch_as_the_store_counts_it(
    world: Any, dashboard: Any, page: Any, shots: Path
) -> None:
    page.goto(dashboard.url)
    _live(page)
    infos = world.orch.batches()
    assert page.locator("[data-live=total]").inner_text() == str(world.orch.batch_count())
    for info in infos:
        c = info.counts
        row = page.locator(f'tbody[data-rows=batches] tr[data-key="{info.batch_id}"]')
        cells = row.locator("td").all_inner_texts()
        # total, done, failed, running, left (after state and progress)
        assert cells[2:7] == [str(c.total), str(c.done), str(c.failed), str(c.running),
                              str(c.total - c.done - c.failed)]  # fmt: skip
        percent = round(100 * (c.done + c.failed) / c.total, 1)
        assert float(row.locator("progress").get_attribute("value")) == percent
    assert page.locator("svg.chart rect.bar").count() >= 1  # drawn by the script
    page.screenshot(path=str(shots / "batches.png"), full_page=True)


@pytest.mark.both_stores
def test_a_batch_page_shows_counts_failures_by_reason_and_filters(
    world: Any, dashboard: Any, page: Any, shots: Path
) -> None:
    batch_id = world.batches["nightly"]
    info = world.orch.batch(batch_id)
    page.goto(f"{dashboard.url}batches/{batch_id}")
    _live(page)
    for name in ("total", "done", "failed", "running"):
        assert page.locator(f"#count-{name}").inner_text() == str(getattr(info.counts, name))
    failures = page.locator("table.failures tbody tr")
    assert failures.count() == 2
    top = failures.nth(0).locator("td").all_inner_texts()
    assert top[0] == "2" and top[1] == "wait" and "synthetic failure requested" in top[2]
    assert failures.nth(1).locator("td").all_inner_texts()[:2] == ["1", "check"]

    items = list(world.orch.batch_items(batch_id))
    rows = page.locator("tbody[data-rows=items] tr")
    assert rows.count() == len(items) == 7
    for item, row in zip(items, rows.all(), strict=True):
        cells = row.locator("td, th").all_inner_texts()
        assert cells[0] == str(item.seq) and cells[1] == item.input
        assert cells[2] == item.state.value and cells[3] == (item.job_state or DASH)
        assert cells[4] == ("echo" if item.job_id else DASH)
    assert "no such file" in rows.nth(6).locator("td.error").inner_text()
    # The chart counts every finished input; the provider table every job, by state.
    data = dashboard.get(f"api/batches/{batch_id}").json()["batch"]
    assert sum(data["series"]["bars"]) == info.counts.done + info.counts.failed == 7
    shown = [world.orch.store.listing.row(i.job_id).state for i in items if i.job_id]
    assert data["providers"] == {"echo": {s: shown.count(s) for s in set(shown)}}
    page.screenshot(path=str(shots / "batch.png"), full_page=True)

    # Filters, by keyboard: choose a state, then submit with Enter.
    page.focus("#f-state")
    page.select_option("#f-state", "failed")
    page.focus("form.filters button")
    page.keyboard.press("Enter")
    page.wait_for_url("**state=failed**")
    _live(page)
    assert rows.count() == 3
    page.select_option("#f-state", "")
    page.select_option("#f-provider", "echo")
    page.click("form.filters button")
    page.wait_for_url("**provider=echo**")
    _live(page)
    assert rows.count() == 6  # the input that failed its check has no job, so no provider


def test_a_batch_of_sixty_inputs_is_paged(world: Any, dashboard: Any, page: Any) -> None:
    page.goto(f"{dashboard.url}batches/{world.batches['live']}")
    rows = page.locator("tbody[data-rows=items] tr")
    assert rows.count() == 50
    page.click("text=Next page")
    page.wait_for_url("**page=2**")
    _live(page)
    assert rows.count() == 10
    assert rows.nth(0).locator("td").nth(0).inner_text() == "51"


@pytest.mark.both_stores
def test_a_job_page_shows_history_handle_options_and_exports(
    world: Any, dashboard: Any, page: Any, shots: Path
) -> None:
    job_id = world.jobs["transcript"]
    record = world.orch.record(job_id)
    page.goto(f"{dashboard.url}jobs/{job_id}")
    _live(page)
    events = world.orch.store.events(job_id)
    timeline = page.locator("#events li")
    assert timeline.count() == len(events)
    assert [t.strip() for t in timeline.locator("strong").all_inner_texts()] == [
        e.type for e in events
    ]
    assert page.locator("#job-state").inner_text() == "succeeded"
    assert '"speakers_count": 2' in page.locator("#options").inner_text()
    assert record.handle.vendor_id in page.inner_text("main")
    page.screenshot(path=str(shots / "job.png"), full_page=True)
    result = world.orch.store.result(job_id)
    for fmt in FORMATS:
        link = page.locator(f'a[href="/jobs/{job_id}/export/{fmt}"]')
        assert link.count() == 1
        answer = dashboard.get(f"jobs/{job_id}/export/{fmt}")
        assert answer.status == 200 and answer.data.decode() == render(result, fmt)

    # A secret option is masked, though its name looks harmless.
    page.goto(f"{dashboard.url}jobs/{world.jobs['keyed']}")
    assert '"vocabulary_key": "***"' in page.locator("#options").inner_text()


@pytest.mark.both_stores
def test_the_transcript_plays_highlights_the_current_word_and_seeks_on_a_click(
    world: Any, dashboard: Any, page: Any, shots: Path
) -> None:
    job_id = world.jobs["transcript"]
    result = world.orch.store.result(job_id)
    assert isinstance(result, Transcript)
    words = [w for s in result.segments for w in s.words]
    page.goto(f"{dashboard.url}jobs/{job_id}/transcript")
    buttons = page.locator(".transcript button.w")
    assert buttons.count() == len(words) == 13
    speakers = page.locator(".speaker").all_inner_texts()
    assert {"Speaker 0", "Speaker 1"} <= set(speakers)  # two speakers, by sentence
    first = buttons.nth(0)
    assert first.get_attribute("title") == f"confidence {words[0].confidence:.2f}"
    page.check("#show-confidence")
    assert first.locator(".c").is_visible()
    page.wait_for_function("() => document.getElementById('audio').readyState >= 1")
    assert abs(page.evaluate("document.getElementById('audio').duration") - 6.857) < 0.05

    target = 6  # "tomorrow"
    buttons.nth(target).click()
    start = words[target].start or 0.0
    page.wait_for_function(f"() => document.getElementById('audio').currentTime >= {start - 0.01}")
    assert buttons.nth(target).get_attribute("aria-current") == "true"
    # It plays on: time moves and the highlight follows it to a later word.
    page.wait_for_function(
        f"() => Number(document.querySelector('.w.current')?.dataset.i) > {target}", timeout=8000
    )
    assert page.evaluate("document.getElementById('audio').currentTime") > start
    page.screenshot(path=str(shots / "transcript.png"), full_page=True)

    # By keyboard: Tab to a word and press Enter.
    page.evaluate("document.getElementById('audio').pause()")
    buttons.nth(2).focus()
    page.keyboard.press("Enter")
    seek = words[2].start or 0.0
    page.wait_for_function(
        f"() => Math.abs(document.getElementById('audio').currentTime - {seek}) < 0.5"
    )
    assert buttons.nth(2).get_attribute("aria-current") == "true"
