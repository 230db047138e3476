"""The web UI's routes: `/` and the static web root from the frontend package,
`/extensions`, `/i18n`, `/templates/*`, `/workflow_templates`,
`/experiment/models*`, `/view_metadata/*` and the `/internal/*` sub-app
(which has no `/api` alias), answered as ComfyUI 0.3.64 answers them with no
custom nodes. `/templates/*` are the files of the workflow templates package,
as ComfyUI serves them (a static route, no `/api` alias); without the package
`/templates/index.json` is `[]`."""

from __future__ import annotations

import datetime
from pathlib import Path

from aiohttp import web

from .catalog import MODEL_FOLDERS
from .emulator import Emulator
from .frontend import INSTALL_HINT, cache_control, core_extensions, templates_root, web_root

NO_CACHE = {"Cache-Control": "no-cache", "Pragma": "no-cache", "Expires": "0"}


class UiRoutes:
    def __init__(
        self, emulator: Emulator, root: Path | None = None, templates: Path | None = None
    ) -> None:
        self.emu = emulator
        self.root = root if root is not None else web_root()
        self.templates_dir = templates if templates is not None else templates_root()
        self.models_dir = emulator.dirs.base / "models"

    def add_to(self, routes: web.RouteTableDef) -> None:
        """Routes that ComfyUI also serves under /api."""
        routes.get("/extensions")(self.extensions)
        routes.get("/i18n")(self.empty_dict)
        routes.get("/workflow_templates")(self.empty_dict)
        routes.get("/experiment/models")(self.experiment_models)
        routes.get("/experiment/models/{folder}")(self.experiment_models_folder)
        routes.get("/view_metadata/{folder}")(self.not_found)

    def add_unaliased(self, app: web.Application) -> None:
        """/internal/*, /templates/* and the web root; register last (catch-all)."""
        router = app.router
        router.add_get("/internal/logs", self.logs)
        router.add_get("/internal/logs/raw", self.logs_raw)
        router.add_patch("/internal/logs/subscribe", self.logs_subscribe)
        router.add_get("/internal/folder_paths", self.folder_paths)
        router.add_get("/internal/files/{directory_type}", self.internal_files)
        router.add_get("/templates/{path:.*}", self.templates)
        router.add_get("/", self.index)
        router.add_get("/{path:.*}", self.static)

    # -- web root -------------------------------------------------------------
    async def index(self, request: web.Request) -> web.StreamResponse:
        if self.root is None:
            text = f"<html><body>ComfyUI web UI not installed: {INSTALL_HINT}</body></html>"
            return web.Response(text=text, content_type="text/html", headers=NO_CACHE)
        return web.FileResponse(self.root / "index.html", headers=NO_CACHE)

    async def static(self, request: web.Request) -> web.StreamResponse:
        return self._serve(request, self._file(self.root, request.match_info["path"]))

    def _serve(self, request: web.Request, file: Path | None) -> web.StreamResponse:
        """A file (or 404) with ComfyUI's cache_control headers for its path."""
        response: web.StreamResponse
        if file is None:
            response = web.Response(status=404, text="404: Not Found")
        else:
            response = web.FileResponse(file)
        header = cache_control(request.path, 200 if file is not None else 404)
        if header is not None:
            response.headers["Cache-Control"] = header
        return response

    @staticmethod
    def _file(base: Path | None, path: str) -> Path | None:
        """`path` under `base`, if it is a file that does not escape it."""
        if base is None or not path:
            return None
        root = base.resolve()
        try:
            file = (root / path).resolve()
            file.relative_to(root)
        except (ValueError, OSError):
            return None
        return file if file.is_file() else None

    async def templates(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        if self.templates_dir is not None:
            return self._serve(request, self._file(self.templates_dir, path))
        if path == "index.json" or (path.startswith("index.") and path.endswith(".json")):
            return web.json_response([], headers={"Cache-Control": "no-cache"})
        return web.Response(status=404, text="404: Not Found")

    # -- catalogue ------------------------------------------------------------
    async def extensions(self, request: web.Request) -> web.Response:
        return web.json_response(core_extensions(self.root))

    async def empty_dict(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def not_found(self, request: web.Request) -> web.Response:
        return web.Response(status=404)

    def _folders(self) -> dict[str, list[str]]:
        return {name: [str(self.models_dir / name)] for name in MODEL_FOLDERS}

    async def experiment_models(self, request: web.Request) -> web.Response:
        skip = ("configs", "custom_nodes")
        body = [
            {"name": name, "folders": paths}
            for name, paths in self._folders().items()
            if name not in skip
        ]
        return web.json_response(body)

    async def experiment_models_folder(self, request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if folder not in MODEL_FOLDERS:
            return web.Response(status=404)
        names = self.emu.catalog.models_in(folder)
        when = 1_700_000_000.0
        entries = [
            {"name": n, "pathIndex": 0, "modified": when, "created": when, "size": 2 * 1024**3}
            for n in names
        ]
        return web.json_response(entries)

    # -- /internal ------------------------------------------------------------
    def _log_entries(self) -> list[dict[str, str]]:
        now = datetime.datetime.now(datetime.UTC).isoformat()
        return [{"t": now, "m": f"ComfyUI emulator {self.emu.options.name} (0.3.64)\n"}]

    async def logs(self, request: web.Request) -> web.Response:
        return web.json_response("".join(f"{e['t']} - {e['m']}" for e in self._log_entries()))

    async def logs_raw(self, request: web.Request) -> web.Response:
        return web.json_response({"entries": self._log_entries(), "size": {"cols": 80, "rows": 24}})

    async def logs_subscribe(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def folder_paths(self, request: web.Request) -> web.Response:
        return web.json_response(self._folders())

    async def internal_files(self, request: web.Request) -> web.Response:
        kind = request.match_info["directory_type"]
        if kind not in ("output", "input", "temp"):
            return web.json_response({"error": "Invalid directory type"}, status=400)
        folder = self.emu.dirs.folder(kind)
        files = sorted(
            (p for p in folder.iterdir() if p.is_file()),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        return web.json_response([p.name for p in files])
