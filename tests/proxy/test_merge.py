from typing import Any

from balancer.proxy import merge


def entry(start_ms: int) -> dict[str, Any]:
    return {
        "outputs": {},
        "status": {"messages": [["execution_start", {"prompt_id": "x", "timestamp": start_ms}]]},
    }


def test_queue_merge_strips_comfy_org_tokens() -> None:
    item = [
        0,
        "p1",
        {},
        {"client_id": "c", "auth_token_comfy_org": "s", "api_key_comfy_org": "k"},
        ["3"],
    ]
    merged = merge.merge_queues(
        [
            {"queue_running": [item], "queue_pending": []},
            {"queue_running": [], "queue_pending": [[1, "p2", {}, {}, []]]},
        ]
    )
    assert merged["queue_running"] == [[0, "p1", {}, {"client_id": "c"}, ["3"]]]
    assert [i[1] for i in merged["queue_pending"]] == ["p2"]


def test_history_merge_orders_by_start_time_across_backends() -> None:
    items = merge.merge_histories(
        [("a", {"p1": entry(10), "p3": entry(30)}), ("b", {"p2": entry(20)})]
    )
    assert [pid for pid, _ in items] == ["p1", "p2", "p3"]


def test_paging_follows_comfyui_semantics() -> None:
    items = list(range(10))
    assert merge.page(items, None, None) == items
    assert merge.page(items, 3, None) == [7, 8, 9]
    assert merge.page(items, 3, 2) == [2, 3, 4]
    assert merge.page(items, None, 8) == [8, 9]


def test_upstream_query_fetches_enough_of_each_backend() -> None:
    assert merge.upstream_history_query(None, None) == ""
    assert merge.upstream_history_query(5, None) == "?max_items=5"
    assert merge.upstream_history_query(5, 10) == "?offset=0&max_items=15"


def test_system_stats_hides_argv_and_labels_devices() -> None:
    stats = {
        "system": {"argv": ["main.py", "--port", "8189"], "os": "posix"},
        "devices": [{"name": "cuda:0"}],
    }
    merged = merge.merge_system_stats([("gpu0", stats), ("gpu1", stats)])
    assert merged["system"]["argv"] == []
    assert [(d["backend"], d["name"]) for d in merged["devices"]] == [
        ("gpu0", "gpu0: cuda:0"),
        ("gpu1", "gpu1: cuda:0"),
    ]
