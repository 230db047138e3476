"""The instance's input/, output/ and temp/ directories and ComfyUI's path rules over them."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path

FOLDER_TYPES = ("input", "output", "temp")
_ANNOTATION = re.compile(r"^(.*) \[(input|output|temp)\]$")


class PathEscapeError(ValueError):
    """A subfolder or prefix that would leave its base directory."""


@dataclass(frozen=True)
class Directories:
    base: Path

    @classmethod
    def create(cls, base_dir: Path | None) -> Directories:
        base = Path(base_dir) if base_dir is not None else Path(tempfile.mkdtemp(prefix="emu-"))
        dirs = cls(base.resolve())
        for kind in FOLDER_TYPES:
            dirs.folder(kind).mkdir(parents=True, exist_ok=True)
        return dirs

    def folder(self, kind: str) -> Path:
        if kind not in FOLDER_TYPES:
            raise KeyError(kind)
        return self.base / kind

    def wipe_temp(self) -> None:
        shutil.rmtree(self.folder("temp"), ignore_errors=True)
        self.folder("temp").mkdir(parents=True, exist_ok=True)


def split_annotation(name: str, default_type: str) -> tuple[str, str]:
    """'x.png [input]' -> ('x.png', 'input'); otherwise (name, default_type)."""
    match = _ANNOTATION.match(name)
    if match is None:
        return name, default_type
    return match.group(1), match.group(2)


def inside(base: Path, candidate: str) -> bool:
    base_s = os.path.abspath(base)
    return os.path.commonpath((base_s, os.path.abspath(candidate))) == base_s


def join_subfolder(base: Path, subfolder: str) -> Path:
    """base/normpath(subfolder), refusing anything that escapes base."""
    joined = os.path.join(base, os.path.normpath(subfolder)) if subfolder else str(base)
    if not inside(base, joined):
        raise PathEscapeError(subfolder)
    return Path(os.path.abspath(joined))


def annotated_input_path(dirs: Directories, name: str) -> Path:
    """Where LoadImage finds 'name' (may carry ' [type]' and subfolder parts)."""
    plain, kind = split_annotation(name, "input")
    return Path(os.path.abspath(os.path.join(dirs.folder(kind), plain)))


def annotated_input_exists(dirs: Directories, name: str) -> bool:
    path = annotated_input_path(dirs, name)
    return inside(dirs.base, str(path)) and path.is_file()


def next_save_path(folder: Path, prefix: str) -> tuple[Path, str, str, int]:
    """ComfyUI's output naming: (dir, subfolder, file stem, first counter) for prefix.

    The counter is 1 + the highest `<stem>_NNNNN` already in that directory.
    """
    normalized = os.path.normpath(prefix)
    subfolder = os.path.dirname(normalized)
    stem = os.path.basename(normalized)
    target = os.path.join(folder, subfolder)
    if not inside(folder, target):
        raise PathEscapeError("Saving image outside the output folder is not allowed.")
    directory = Path(os.path.abspath(target))
    directory.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(re.escape(stem) + r"_(\d+)_")
    highest = 0
    for entry in os.listdir(directory):
        match = pattern.match(entry)
        if match is not None:
            highest = max(highest, int(match.group(1)))
    return directory, subfolder, stem, highest + 1


def temp_prefix() -> str:
    """PreviewImage's prefix: ComfyUI_temp_ plus five random lowercase letters."""
    letters = "".join(secrets.choice(string.ascii_lowercase) for _ in range(5))
    return f"ComfyUI_temp_{letters}"
