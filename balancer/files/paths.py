"""ComfyUI's file naming rules, checked without touching a disk.

A file is `(type, subfolder, name)`. Subfolders are normalised like ComfyUI's
`os.path.normpath` (so `lb/` and `lb` are one folder) and must stay inside the
type's directory; names are single path components. Annotated names
(`x.png [input]`) carry their type.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

FILE_TYPES = ("input", "output", "temp")
_ANNOTATION = re.compile(r"^(.*) \[(input|output|temp)\]$")


class BadPath(ValueError):
    """A name or subfolder that ComfyUI would refuse (400), or that escapes (403)."""

    def __init__(self, message: str, *, escape: bool = False) -> None:
        super().__init__(message)
        self.escape = escape


@dataclass(frozen=True, order=True)
class FileKey:
    """One file as the store indexes it."""

    type: str
    subfolder: str
    name: str

    @property
    def relative(self) -> str:
        """`sub/name`, the way LoadImage names a file in a subfolder."""
        return f"{self.subfolder}/{self.name}" if self.subfolder else self.name


def split_annotation(value: str, default_type: str) -> tuple[str, str]:
    """'x.png [input]' -> ('x.png', 'input'); otherwise (value, default_type)."""
    match = _ANNOTATION.match(value)
    return (match.group(1), match.group(2)) if match else (value, default_type)


def check_name(name: str) -> str:
    """A file name: one non-empty path component, never `..` or absolute."""
    if not name or "\x00" in name:
        raise BadPath("empty or invalid filename")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise BadPath("absolute paths are not allowed")
    parts = re.split(r"[/\\]", name)
    if ".." in parts:
        raise BadPath("'..' is not allowed in a filename")
    if len(parts) > 1:
        raise BadPath("a filename must not contain a path")
    return name


def normalize_subfolder(subfolder: str) -> str:
    """ComfyUI's normpath of a subfolder, '' for the type's own directory.
    Absolute or escaping subfolders raise BadPath(escape=True)."""
    if "\x00" in subfolder:
        raise BadPath("invalid subfolder", escape=True)
    if not subfolder:
        return ""
    if subfolder.startswith(("/", "\\")):
        raise BadPath("absolute subfolders are not allowed", escape=True)
    normal = posixpath.normpath(subfolder.replace("\\", "/"))
    if normal == ".":
        return ""
    if normal == ".." or normal.startswith("../"):
        raise BadPath("subfolder escapes the upload directory", escape=True)
    return normal


def check_type(kind: str) -> str:
    if kind not in FILE_TYPES:
        raise BadPath(f"type must be one of {', '.join(FILE_TYPES)}")
    return kind


def file_key(kind: str, subfolder: str, name: str) -> FileKey:
    """Validate all three parts at once."""
    return FileKey(check_type(kind), normalize_subfolder(subfolder), check_name(name))


def split_relative(path: str) -> tuple[str, str]:
    """'sub/dir/x.png' -> ('sub/dir', 'x.png'); 'x.png' -> ('', 'x.png')."""
    head, _, tail = path.rpartition("/")
    return head, tail


def numbered(name: str, counter: int) -> str:
    """ComfyUI's collision name: `stem (n).ext`."""
    stem, ext = posixpath.splitext(name)
    return f"{stem} ({counter}){ext}"
