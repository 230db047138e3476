"""prompt_id rules: keep a client's id when it is safe, else mint a uuid4.

Safe means a single path segment: a string of `[A-Za-z0-9._-]`, 1 to 128
characters (canonical UUIDs included), and not `.` or `..` (a URL built
with them normalises to another path: `/history/..` is `/`). Anything else
could break paths, logs or other clients' parsing.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

SAFE_ID = re.compile(r"(?!\.{1,2}$)[A-Za-z0-9._-]{1,128}")
ID_RULE = "prompt_id must be 1-128 characters of A-Z a-z 0-9 . _ -, and not . or .."

IdFactory = Callable[[], str]


def mint_prompt_id() -> str:
    return str(uuid.uuid4())


def is_safe_prompt_id(value: object) -> bool:
    return isinstance(value, str) and SAFE_ID.fullmatch(value) is not None


def workflow_digest(prompt: Any) -> str:
    """A stable digest of the graph, independent of key order."""
    canonical = json.dumps(prompt, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
