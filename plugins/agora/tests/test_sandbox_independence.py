"""The Agora emulators judge requests by the vendor documents, with their own code.

Requests the real vendor would refuse are sent straight to the sandboxes over HTTP
(urllib3, no provider involved), and each must be refused the documented way: status
plus Agora's body shape for that API (STT v5/v6 ``{"code", "reason"}``, v7 ``{"reason",
"detail"}``, transcoder and auth ``{"message"}``).
"""

from __future__ import annotations

import ast
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
import voxhub_agora
from voxhub.sandbox import RunningSandbox

_PKG = Path(voxhub_agora.__file__).parent
#: The client's validation and auth modules: no sandbox module may import them.
_CLIENT_ONLY = {"_checks", "stt_config", "transcoder_config", "transcoder_parts", "auth",
                "accesstoken", "accesstoken_codec", "accesstoken_services", "provider",
                "stt", "transcoder", "api", "errors", "schema", "states", "options"}


def _sandbox_modules() -> list[Path]:
    return sorted(_PKG.glob("sandbox*.py"))


@pytest.mark.parametrize("path", _sandbox_modules(), ids=lambda p: p.name)
def test_sandbox_modules_import_no_client_code(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            imported.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("voxhub_agora"):
            imported.add((node.module or "").split(".")[-1])
    assert not imported & _CLIENT_ONLY, imported & _CLIENT_ONLY


@pytest.fixture(scope="module")
def http() -> Iterator[urllib3.PoolManager]:
    with urllib3.PoolManager(retries=False) as pool:
        yield pool


def _basic(running: RunningSandbox) -> str:
    s = running.sandbox
    pair = f"{s.customer_id}:{s.customer_secret}"  # type: ignore[attr-defined]
    return "Basic " + base64.b64encode(pair.encode()).decode()


def _send(http: urllib3.PoolManager, running: RunningSandbox, method: str, path: str, *,
          body: Any = None, auth: str | None = None, content_type: str = "application/json",
          raw: bytes | None = None) -> tuple[int, Any]:
    app_id = running.sandbox.app_id  # type: ignore[attr-defined]
    headers = {"Authorization": auth if auth is not None else _basic(running)}
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    if data is not None:
        headers["Content-Type"] = content_type
    answer = http.request(method, running.base_url + path.format(app=app_id), body=data,
                          headers=headers)
    return answer.status, json.loads(answer.data) if answer.data else None


_V6 = "/v1/projects/{app}/rtsc/speech-to-text"
_V7 = "/api/speech-to-text/v1/projects/{app}"
_TC = "/v1/projects/{app}/rtsc/cloud-transcoder"


def _start_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"languages": ["en-US"],
                            "rtcConfig": {"channelName": "room", "subBotUid": "111",
                                          "pubBotUid": "222"}}
    body.update(changes)
    return body


# --- authentication (seed 000 and spec 1.1) --------------------------------------------------

@pytest.mark.parametrize("header", [
    "Bearer abc", "agora tok=007abc", "Basic !!!", "", "Basic " + base64.b64encode(
        b"someone:wrong").decode(),
])
def test_wrong_auth_format_is_401_invalid_credentials(header: str, http: urllib3.PoolManager,
                                                      stt_sandbox: RunningSandbox) -> None:
    status, body = _send(http, stt_sandbox, "POST", _V6 + "/builderTokens",
                         body={"instanceId": "x"}, auth=header)
    assert (status, body) == (401, {"message": "Invalid authentication credentials"})


def test_malformed_token_is_401_invalid_token(http: urllib3.PoolManager,
                                              stt_sandbox: RunningSandbox) -> None:
    status, body = _send(http, stt_sandbox, "POST", _V6 + "/builderTokens",
                         body={"instanceId": "x"}, auth='agora token="007eJxnotatoken"')
    assert (status, body) == (401, {"message": "Invalid token"})


# --- STT v5/v6: 400 {"code": 2, "reason": "body schema check fail, ..."} --------------------

