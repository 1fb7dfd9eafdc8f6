"""Issue 16: a Tupu callback is identified by its verified payload, not by its bytes."""

from __future__ import annotations

import json
from typing import Any

from tupu_helpers import MakeCtx, Start, setup
from voxhub.callbacks import delivery_digest
from voxhub.plugin import CallbackRequest


def test_envelope_fields_and_whitespace_do_not_make_a_new_delivery(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    sandbox, ctx, provider = setup(tupu_sandbox, receiver, make_context)
    payload = {"code": 0, "requestId": "abc", "status": "end", "nonce": "1", "timestamp": 1}
    envelope = json.loads(sandbox.sign(payload))
    variants = [
        json.dumps(envelope).encode(),
        json.dumps(envelope, indent=3).encode(),  # other whitespace, same signed text
        json.dumps({**envelope, "extra": "field"}).encode(),  # an unsigned envelope field
        json.dumps(dict(reversed(list(envelope.items())))).encode(),
    ]
    digests = set()
    for body in variants:
        event = provider.parse_callback(ctx, CallbackRequest(headers={}, body=body))
        digests.add(delivery_digest(event, body))
    assert len(digests) == 1
    other = sandbox.sign({**payload, "nonce": "2"})
    event = provider.parse_callback(ctx, CallbackRequest(headers={}, body=other))
    assert delivery_digest(event, other) not in digests  # another delivery
