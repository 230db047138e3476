"""Where the real ComfyUI web frontend lives: the `comfyui-frontend-package`
wheel (the `ui` extra), whose `static/` directory is the built web root, and
the `comfyui-workflow-templates` wheel (also the `ui` extra), whose
`templates/` directory ComfyUI serves as static files at `/templates/`."""

from __future__ import annotations

import importlib
import importlib.metadata
from pathlib import Path

INSTALL_HINT = "pip install 'comfyui-balancer[ui]'"


def web_root() -> Path | None:
    """The package's static directory, or None when the package is missing."""
    try:
        package = importlib.import_module("comfyui_frontend_package")
    except ImportError:
        return None
    if package.__file__ is None:
        return None
    root = Path(package.__file__).parent / "static"
    return root if (root / "index.html").is_file() else None


def templates_root() -> Path | None:
    """The `comfyui-workflow-templates` package's templates directory (its
    index.json, the workflows and their thumbnails), or None without it."""
    try:
        package = importlib.import_module("comfyui_workflow_templates")
    except ImportError:
        return None
    if package.__file__ is None:
        return None
    root = Path(package.__file__).parent / "templates"
    return root if (root / "index.json").is_file() else None


TEMPLATES_PIN = "0.1.94"  # what ComfyUI 0.3.64's requirements.txt pins


def templates_version() -> str | None:
    """The installed templates package's version (ComfyUI reports it in /system_stats)."""
    try:
        return importlib.metadata.version("comfyui-workflow-templates")
    except importlib.metadata.PackageNotFoundError:
        return None


def core_extensions(root: Path | None) -> list[str]:
    """What ComfyUI's GET /extensions lists: every .js under the web root's
    extensions/, as a URL path (the frontend's shims for legacy imports)."""
    if root is None:
        return []
    return sorted("/" + p.relative_to(root).as_posix() for p in root.glob("extensions/**/*.js"))


_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def cache_control(path: str, status: int) -> str | None:
    """ComfyUI's cache_control middleware, by the request's URL path."""
    last = path.rsplit("/", 1)[-1]
    if path.endswith((".js", ".css")) or (last.startswith("index") and last.endswith(".json")):
        return "no-cache"
    if path.lower().endswith(_IMAGE_SUFFIXES):
        if status in (200, 201, 202, 203, 204, 205, 206, 301, 308):
            return "public, max-age=86400"
        if status == 404:
            return "public, max-age=3600"
        if status in (302, 303, 307):
            return "no-cache"
    return None