def _token(http: urllib3.PoolManager, running: RunningSandbox) -> str:
    status, body = _send(http, running, "POST", _V6 + "/builderTokens", body={"instanceId": "i"})
    assert status == 200
    return str(body["tokenName"])


@pytest.mark.parametrize(("body", "field"), [
    (_start_body(languages=None), "languages"),
    ({"languages": ["en-US"]}, "rtcConfig"),
    (_start_body(rtcConfig={"subBotUid": "1", "pubBotUid": "2"}), "rtcConfig.channelName"),
    (_start_body(rtcConfig={"channelName": "r", "subBotUid": "1"}), "rtcConfig.pubBotUid"),
    (_start_body(maxIdleTime=4), "maxIdleTime"),
    (_start_body(languages=["en-US", "ja-JP", "fr-FR", "de-DE", "es-ES"]), "languages"),
    (_start_body(rtcConfig={"channelName": "r", "subBotUid": "1", "pubBotUid": "2",
                            "cryptionMode": 9}), "rtcConfig.cryptionMode"),
    (_start_body(rtcConfig={"channelName": "r", "subBotUid": 1, "pubBotUid": "2"}),
     "rtcConfig.subBotUid"),
    (_start_body(extra=1), "extra"),
])
def test_start_refusals(body: dict[str, Any], field: str, http: urllib3.PoolManager,
                        stt_sandbox: RunningSandbox) -> None:
    token = _token(http, stt_sandbox)
    status, answer = _send(http, stt_sandbox, "POST", _V6 + f"/tasks?builderToken={token}",
                           body={k: v for k, v in body.items() if v is not None})
    assert status == 400 and answer["code"] == 2, answer
    assert answer["reason"].startswith("body schema check fail, " + field), answer


def test_acquire_without_instance_id(http: urllib3.PoolManager,
                                     stt_sandbox: RunningSandbox) -> None:
    status, answer = _send(http, stt_sandbox, "POST", _V6 + "/builderTokens", body={})
    assert status == 400 and answer == {"code": 2,
                                        "reason": "body schema check fail, instanceId: is required"}


def test_wrong_content_type_and_method(http: urllib3.PoolManager,
                                       stt_sandbox: RunningSandbox) -> None:
    status, answer = _send(http, stt_sandbox, "POST", _V6 + "/builderTokens",
                           body={"instanceId": "x"}, content_type="text/plain")
    assert status == 400 and answer["code"] == 2 and "Content-Type" in answer["reason"]
    # The seed's own curl writes "Application/json": media types are case-insensitive.
    status, _ = _send(http, stt_sandbox, "POST", _V6 + "/builderTokens",
                      body={"instanceId": "x"}, content_type="Application/json")
    assert status == 200
    status, answer = _send(http, stt_sandbox, "PUT", _V6 + "/builderTokens",
                           body={"instanceId": "x"})
    assert (status, set(answer)) == (405, {"message"})


def test_v6_update_needs_sequence_id_and_update_mask(http: urllib3.PoolManager,
                                                     stt_sandbox: RunningSandbox) -> None:
    token = _token(http, stt_sandbox)
    status, task = _send(http, stt_sandbox, "POST", _V6 + f"/tasks?builderToken={token}",
                         body=_start_body())
    assert status == 200
    path = _V6 + f"/tasks/{task['taskId']}?builderToken={token}"
    change = {"languages": ["ja-JP"]}
    for query, field in (("&updateMask=languages", "sequenceId"), ("&sequenceId=1", "updateMask"),
                         ("&sequenceId=1&updateMask=maxIdleTime", "updateMask"),
                         ("&sequenceId=1&updateMask=languages,rtcConfig.subscribeAudioUids",
                          "rtcConfig.subscribeAudioUids")):
        status, answer = _send(http, stt_sandbox, "PATCH", path + query, body=change)
        assert status == 400 and answer["code"] == 2, (query, answer)
        assert answer["reason"].startswith(f"body schema check fail, {field}"), answer
    status, _ = _send(http, stt_sandbox, "PATCH", path + "&sequenceId=1&updateMask=languages",
                      body=change)
    assert status == 200


