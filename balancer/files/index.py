"""The upload index: (type, subfolder, name) -> sha256, and each blob's size
and last use.

`UploadIndex` is the interface; `JsonIndex` keeps it in a dict and rewrites a
JSON file next to the blobs atomically (temp file + rename) on each change.
The SQLite store implements the same interface later.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from balancer.files.paths import FileKey
from balancer.logs import get_logger

log = get_logger("balancer.files")


@dataclass(frozen=True)
class BlobInfo:
    size: int
    touched: float  # wall-clock seconds of the last store or use


class UploadIndex(Protocol):
    def get(self, key: FileKey) -> str | None: ...

    def put(self, key: FileKey, sha: str) -> None: ...

    def names(self) -> list[FileKey]: ...

    def blob(self, sha: str) -> BlobInfo | None: ...

    def put_blob(self, sha: str, info: BlobInfo) -> None: ...

    def blobs(self) -> dict[str, BlobInfo]: ...

    def remove_blob(self, sha: str) -> list[FileKey]:
        """Forget a blob and every name that points at it; return those names."""
        ...


class JsonIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._files: dict[FileKey, str] = {}
        self._blobs: dict[str, BlobInfo] = {}
        self._load()

    def _load(self) -> None:
        try:
            data: Any = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("upload_index_unreadable", path=str(self.path), error=str(exc))
            return
        for row in data.get("files", []):
            self._files[FileKey(row["type"], row["subfolder"], row["name"])] = row["sha256"]
        for sha, row in data.get("blobs", {}).items():
            self._blobs[sha] = BlobInfo(int(row["size"]), float(row["touched"]))

    def _save(self) -> None:
        files = [
            {"type": k.type, "subfolder": k.subfolder, "name": k.name, "sha256": sha}
            for k, sha in sorted(self._files.items())
        ]
        blobs = {sha: {"size": b.size, "touched": b.touched} for sha, b in self._blobs.items()}
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"files": files, "blobs": blobs}), encoding="utf-8")
        os.replace(tmp, self.path)

    def get(self, key: FileKey) -> str | None:
        return self._files.get(key)

    def put(self, key: FileKey, sha: str) -> None:
        self._files[key] = sha
        self._save()

    def names(self) -> list[FileKey]:
        return list(self._files)

    def blob(self, sha: str) -> BlobInfo | None:
        return self._blobs.get(sha)

    def put_blob(self, sha: str, info: BlobInfo) -> None:
        self._blobs[sha] = info
        self._save()

    def blobs(self) -> dict[str, BlobInfo]:
        return dict(self._blobs)

    def remove_blob(self, sha: str) -> list[FileKey]:
        gone = [k for k, v in self._files.items() if v == sha]
        for key in gone:
            del self._files[key]
        self._blobs.pop(sha, None)
        self._save()
        return gone
