"""Resolve, then authorise: one function turns what a client names
(type, subfolder, name; or a prompt value such as `sub/x.png [input]` or
`@gpu0/x.png [output]`) into one canonical location, and refuses anything
that escapes. Ownership checks and store access both use its result, so a
check can never read a different path than the I/O that follows it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from balancer.files.naming import PREFIX, from_client_subfolder, to_client_subfolder
from balancer.files.paths import BadPath, FileKey, file_key, split_annotation, split_relative

_BACKEND = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Longer strings are prompts or JSON, never file names.
MAX_REF_LENGTH = 1024


@dataclass(frozen=True)
class Location:
    """A file as its holder sees it (`key`, normalised) and who holds it:
    the backend of an `@backend` prefix, or None (the upload store, or the
    lone backend when there is one)."""

    key: FileKey
    backend: str | None = None

    @property
    def client_subfolder(self) -> str:
        """The subfolder as clients see it (with the `@backend` prefix)."""
        sub = self.key.subfolder
        return sub if self.backend is None else to_client_subfolder(self.backend, sub)

    @property
    def top(self) -> str:
        """The first segment of the normalised subfolder ('' for none)."""
        return self.key.subfolder.partition("/")[0]


def locate(kind: str, subfolder: str, name: str) -> Location:
    """The canonical location of a file; BadPath for anything ComfyUI would
    refuse or that escapes its directory (`escape=True`)."""
    split = from_client_subfolder(subfolder.replace("\\", "/"))
    if split.backend is not None and not _BACKEND.fullmatch(split.backend):
        raise BadPath(f"{PREFIX}{split.backend} does not name a backend")
    return Location(file_key(kind, split.subfolder, name), split.backend)


@dataclass(frozen=True)
class ValueRef:
    location: Location
    annotated: bool


def locate_value(value: str, default_type: str = "input") -> ValueRef | None:
    """The location a prompt's string input names, None when it is no file
    name (too long, empty, or a path ComfyUI would refuse)."""
    if not value or len(value) > MAX_REF_LENGTH:
        return None
    path, kind = split_annotation(value, default_type)
    subfolder, name = split_relative(path.replace("\\", "/"))
    try:
        return ValueRef(locate(kind, subfolder, name), path != value)
    except BadPath:
        return None


def has_dot_segments(value: str) -> bool:
    """Whether a value walks up (`..`) or starts at a root: a backend would
    resolve it outside the folder the balancer checked."""
    if len(value) > MAX_REF_LENGTH:
        return False
    path, _ = split_annotation(value, "input")
    parts = path.replace("\\", "/").split("/")
    return ".." in parts or path.startswith(("/", "\\")) or bool(re.match(r"^[A-Za-z]:", path))
