"""The echo service: a minimal asynchronous job API, built on the sandbox kit.

Jobs advance one step per status request (queued -> running -> succeeded), so
tests with a fake clock finish without real waiting. The transcript is the
media's sidecar text (``<file>.txt``) or its base name, one word per second.
Routes are werkzeug rules; lost answers and other scripted answers are the kit's
(``sandbox.script(endpoint="create", action="drop_after")`` or ``POST /_sandbox/script``).
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any, ClassVar

from voxhub.sandbox_kit import FaultPlan, Request, Response, Rule, Sandbox, json_answer

API_KEY = "echo-test-key-0123456789"


class EchoSandbox(Sandbox):
    """Emulates the echo vendor. ``steps``: status requests until a job is done.

    ``drop_after_create`` loses the answer of the first create (the job exists): a
    scripted ``drop_after`` answer of the kit, queued at start.
    """

    provider = "echo"
    rules: ClassVar[tuple[Rule, ...]] = (
        Rule("/v1/jobs", methods=["POST"], endpoint="create"),
        Rule("/v1/jobs", methods=["GET"], endpoint="list"),
        Rule("/v1/jobs/<job_id>", methods=["GET"], endpoint="get"),
        Rule("/v1/jobs/<job_id>", methods=["DELETE"], endpoint="delete"),
        Rule("/v1/jobs/<job_id>/result", methods=["GET"], endpoint="result"),
    )

    def __init__(
        self, *, faults: FaultPlan | None = None, steps: int = 2, drop_after_create: bool = False
    ) -> None:
        super().__init__(faults=faults)
        self.steps = steps
        self.jobs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        if drop_after_create:
            self.script(endpoint="create", action="drop_after")

    def credentials(self) -> dict[str, str]:
        return {"api_key": API_KEY}

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.jobs.clear()

    def dispatch(self, request: Request) -> Response:
        if request.headers.get("X-Api-Key") != API_KEY:
            return _json({"error": "bad api key"}, 401)
        return super().dispatch(request)

    def on_create(self, request: Request) -> Response:
        if request.mimetype == "multipart/form-data":
            upload = request.files.get("media")
            if upload is None:
                return _json({"error": "media part missing", "field": "media"}, 400)
            size = 0
            while chunk := upload.stream.read(1 << 20):
                size += len(chunk)
            body = json.loads(request.form.get("options", "{}"))
            body["name"] = upload.filename
            body["size"] = size
            body["content_type"] = upload.content_type
        else:
            body = request.get_json(silent=True) or {}
            if not body.get("url"):
                return _json({"error": "url is required", "field": "url"}, 400)
        with self._lock:
            job_id = uuid.uuid4().hex[:12]
            self.jobs[job_id] = {"id": job_id, "status": "queued", "polls": 0, **body}
            key = body.get("key")
            self.counters.add("jobs.created")
            if key and sum(1 for j in self.jobs.values() if j.get("key") == key) > 1:
                self.counters.add("jobs.duplicates")
        return _json(self._public(self.jobs[job_id]), 201)

    def on_list(self, request: Request) -> Response:
        key = request.args.get("key")
        with self._lock:
            found = [self._public(j) for j in self.jobs.values() if not key or j.get("key") == key]
        return _json(found)

    def on_get(self, request: Request, job_id: str) -> Response:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                return _json({"error": "no such job"}, 404)
            job["polls"] += 1
            if job["status"] in ("queued", "running"):
                if job.get("fail") and job["polls"] >= self.steps:
                    job["status"] = "error"
                    job["error"] = "synthetic failure requested"
                elif job["polls"] >= self.steps:
                    job["status"] = "done"
                else:
                    job["status"] = "running"
            return _json(self._public(job))

    def on_delete(self, request: Request, job_id: str) -> Response:
        with self._lock:
            if self.jobs.pop(job_id, None) is None:
                return _json({"error": "no such job"}, 404)
        return Response(status=204)

    def on_result(self, request: Request, job_id: str) -> Response:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                return _json({"error": "no such job"}, 404)
            if job["status"] != "done":
                return _json({"error": f"job is {job['status']}"}, 409)
        source = job.get("name") or job.get("url", "")
        words = str(job.get("text") or source.rsplit("/", 1)[-1]).split()
        return _json(
            {
                "id": job_id,
                "language": job.get("language") or "en",
                "words": [
                    {"w": w, "s": float(i), "e": i + 0.8, "c": 0.9} for i, w in enumerate(words)
                ],
            }
        )

    def _public(self, job: dict[str, Any]) -> dict[str, Any]:
        progress = min(1.0, job["polls"] / max(1, self.steps))
        return {
            "id": job["id"],
            "status": job["status"],
            "key": job.get("key"),
            "progress": progress if job["status"] != "queued" else 0.0,
            "error": job.get("error"),
            "name": job.get("name"),
            "size": job.get("size"),
        }


def _json(data: Any, status: int = 200) -> Response:
    return json_answer(data, status)
