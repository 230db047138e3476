"""A job record shown in the `/api/jobs` shapes of newer ComfyUI servers,
built from the balancer's own records (every backend version gets them;
ComfyUI 0.3.64 has no `/api/jobs` at all)."""

from __future__ import annotations

from typing import Any

from balancer.jobs.numbers import display_number
from balancer.proxy.merge import strip_secrets
from balancer.store import StoredJob

# The balancer's states as the jobs API names them.
API_STATUS = {
    "waiting": "pending",
    "dispatching": "pending",
    "queued": "pending",
    "recalling": "pending",
    "running": "in_progress",
    "succeeded": "completed",
    "failed": "failed",
    "interrupted": "cancelled",
    "cancelled": "cancelled",
}
PREVIEWABLE = ("images", "video", "audio", "animated")


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


def _files(entry: Any) -> list[dict[str, Any]]:
    outputs = entry.get("outputs") if isinstance(entry, dict) else None
    found: list[dict[str, Any]] = []
    for output in (outputs or {}).values() if isinstance(outputs, dict) else ():
        for kind, items in output.items() if isinstance(output, dict) else ():
            if kind in PREVIEWABLE and isinstance(items, list):
                found += [i for i in items if isinstance(i, dict) and "filename" in i]
    return found


def _error(entry: Any) -> Any:
    status = entry.get("status") if isinstance(entry, dict) else None
    messages = status.get("messages") if isinstance(status, dict) else None
    for message in messages if isinstance(messages, list) else ():
        if isinstance(message, list) and len(message) == 2 and message[0] == "execution_error":
            return message[1]
    return None


def _extra(job: StoredJob) -> dict[str, Any]:
    extra = strip_secrets(job.request.get("extra_data") or {})
    extra = dict(extra) if isinstance(extra, dict) else {}
    if job.client_id is not None:
        extra["client_id"] = job.client_id
    return extra


def job_summary(job: StoredJob, entry: Any) -> dict[str, Any]:
    """One item of `GET /api/jobs` (null keys removed, as ComfyUI does)."""
    files = _files(entry)
    pnginfo = _extra(job).get("extra_pnginfo")
    workflow = pnginfo.get("workflow") if isinstance(pnginfo, dict) else None
    item = {
        "id": job.prompt_id,
        "status": API_STATUS[job.state],
        "priority": display_number(job.number),
        "create_time": _ms(job.submitted_at),
        "execution_start_time": _ms(job.started_at),
        "execution_end_time": _ms(job.ended_at) if job.finished else None,
        "execution_error": _error(entry),
        "outputs_count": len(files) if entry is not None else None,
        "previewable_outputs_count": len(files) if entry is not None else None,
        "preview_output": files[0] if files else None,
        "workflow_id": workflow.get("id") if isinstance(workflow, dict) else None,
    }
    return {k: v for k, v in item.items() if v is not None}


def job_detail(job: StoredJob, entry: Any) -> dict[str, Any]:
    """`GET /api/jobs/{id}`: the summary with outputs, status and workflow."""
    detail = job_summary(job, entry)
    if isinstance(entry, dict):
        detail["outputs"] = entry.get("outputs", {})
        detail["execution_status"] = entry.get("status")
    detail["workflow"] = {"prompt": job.request.get("prompt"), "extra_data": _extra(job)}
    return detail