# --- STT v7: {"reason", "detail"} -----------------------------------------------------------

def test_v7_join_and_update_refusals(http: urllib3.PoolManager,
                                     stt_sandbox: RunningSandbox) -> None:
    status, answer = _send(http, stt_sandbox, "POST", _V7 + "/join", body=_start_body())
    assert status == 400 and answer["reason"] == "InvalidParameter"
    assert answer["detail"].startswith("name: is required")
    status, agent = _send(http, stt_sandbox, "POST", _V7 + "/join",
                          body=_start_body(name="agent-1"))
    assert status == 200
    path = _V7 + f"/agents/{agent['agent_id']}/update"
    change = {"languages": ["ja-JP"]}
    for query in ("", "?updateMask=languages", "?sequenceId=1", "?sequenceId=-1&updateMask=x"):
        status, answer = _send(http, stt_sandbox, "POST", path + query, body=change)
        assert status == 400 and set(answer) == {"reason", "detail"}, (query, answer)
    status, _ = _send(http, stt_sandbox, "POST", path + "?sequenceId=0&updateMask=languages",
                      body=change)
    assert status == 200
    status, answer = _send(http, stt_sandbox, "POST", path + "?sequenceId=0&updateMask=languages",
                           body=change)
    assert status == 400 and "sequenceId" in answer["detail"]  # must grow


# --- Cloud Transcoder (seed 001): 400 {"message"} ------------------------------------------------

def _transcoder(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "audioInputs": [{"rtc": {"rtcChannel": "show", "rtcUid": 1, "rtcToken": "t"}}],
        "canvas": {"width": 120, "height": 120, "color": 0},
        "watermarks": [],
        "outputs": [{"streamUrl": "rtmp://cdn.example/live"}],
    }
    for key, value in changes.items():
        if value is None:
            config.pop(key)
        else:
            config[key] = value
    return {"services": {"cloudTranscoder": {"serviceType": "cloudTranscoderV2",
                                             "config": {"transcoder": config}}}}


_T = "services.cloudTranscoder.config.transcoder"


@pytest.mark.parametrize(("services", "field"), [
    (_transcoder(canvas=None), f"{_T}.canvas"),
    (_transcoder(watermarks=None), f"{_T}.watermarks"),
    (_transcoder(canvas={"width": 120, "height": 120}), f"{_T}.canvas.color"),
    (_transcoder(canvas={"width": 119, "height": 120, "color": 0}), f"{_T}.canvas.width"),
    (_transcoder(watermarks=[{"imageUrl": "https://x.example/logo.jpeg",
                              "region": {"x": 0, "y": 0, "width": 120, "height": 120,
                                         "zOrder": 0}}]), f"{_T}.watermarks[0].imageUrl"),
    (_transcoder(watermarks=[{"imageUrl": "https://x.example/logo.png",
                              "region": {"x": 0, "y": 0, "width": 120, "height": 120,
                                         "zOrder": 101}}]), f"{_T}.watermarks[0].region.zOrder"),
    (_transcoder(outputs=[]), f"{_T}.outputs"),
    (_transcoder(audioInputs=[{"rtc": {"rtcChannel": "show", "rtcUid": 1}}]),
     f"{_T}.audioInputs[0].rtc.rtcToken"),
    (_transcoder(idleTimeout=0), f"{_T}.idleTimeout"),
    ({"services": {"cloudTranscoder": {"serviceType": "cloudTranscoder",
                                       "config": {"transcoder": {}}}}},
     "services.cloudTranscoder.serviceType"),
])
def test_transcoder_acquire_refusals(services: dict[str, Any], field: str,
                                     http: urllib3.PoolManager,
                                     tc_sandbox: RunningSandbox) -> None:
    status, answer = _send(http, tc_sandbox, "POST", _TC + "/builderTokens",
                           body={"instanceId": "inst", **services})
    assert status == 400 and set(answer) == {"message"}, answer
    assert answer["message"].startswith(f"body schema check fail, {field}"), answer


