"""Job ids must be JSON strings (issue 16): ``123`` or ``NaN`` never become an id "123"/"nan".

The answers are scripted over real HTTP through the sandbox's ``POST /_sandbox/script``.
A 2xx answer to job creation that cannot be read is ``in_doubt`` (Rev said the job
exists); the core then looks the job up with ``recover`` before it sends anything again.
"""

from __future__ import annotations

import json

import pytest
import urllib3
from voxhub.plugin import JobRequest, ProviderError, RemoteUrl
from voxhub.sandbox import RunningSandbox
from voxhub_revai.schema import RevJob, converter

JOBS = "/speechtotext/v1/jobs"


def _script_create_answer(run: RunningSandbox, body: str, status: int = 200) -> None:
    # ``body`` is sent as raw JSON text so that ``NaN`` (not JSON, but what Python and some
    # gateways emit) reaches the sandbox, and from it the client, as it is written.
    text = f'{{"endpoint": "create_job", "status": {status}, "body": {body}}}'
    answer = urllib3.request("POST", f"{run.base_url}/_sandbox/script", body=text.encode(),
                             headers={"Content-Type": "application/json"})
    assert answer.status == 200, answer.data


@pytest.mark.parametrize("value", ["123", "NaN", "12.5", "true", "null", "[\"a\"]", "{\"a\": 1}"])
def test_a_job_id_that_is_not_a_json_string_is_refused_naming_the_field(kit, make_sandbox,
                                                                        provider, value):
    run = make_sandbox()
    _script_create_answer(run, f'{{"id": {value}, "status": "in_progress"}}')
    ctx = kit.make_ctx(run, fake_clock=True)
    with pytest.raises(ProviderError) as info:
        provider.submit(ctx, *kit.new_job(RemoteUrl("https://media.example.com/a.mp3")))
    error = info.value
    assert type(error) is ProviderError and error.operation == "submit"
    assert "$.id" in str(error) and "\n" not in str(error)
    assert error.in_doubt is True  # a 2xx: Rev created the job, only its answer is unreadable
    assert run.sandbox.counters.get("scripted.answer") == 1


def test_string_ids_still_read_and_other_fields_stay_tolerant():
    job = converter.structure({"id": "123", "duration_seconds": "4.5", "name": 7}, RevJob)
    assert (job.id, job.duration_seconds, job.name) == ("123", 4.5, "7")


def test_numeric_id_answer_is_resolved_by_recover_through_the_orchestrator(make_sandbox,
                                                                           make_orch):
    run = make_sandbox()
    # The scripted answer stands in for the vendor: no job was created behind it.
    _script_create_answer(run, json.dumps({"id": 123, "status": "in_progress"}), status=200)
    handle = make_orch(run).submit(
        JobRequest(provider="revai", media=RemoteUrl("https://media.example.com/x.mp3")))
    counters = run.sandbox.counters
    assert counters.get("scripted.answer") == 1
    assert counters.get(f"GET {JOBS}") >= 1  # the look-up before sending again
    assert counters.get(f"POST {JOBS}") == 2  # sent again once, since nothing was found
    assert counters.get("jobs.created") == 1 and counters.get("jobs.duplicates") == 0
    assert handle.vendor_ids["job"] == run.sandbox.job_ids()[0]
    assert isinstance(handle.vendor_ids["job"], str) and handle.vendor_ids["job"] != "123"
