"""ApiClient, the plugin authors' connection base, against a real loopback vendor."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import pytest
import structlog
from voxhub.clock import FakeClock
from voxhub.plugin import (
    ApiClient,
    InvalidInputError,
    NotFoundError,
    ProviderContext,
    ProviderError,
    ProviderSettings,
    ProviderUnavailableError,
    RateLimitedError,
    Response,
    RetryPolicy,
    VoxhubError,
    path_segment,
)
from voxhub.policies import Backoff, deadline_scope
from voxhub.sandbox_kit import Request, Rule, Sandbox, json_answer
from voxhub.sandbox_kit import Response as WsgiResponse
from voxhub.sandbox_server import RunningSandbox, serve
from voxhub.transport import HttpClient


class Vendor(Sandbox):
    provider = "acme"
    rules = (
        Rule("/api/v2/jobs/<path:job_id>", endpoint="job", methods=["GET"]),
        Rule("/api/v2/busy", endpoint="busy", methods=["GET"]),
        Rule("/api/v2/html", endpoint="html", methods=["GET"]),
    )

    def on_job(self, request: Request, job_id: str) -> WsgiResponse:
        if request.headers.get("Authorization") != "Key s3cret-key":
            return json_answer({"code": "auth"}, 401)
        if job_id == "missing":
            return json_answer({"code": "nope"}, 404)
        if job_id == "bad-shape":
            return json_answer({"id": 5})
        return json_answer({"id": job_id, "state": "done", "extra": "vendors add fields"})

    def on_busy(self, request: Request) -> WsgiResponse:
        return json_answer({"code": "slow down"}, 429, headers={"Retry-After": "7"})

    def on_html(self, request: Request) -> WsgiResponse:
        return WsgiResponse("<html>maintenance</html>", content_type="text/html")


@attrs.frozen
class Job:
    id: str
    state: str


class AcmeApi(ApiClient):
    name = "Acme"
    path_prefix = "/api/v2"


class StrictAcmeApi(AcmeApi):
    def parse_error(self, response: Response, operation: str) -> VoxhubError:
        code = self.json(response, operation).get("code")
        if response.status == 404:
            return InvalidInputError(f"Acme says {code}", field="job", provider="acme")
        return super().parse_error(response, operation)


@pytest.fixture
def vendor() -> Iterator[RunningSandbox]:
    with serve(Vendor()) as running:
        yield running


@pytest.fixture
def ctx(vendor: RunningSandbox) -> Iterator[ProviderContext]:
    clock = FakeClock()
    client = HttpClient(clock=clock)
    settings = ProviderSettings("acme", "acme", vendor.base_url + "/", {})
    context = ProviderContext(
        provider="acme", profile="acme", settings=settings,
        http=client.bind("acme", retry=RetryPolicy(max_attempts=2, max_rate_limited_attempts=1)),
        clock=clock, log=structlog.get_logger("test"),
        auth={"Authorization": "Key s3cret-key"},
    )
    yield context
    client.close()


def test_call_joins_the_prefix_sends_auth_and_reads_into_attrs(ctx: ProviderContext):
    api = AcmeApi(ctx)
    assert api.base_url.endswith("/api/v2")
    job = api.call("GET", f"/jobs/{path_segment('a/b')}", operation="status", into=Job)
    assert job == Job(id="a/b", state="done")
    raw: Mapping[str, Any] = api.call("GET", "/jobs/x", operation="status")
    assert raw["extra"] == "vendors add fields"


def test_default_error_mapping_by_status(ctx: ProviderContext):
    api = AcmeApi(ctx)
    with pytest.raises(NotFoundError) as info:
        api.call("GET", "/jobs/missing", operation="status")
    assert info.value.provider == "acme" and info.value.operation == "status"
    assert "Acme" in str(info.value) and info.value.status == 404


def test_rate_limits_keep_retry_after(ctx: ProviderContext):
    with pytest.raises(RateLimitedError) as info:
        AcmeApi(ctx).request("GET", "/busy", operation="status")
    assert info.value.retry_after == 7


def test_ok_statuses_are_returned_not_raised(ctx: ProviderContext):
    response = AcmeApi(ctx).request("GET", "/jobs/missing", operation="close", ok=(404,))
    assert response.status == 404


def test_a_vendor_parse_error_overrides_the_mapping(ctx: ProviderContext):
    with pytest.raises(InvalidInputError) as info:
        StrictAcmeApi(ctx).call("GET", "/jobs/missing", operation="status")
    assert info.value.field == "job"


def test_wrong_shapes_and_non_json_are_provider_errors_naming_the_class(ctx: ProviderContext):
    api = AcmeApi(ctx)
    with pytest.raises(ProviderError, match="could not read it as Job"):
        api.call("GET", "/jobs/bad-shape", operation="status", into=Job)
    with pytest.raises(ProviderError, match="expected JSON"):
        api.call("GET", "/html", operation="status")


def test_missing_auth_is_mapped_and_the_key_never_shows(ctx: ProviderContext):
    ctx.auth = {"Authorization": "Key wrong-key-123"}
    with pytest.raises(VoxhubError) as info:
        AcmeApi(ctx).call("GET", "/jobs/x", operation="status")
    assert info.value.status == 401  # type: ignore[attr-defined]
    assert "wrong-key-123" not in str(info.value)


def test_server_errors_leave_a_creating_request_in_doubt(ctx: ProviderContext, vendor):
    vendor.sandbox.script(endpoint="job", status=503, times=5)
    with pytest.raises(ProviderUnavailableError) as info:
        AcmeApi(ctx).request("GET", "/jobs/x", operation="status")
    assert info.value.in_doubt is True


# --- the deadline in scope: the vendor's own error, saying why it stopped early --------------


class OwnErrorsApi(AcmeApi):
    """Maps failures without calling the base mapping, as most vendor clients do."""

    def parse_error(self, response: Response, operation: str) -> VoxhubError:
        return ProviderError(f"Acme said {response.status}", provider="acme",
                             operation=operation, status=response.status)


@pytest.fixture
def patient_ctx(ctx: ProviderContext) -> ProviderContext:
    """``ctx`` with the default retry policy: a 429 is waited out (30 attempts)."""
    client = ctx.http.client
    return attrs.evolve(ctx, http=client.bind("acme", retry=RetryPolicy()))


@pytest.mark.parametrize("api", [AcmeApi, StrictAcmeApi, OwnErrorsApi])
def test_a_wait_past_the_deadline_raises_the_vendor_error_at_once(
    patient_ctx: ProviderContext, api: type[AcmeApi]
) -> None:
    clock = patient_ctx.clock
    assert isinstance(clock, FakeClock)
    notices: list[Backoff] = []
    patient_ctx.http.client.add_backoff_listener(notices.append)
    # The vendor asks for 7 s each time; 10 s are left: one wait fits, a second would not.
    with deadline_scope(clock.monotonic() + 10), pytest.raises(ProviderError) as info:
        api(patient_ctx).request("GET", "/busy", operation="status")
    error = info.value
    assert clock.slept == [7.0] and [n.seconds for n in notices] == [7.0]
    assert error.details["gave_up"] == "deadline" and error.status == 429
    assert str(error).count("would pass the deadline") == 1  # said once, however it was mapped
    assert str(error).startswith("acme:status: ")


def test_without_a_deadline_errors_say_nothing_about_one(patient_ctx: ProviderContext) -> None:
    patient_ctx.http.retry = RetryPolicy(max_rate_limited_attempts=2)
    with pytest.raises(RateLimitedError) as info:
        AcmeApi(patient_ctx).request("GET", "/busy", operation="status")
    assert "deadline" not in str(info.value) and "gave_up" not in info.value.details
    assert info.value.retry_after == 7
