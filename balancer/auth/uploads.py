"""Files per tenant. A client key's uploads live under its own subfolder
(`_t_<key name>/...`: the upload answer names it and clients echo it back);
outputs belong to the prompt that wrote them. Another tenant's file looks
like a missing one."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from balancer.auth.access import access_of
from balancer.auth.principal import Principal, principal_of
from balancer.files.naming import BACKEND_FILE_TYPES, PREFIX
from balancer.files.paths import split_annotation
from balancer.proxy.context import ctx

TENANT_PREFIX = "_t_"


def tenant_folder(tenant: str) -> str:
    return f"{TENANT_PREFIX}{tenant}"


def folder_owner(subfolder: str) -> str | None:
    """The tenant whose folder a path is in (its first `_t_` segment)."""
    for part in subfolder.replace("\\", "/").split("/"):
        if part.startswith(TENANT_PREFIX):
            return part[len(TENANT_PREFIX) :]
    return None


def scope_upload_fields(request: web.Request, fields: dict[str, str]) -> None:
    """A client key's upload goes under its own folder."""
    principal = principal_of(request)
    if principal.sees_all or principal.name is None:
        return
    folder = tenant_folder(principal.name)
    sub = fields.get("subfolder", "").replace("\\", "/").strip("/")
    if sub != folder and not sub.startswith(folder + "/"):
        sub = f"{folder}/{sub}" if sub else folder
    fields["subfolder"] = sub


def may_use(request: web.Request, kind: str, subfolder: str, filename: str) -> bool:
    """Whether the caller may view or reference this file."""
    principal = principal_of(request)
    if principal.sees_all:
        return True
    if folder_owner(subfolder) is not None:
        return folder_owner(subfolder) == principal.name
    if kind not in BACKEND_FILE_TYPES:
        return True  # a shared input (uploaded by an admin or before keys)
    return _output_visible(request, principal, kind, subfolder, filename)


def _output_visible(
    request: web.Request, principal: Principal, kind: str, subfolder: str, filename: str
) -> bool:
    if not subfolder.startswith(PREFIX):
        backends = list(ctx(request).registry)
        if len(backends) != 1:
            return False
        name = backends[0].name
        subfolder = f"{PREFIX}{name}/{subfolder}" if subfolder else f"{PREFIX}{name}"
    known, owner = access_of(request).owners.file_owner((kind, subfolder, filename))
    return known and principal.may_see(owner)


def foreign_file(request: web.Request, prompt: Any) -> str | None:
    """The first string input of `prompt` naming a file the caller may not use."""
    if principal_of(request).sees_all or not isinstance(prompt, dict):
        return None
    for node in prompt.values():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        for value in inputs.values() if isinstance(inputs, dict) else ():
            if isinstance(value, str) and not _may_reference(request, value):
                return value
    return None


def _may_reference(request: web.Request, value: str) -> bool:
    plain, kind = split_annotation(value, "output" if value.startswith(PREFIX) else "input")
    subfolder, _, name = plain.replace("\\", "/").rpartition("/")
    if folder_owner(plain) is None and not plain.startswith(PREFIX):
        return True
    return may_use(request, str(kind), subfolder, name)


def visible_inputs(request: web.Request, names: list[str]) -> list[str]:
    """The stored input images a caller's `/object_info` lists."""
    principal = principal_of(request)
    if principal.sees_all:
        return names
    return [n for n in names if folder_owner(n) in (None, principal.name)]
