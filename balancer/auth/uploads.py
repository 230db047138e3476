"""Files per tenant. A client key's uploads live under its own subfolder
(`_t_<key name>/...`: the upload answer names it and clients echo it back);
outputs belong to the prompt that wrote them. Another tenant's file looks
like a missing one.

Every check here takes a `Location` (`balancer.files.locate`): the path is
resolved and normalised first, and the store and the backends are then
accessed at that same location.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from balancer.auth.access import access_of
from balancer.auth.principal import Principal, principal_of
from balancer.files.locate import Location, has_dot_segments, locate_value
from balancer.files.naming import PREFIX
from balancer.files.paths import FileKey, split_relative
from balancer.proxy.context import ctx

TENANT_PREFIX = "_t_"


def tenant_folder(tenant: str) -> str:
    return f"{TENANT_PREFIX}{tenant}"


def folder_owner(relative: str) -> str | None:
    """The tenant whose folder a normalised `sub/.../name` is in: its first
    segment `_t_<tenant>`."""
    top = relative.partition("/")[0]
    return top[len(TENANT_PREFIX) :] if top.startswith(TENANT_PREFIX) else None


def scoped_key(principal: Principal, key: FileKey) -> FileKey:
    """Where a caller's upload goes: a client key's under its own folder
    (`key` is already normalised, so `..` cannot climb out of it)."""
    if principal.sees_all or principal.name is None:
        return key
    folder = tenant_folder(principal.name)
    if folder_owner(key.subfolder) == principal.name:
        return key
    sub = f"{folder}/{key.subfolder}" if key.subfolder else folder
    return FileKey(key.type, sub, key.name)


def may_use(request: web.Request, location: Location) -> bool:
    """Whether the caller may view or reference the file at `location`."""
    principal = principal_of(request)
    if principal.sees_all:
        return True
    owner = folder_owner(location.key.subfolder)
    if location.key.type == "input":
        if location.backend is not None or location.top.startswith(PREFIX):
            return False  # a backend's own input folder, or outputs placed there
        return owner is None or owner == principal.name  # else a shared input
    if owner is not None and location.backend is None:
        return owner == principal.name  # an output/temp file uploaded to its folder
    return _output_visible(request, principal, location)


def _output_visible(request: web.Request, principal: Principal, location: Location) -> bool:
    """An output of one of the caller's own jobs. Without an `@backend`
    prefix the holder is certain only when there is one backend."""
    if location.backend is None:
        backends = list(ctx(request).registry)
        if len(backends) != 1:
            return False
        location = Location(location.key, backends[0].name)
    ref = (location.key.type, location.client_subfolder, location.key.name)
    known, owner = access_of(request).owners.file_owner(ref)
    return known and principal.may_see(owner)


@dataclass(frozen=True)
class Foreign:
    """A prompt input naming a file the caller may not use."""

    node: str
    input: str
    value: str
    class_type: str


def foreign_file(request: web.Request, prompt: Any) -> Foreign | None:
    """The first string input of `prompt` naming a file the caller may not use."""
    if principal_of(request).sees_all or not isinstance(prompt, dict):
        return None
    for node_id, node in prompt.items():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        for name, value in inputs.items() if isinstance(inputs, dict) else ():
            if isinstance(value, str) and not _may_reference(request, value):
                return Foreign(str(node_id), str(name), value, str(node.get("class_type")))
    return None


def _may_reference(request: web.Request, value: str) -> bool:
    if has_dot_segments(value):
        return False  # a backend would resolve it outside the checked folder
    found = locate_value(value)
    return found is None or may_use(request, found.location)


def visible_inputs(request: web.Request, names: list[str]) -> list[str]:
    """The stored input images a caller's `/object_info` lists."""
    principal = principal_of(request)
    if principal.sees_all:
        return names
    return [n for n in names if folder_owner(split_relative(n)[0]) in (None, principal.name)]
