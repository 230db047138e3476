"""Recorded WebSocket sessions of a real ComfyUI 0.3.64, and live frames, in
one comparable form: each frame's type and data with what differs between runs
replaced by placeholders (prompt_id, sid, timestamps, output file names, the
PNG bytes), so two sessions compare frame by frame."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
PLACEHOLDERS = {
    "prompt_id": "<prompt_id>",
    "sid": "<sid>",
    "timestamp": "<timestamp>",
    "filename": "<filename>",
    "subfolder": "<subfolder>",
}


def transcript(name: str) -> Any:
    return json.loads((FIXTURES / "transcripts" / name).read_text())


def transcript_lines(name: str) -> list[dict[str, Any]]:
    lines = (FIXTURES / "transcripts" / name).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def normalise(value: Any) -> Any:
    """Ids, times and output names replaced, recursively."""
    if isinstance(value, dict):
        return {
            key: PLACEHOLDERS[key] if key in PLACEHOLDERS else normalise(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [normalise(item) for item in value]
    return value


def binary(kind: int, detail: Any) -> tuple[str, int, Any]:
    return ("binary", kind, detail)


def recorded_frame(line: dict[str, Any]) -> Any:
    """One line of a ws_*.jsonl recording, normalised."""
    if line.get("binary"):
        kind = line["event_type"]
        if kind == 4:
            return binary(kind, normalise(line["metadata"]))
        header = bytes.fromhex(line["first_32_bytes_hex"])
        return binary(kind, struct.unpack(">I", header[4:8])[0])
    return (line["type"], normalise(line["data"]))


def live_frame(frame: dict[str, Any] | bytes) -> Any:
    """A frame a test socket received (parsed JSON, or the raw bytes), normalised."""
    if isinstance(frame, dict):
        return (frame["type"], normalise(frame["data"]))
    (kind,) = struct.unpack(">I", frame[:4])
    if kind == 4:
        (length,) = struct.unpack(">I", frame[4:8])
        return binary(kind, normalise(json.loads(frame[8 : 8 + length])))
    return binary(kind, struct.unpack(">I", frame[4:8])[0])


def recorded_session(name: str) -> list[Any]:
    return [recorded_frame(line) for line in transcript_lines(name) if "note" not in line]


def token(frame: Any) -> str:
    """The one-word form of behaviour_ws_frame_order.json (for readable failures)."""
    return f"BIN{frame[1]}" if frame[0] == "binary" else str(frame[0])


def order_token(frame: Any) -> str:
    """One frame as behaviour_ws_frame_order.json writes it: status(n),
    progress_state(node:state,...) of non-pending nodes, progress(i/n), BIN1,
    BIN4, executing(node) and executed(node)."""
    kind, data = frame[0], frame[1]
    if kind == "binary":
        return f"BIN{data}"
    if kind == "status":
        return f"status({data['status']['exec_info']['queue_remaining']})"
    if kind == "progress_state":
        states = [f"{node}:{v['state']}" for node, v in data["nodes"].items()]
        return f"progress_state({','.join(states)})"
    if kind == "progress":
        return f"progress({data['value']}/{data['max']})"
    if kind in ("executing", "executed"):
        return f"{kind}({data['node']})"
    return str(kind)
