"""User data (/users, /settings, /userdata, /v2/userdata) with ComfyUI's semantics,
kept in one directory: the balancer answers these itself, so settings and saved
workflows do not depend on which backend is up; the emulator uses the same code."""

from balancer.userdata.routes import UserDataRoutes
from balancer.userdata.store import UserFiles

__all__ = ["UserDataRoutes", "UserFiles"]