def test_transcoder_acquire_needs_services_and_accepts_no_watermark(
        http: urllib3.PoolManager, tc_sandbox: RunningSandbox) -> None:
    status, answer = _send(http, tc_sandbox, "POST", _TC + "/builderTokens",
                           body={"instanceId": "inst"})
    assert status == 400 and answer["message"].startswith("body schema check fail, services")
    status, answer = _send(http, tc_sandbox, "POST", _TC + "/builderTokens",
                           body={"instanceId": "inst", **_transcoder()})
    assert status == 200 and answer["tokenName"]
    status, created = _send(http, tc_sandbox, "POST",
                            _TC + f"/tasks?builderToken={answer['tokenName']}", body=_transcoder())
    assert status == 200 and created["taskId"]


def test_transcoder_wrong_content_type_method_and_update_query(
        http: urllib3.PoolManager, tc_sandbox: RunningSandbox) -> None:
    status, answer = _send(http, tc_sandbox, "POST", _TC + "/builderTokens",
                           raw=b"instanceId=inst", content_type="application/x-www-form-urlencoded")
    assert status == 400 and set(answer) == {"message"}
    status, answer = _send(http, tc_sandbox, "PUT", _TC + "/tasks", body=_transcoder())
    assert (status, set(answer)) == (405, {"message"})
    _, token = _send(http, tc_sandbox, "POST", _TC + "/builderTokens",
                     body={"instanceId": "upd", **_transcoder()})
    _, task = _send(http, tc_sandbox, "POST", _TC + f"/tasks?builderToken={token['tokenName']}",
                    body=_transcoder())
    path = _TC + f"/tasks/{task['taskId']}?builderToken={token['tokenName']}"
    for query in ("", "&sequenceId=1", "&sequenceId=1&updateMask=services"):
        status, answer = _send(http, tc_sandbox, "PATCH", path + query, body=_transcoder())
        assert status == 400 and set(answer) == {"message"}, query
    status, answer = _send(http, tc_sandbox, "PATCH",
                           path + "&sequenceId=1&updateMask=services.cloudTranscoder.config",
                           body=_transcoder())
    assert status == 200 and answer is None  # an empty 2xx, as documented


def test_sandbox_token_check_agrees_with_the_published_vector() -> None:
    # The sandbox's own AccessToken2 reader, anchored on the spec's worked example (not on
    # the client's builder): decode, signature and the RTC join check.
    from voxhub_agora.sandbox_auth import SandboxAuth, decode_token

    data = json.loads((Path(__file__).parent / "data" / "agora-token-example.json").read_text())
    fx = data["fixture"]
    token = data["expected_token"]
    decoded = decode_token(token)
    assert (decoded.app_id, decoded.issue_ts, decoded.expire, decoded.salt) == (
        fx["app_id"], fx["issue_ts"], fx["expire"], fx["salt"])
    auth = SandboxAuth(fx["app_id"], fx["app_certificate"], "id", "secret")
    within = fx["issue_ts"] + 10
    assert auth.rtc_join_ok(token, fx["channel_name"], str(fx["uid"]), now=within)
    assert not auth.rtc_join_ok(token, fx["channel_name"], "1", now=within)  # another uid
    assert not auth.rtc_join_ok(token, fx["channel_name"], str(fx["uid"]),
                                now=fx["issue_ts"] + 601)  # expired
    assert auth.refusal(f'agora token="{token}"', now=within) is None
    assert auth.refusal(f"agora token={token}", now=fx["issue_ts"] + 601) == "Token is expired"
    other = SandboxAuth(fx["app_id"], "0" * 32, "id", "secret")
    assert other.refusal(f'agora token="{token}"', now=within) == "Invalid token"
