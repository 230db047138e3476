"""The 400 for a prompt no backend in the pool can run, in ComfyUI's own
validation shape, so clients show it like any validation error: each node,
input and value that no backend offers."""

from __future__ import annotations

from typing import Any

from balancer.catalog.needs import Unmet, Value


def _error(item: Unmet) -> tuple[str, str, dict[str, Any]]:
    """(node_id, class_type, one ComfyUI error) for one unmet need."""
    if isinstance(item, Value):
        return (
            item.node_id,
            item.class_type,
            {
                "type": "value_not_in_list",
                "message": "Value not in list",
                "details": f"{item.input}: '{item.value}' not offered by any backend in the pool",
                "extra_info": {"input_name": item.input, "received_value": item.value},
            },
        )
    node_id, class_type = item
    return (
        node_id,
        class_type,
        {
            "type": "missing_node_type",
            "message": f"Node '{class_type}' not found on any backend in the pool",
            "details": f"Node ID '#{node_id}'",
            "extra_info": {"node_id": node_id, "class_type": class_type},
        },
    )


def unmet_body(items: list[Unmet]) -> dict[str, Any]:
    """`prompt_outputs_failed_validation` with `node_errors` per node."""
    node_errors: dict[str, Any] = {}
    lines = []
    for item in items:
        node_id, class_type, error = _error(item)
        entry = node_errors.setdefault(
            node_id, {"errors": [], "dependent_outputs": [], "class_type": class_type}
        )
        entry["errors"].append(error)
        lines.append(f"{error['message']}: {error['details']}")
    return {
        "error": {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": "\n".join(lines),
            "extra_info": {},
        },
        "node_errors": node_errors,
    }
