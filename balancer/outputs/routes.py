"""DELETE /api/jobs/{id}/outputs: the job's objects deleted now (its owner or
an admin key). Another tenant's job answers like an unknown one."""

from __future__ import annotations

from aiohttp import web

from balancer.auth.access import may_see
from balancer.errors import error_response
from balancer.logs import get_logger
from balancer.outputs.bucket import BucketError
from balancer.outputs.setup import OUTPUTS

log = get_logger("balancer.outputs")


async def delete_outputs(request: web.Request) -> web.StreamResponse:
    job_id = request.match_info["job_id"]
    sink = request.app.get(OUTPUTS)
    if sink is None:
        return error_response(404, "outputs_not_stored", "outputs.sink is off")
    if not await may_see(request, job_id) or await sink.store.get_history(job_id) is None:
        return error_response(404, "job_not_found", "No finished job with this id", job_id)
    try:
        deleted = await sink.delete(job_id)
    except BucketError as exc:
        log.warning("outputs_delete_failed", prompt_id=job_id, error=str(exc))
        return error_response(502, "bucket_failed", "Deleting from the bucket failed", str(exc))
    return web.json_response({"prompt_id": job_id, "deleted": deleted})
