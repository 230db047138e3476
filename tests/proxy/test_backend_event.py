"""What text a client is sent for a backend's JSON event: the backend's own
while the relay keeps its data, encoded anew once it changes it."""

from __future__ import annotations

import json

from balancer.proxy.backend_event import BackendEvent


def parsed(raw: str) -> BackendEvent:
    message = json.loads(raw)
    return BackendEvent.of(message, message["type"], message["data"], raw)


def test_an_unchanged_event_is_sent_as_the_backend_wrote_it() -> None:
    raw = '{"type":"executing","data":{"node":"3","prompt_id":"p"}}'  # not json.dumps' spacing
    assert parsed(raw).frame() == raw


def test_changed_data_is_encoded_anew() -> None:
    ev = parsed('{"type":"executed","data":{"output":{"images":[]},"prompt_id":"p"}}')
    sent = json.loads(ev.with_data({"output": {"images": [1]}, "prompt_id": "p"}).frame())
    assert sent == {"type": "executed", "data": {"output": {"images": [1]}, "prompt_id": "p"}}


def test_a_message_with_more_than_type_and_data_is_encoded_anew() -> None:
    ev = parsed('{"type":"progress","data":{"value":1},"extra":true}')
    assert json.loads(ev.frame()) == {"type": "progress", "data": {"value": 1}}
