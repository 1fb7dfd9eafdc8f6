"""The echo provider: the smallest complete voxhub provider, over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from voxhub.plugin import (
    InvalidInputError,
    JobHandle,
    JobRequest,
    JobState,
    JobStatus,
    LocalFile,
    MultipartBody,
    Part,
    Provider,
    ProviderContext,
    ProviderError,
    RemoteUrl,
    Response,
    Segment,
    Transcript,
    Word,
    error_for_status,
)

from .options import INFO

_STATES = {
    "queued": JobState.QUEUED,
    "running": JobState.RUNNING,
    "done": JobState.SUCCEEDED,
    "error": JobState.FAILED,
}


class EchoProvider(Provider):
    info = INFO

    def authenticate(self, ctx: ProviderContext) -> dict[str, str]:
        return {"X-Api-Key": ctx.settings.require("api_key")}

    def validate(self, ctx: ProviderContext, request: JobRequest) -> JobRequest:
        if request.options.get("fail") and request.options.get("text"):
            raise InvalidInputError(
                "fail and text cannot be combined",
                field="fail",
                provider="echo",
                operation="validate",
            )
        return request

    def _check(self, resp: Response, operation: str) -> Any:
        if resp.ok:
            return resp.json(provider="echo", operation=operation) if resp.data else None
        is_json = (resp.header("Content-Type") or "").startswith("application/json")
        body = resp.json(provider="echo", operation=operation) if is_json and resp.data else {}
        message = body.get("error", resp.text) if isinstance(body, dict) else resp.text
        if resp.status == 400 and isinstance(body, dict) and body.get("field"):
            raise InvalidInputError(
                message, field=body["field"], provider="echo", operation=operation
            )
        raise error_for_status(resp.status, message, provider="echo", operation=operation)

    def submit(self, ctx: ProviderContext, request: JobRequest, handle: JobHandle) -> JobHandle:
        payload: dict[str, Any] = {"key": handle.idempotency_key, **request.options}
        if request.language:
            payload["language"] = request.language
        url = f"{ctx.base_url}/v1/jobs"
        if isinstance(request.media, LocalFile):
            body = MultipartBody(
                [
                    Part("options", json.dumps(payload), content_type="application/json"),
                    Part("media", path=request.media.path),
                ]
            )
            resp = ctx.http.request("POST", url, operation="submit", headers=ctx.auth, body=body)
        elif isinstance(request.media, RemoteUrl):
            payload["url"] = request.media.url
            resp = ctx.http.request("POST", url, operation="submit", headers=ctx.auth, json=payload)
        else:
            raise InvalidInputError("echo needs a file or a URL", field="media", provider="echo")
        job = self._check(resp, "submit")
        return handle.with_vendor({"job": job["id"]})

    def recover(
        self, ctx: ProviderContext, request: JobRequest, handle: JobHandle
    ) -> JobHandle | None:
        resp = ctx.http.request(
            "GET",
            f"{ctx.base_url}/v1/jobs",
            operation="recover",
            headers=ctx.auth,
            params={"key": handle.idempotency_key},
        )
        jobs = self._check(resp, "recover")
        return handle.with_vendor({"job": jobs[0]["id"]}) if jobs else None

    def status(self, ctx: ProviderContext, handle: JobHandle) -> JobStatus:
        resp = ctx.http.request(
            "GET",
            f"{ctx.base_url}/v1/jobs/{handle.vendor_ids['job']}",
            operation="status",
            headers=ctx.auth,
        )
        job = self._check(resp, "status")
        state = _STATES.get(job["status"], JobState.RUNNING)
        return JobStatus(
            state,
            vendor_state=job["status"],
            reason=job.get("error") and "error",
            detail=job.get("error"),
            progress=job.get("progress"),
            raw=job,
        )

    def fetch(self, ctx: ProviderContext, handle: JobHandle) -> Transcript:
        resp = ctx.http.request(
            "GET",
            f"{ctx.base_url}/v1/jobs/{handle.vendor_ids['job']}/result",
            operation="fetch",
            headers=ctx.auth,
        )
        data = self._check(resp, "fetch")
        if not isinstance(data, dict) or not isinstance(data.get("words"), list):
            raise ProviderError("malformed result", provider="echo", operation="fetch")
        words = tuple(Word(w["s"], w["e"], w["w"], w["c"]) for w in data["words"])
        text = " ".join(w.text for w in words)
        segment = Segment(
            words[0].start if words else 0.0,
            words[-1].end if words else 0.0,
            text,
            speaker="0",
            words=words,
        )
        return Transcript(
            "echo",
            handle.job_id,
            text,
            language=data.get("language"),
            duration=words[-1].end if words else 0.0,
            segments=(segment,) if words else (),
            raw=data,
        )

    def close(self, ctx: ProviderContext, handle: JobHandle) -> None:
        resp = ctx.http.request(
            "DELETE",
            f"{ctx.base_url}/v1/jobs/{handle.vendor_ids['job']}",
            operation="close",
            headers=ctx.auth,
        )
        if resp.status != 404:
            self._check(resp, "close")


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".txt")
