"""The events a run's end read from its backend's history tells a client
whose channel events were lost (Jobs.ended with `replay`): what of the run
it was not told, as far as the history and the record of told frames say.

- its `execution_start`, if it was never told (a start is recorded before
  it is told: one not recorded was not told, and nor was anything after it);
- one `executed` per output node of the entry whose `executed` the client
  was not told, in the entry's `outputs` order (the history keeps no other),
  shaped as ComfyUI's (`node`, `display_node` from the entry's `meta`,
  `output` as `/history` shows it, `prompt_id`). Which were told is read
  from the client's kept frames (`ToldOutputs`, the journal with several
  replicas); when that cannot be known (no such record, or it no longer
  holds the run's start), none is told: never one twice;
- its end, then `executing` null.
"""

from __future__ import annotations

from typing import Any, Protocol

from balancer.jobs.events import ClientEvents
from balancer.jobs.model import end_events
from balancer.store import StoredJob


class ToldOutputs(Protocol):
    async def executed(self, sid: str, prompt_id: str) -> frozenset[str] | None:
        """The nodes of the job's latest run whose `executed` its client
        `sid` was told; None: not known."""


async def replayed_end(
    job: StoredJob, backend: str, entry: Any, start_untold: bool, told: ToldOutputs | None
) -> ClientEvents:
    """What the client of `job` is told of its run on `backend` that ended
    with `entry` (`start_untold`: its start was never told). Only for a run
    on the job's own backend: a late run elsewhere has its outputs there,
    and the client may have been told the other run's."""
    own = backend == job.backend
    prompt_id = job.prompt_id
    outputs: frozenset[str] | None = None
    if own and start_untold:
        outputs = frozenset()  # nothing after the start was told either
    elif own and told is not None and job.client_id is not None:
        outputs = await told.executed(job.client_id, prompt_id)
    start, ends = end_events(entry, prompt_id, own and start_untold)
    return (*start, *([] if outputs is None else executed_events(entry, prompt_id, outputs)), *ends)


def executed_events(entry: Any, prompt_id: str, told: frozenset[str]) -> ClientEvents:
    """An `executed` for each output node of `entry` not in `told`."""
    outputs = entry.get("outputs") if isinstance(entry, dict) else None
    meta = entry.get("meta") if isinstance(entry, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    return tuple(
        ("executed", _executed(node, _display(meta.get(node), node), output, prompt_id))
        for node, output in (outputs.items() if isinstance(outputs, dict) else ())
        if node not in told and isinstance(output, dict)
    )


def _executed(node: str, display: Any, output: Any, prompt_id: str) -> dict[str, Any]:
    return {"node": node, "display_node": display, "output": output, "prompt_id": prompt_id}


def _display(meta: Any, node: str) -> Any:
    """The node ComfyUI names as displayed (a subgraph's), else the node."""
    shown = meta.get("display_node") if isinstance(meta, dict) else None
    return shown if isinstance(shown, str) else node
