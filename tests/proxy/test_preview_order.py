"""The plain-client hold of converted previews: released in ComfyUI's order,
and never kept past its prompt's next event or its channel's end."""

from __future__ import annotations

from balancer.proxy.preview_order import PlainPreviewOrder


def test_a_held_preview_goes_after_its_progress_and_before_anything_else() -> None:
    order, sent = PlainPreviewOrder(), []
    order.hold("gpu0", "p1", lambda: sent.append("BIN1 p1"))
    order.hold("gpu0", "p2", lambda: sent.append("BIN1 p2"))
    after = order.before("p1", "progress")
    sent.append("progress p1")
    after()
    after = order.before("p2", "execution_success")
    sent.append("execution_success p2")
    after()
    assert sent == ["progress p1", "BIN1 p1", "BIN1 p2", "execution_success p2"]
    assert len(order) == 0


def test_events_of_other_prompts_do_not_release_it() -> None:
    order, sent = PlainPreviewOrder(), []
    order.hold("gpu0", "p1", lambda: sent.append("BIN1 p1"))
    order.before("p2", "progress")()
    order.before(None, "status")()
    assert sent == [] and len(order) == 1


def test_a_closed_channel_releases_only_its_own_previews() -> None:
    order, sent = PlainPreviewOrder(), []
    order.hold("gpu0", "p1", lambda: sent.append("p1"))
    order.hold("gpu1", "p2", lambda: sent.append("p2"))
    order.release_backend("gpu0")
    assert sent == ["p1"] and len(order) == 1
