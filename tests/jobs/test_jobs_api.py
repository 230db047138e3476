"""The jobs API answered by the balancer (issue 11, defect 2): ComfyUI 0.3.64
has no /api/jobs, so the list, one job and cancel come from its records."""

from __future__ import annotations

from support import PoolFactory, colored


async def test_jobs_api_lists_and_shows_finished_and_waiting_jobs(make_pool: PoolFactory) -> None:
    pool = await make_pool(1)
    done = (await pool.submit(colored(1), client_id="me"))["prompt_id"]
    await pool.settle([done])
    pool.emulators["gpu0"].pause()
    later = [(await pool.submit(colored(i)))["prompt_id"] for i in range(2, 5)]
    one = await (await pool.client.get(f"/api/jobs/{done}")).json()
    assert one["status"] == "completed" and one["outputs"]["3"]["images"][0]["subfolder"] == "@gpu0"
    assert one["workflow"]["extra_data"]["client_id"] == "me"
    assert one["execution_end_time"] >= one["execution_start_time"] >= one["create_time"]
    listed = await (await pool.client.get("/api/jobs?status=pending&sort_order=asc")).json()
    pending = [j["id"] for j in listed["jobs"]]
    assert later[-1] in pending and done not in pending
    assert listed["pagination"]["total"] == len(pending)
    page = await (await pool.client.get("/api/jobs?limit=1&offset=0")).json()
    assert len(page["jobs"]) == 1 and page["pagination"]["has_more"]
    assert (await pool.client.get("/api/jobs?status=nope")).status == 400
    assert (await pool.client.get("/api/jobs/unknown")).status == 404
