"""User data (/users, /settings, /userdata, /v2/userdata) with ComfyUI's
semantics: the balancer answers these itself, so settings and saved
workflows do not depend on which backend is up. One directory per user on
disk (`UserFiles`, one balancer), or Redis shared by every replica
(`RedisUserData`)."""

from balancer.userdata.routes import UserDataRoutes
from balancer.userdata.store import UserFiles

__all__ = ["UserDataRoutes", "UserFiles"]
