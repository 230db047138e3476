"""`comfyui-balancer demo`: N emulated ComfyUI backends of different speeds on
free loopback ports, and the balancer in front of them. No GPU, no network."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from balancer.app import create_app
from balancer.config.backend_settings import BackendSettings
from balancer.config.routing_settings import RoutingSettings
from balancer.config.server_settings import ListenSettings
from balancer.config.settings import Settings
from balancer.config.storage_settings import StoreSettings
from balancer.emulator import EmulatorOptions, create_emulator_app
from balancer.proxy.context import BALANCER
from balancer.runner import ListenError, Running, bind, serve_on, start, stop_all, wait_for_stop
from balancer.state import Balancer

# Ports tried after the default one when the user did not pass --port.
PORT_TRIES = 20

DEMO_PROMPT = {
    "1": {
        "class_type": "EmptyImage",
        "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 16744192},
    },
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "demo"}},
}


def demo_emulators(count: int, root: Path) -> list[EmulatorOptions]:
    """Backend i runs (1 + i/2) times slower than a CPU ComfyUI, so the pool is uneven."""
    return [
        EmulatorOptions(name=f"gpu{i}", base_dir=root / f"gpu{i}", time_scale=1.0 + i / 2)
        for i in range(count)
    ]


SDXL, SD15 = "sd_xl_base_1.0.safetensors", "v1-5-pruned-emaonly.safetensors"
FLUX = "flux1-dev.safetensors"


def mixed_emulators(root: Path) -> list[EmulatorOptions]:
    """An uneven pool (`demo --mixed`): Flux on one GPU, a custom node pack on
    another, LoRAs on some, a node missing from one; 2 models fit in VRAM
    and a load takes 5 s."""
    own: list[dict[str, Any]] = [
        {"checkpoints": (SDXL, SD15), "models": {"loras": ("add-detail.safetensors",)}},
        {"checkpoints": (SDXL, FLUX), "models": {"diffusion_models": ("wan2.1_t2v.safetensors",)}},
        {
            "checkpoints": (SDXL, SD15),
            "extra_nodes": ("SharpenPlus",),
            "models": {"loras": ("add-detail.safetensors", "anime.safetensors")},
        },
        {"checkpoints": (SD15,), "without_nodes": frozenset({"ImageInvert"})},
    ]
    return [
        EmulatorOptions(
            name=f"gpu{i}",
            base_dir=root / f"gpu{i}",
            model_slots=2,
            checkpoint_load_time=5.0,
            **mine,
        )
        for i, mine in enumerate(own)
    ]


def describe(options: EmulatorOptions) -> str:
    """What one backend of the demo offers beyond the usual."""
    parts = [f"checkpoints {', '.join(options.checkpoints)}"]
    parts += [f"{folder} {', '.join(names)}" for folder, names in options.models.items()]
    if options.extra_nodes:
        parts.append(f"adds {', '.join(options.extra_nodes)}")
    if options.without_nodes:
        parts.append(f"lacks {', '.join(sorted(options.without_nodes))}")
    return "; ".join(parts)


def curl_line(url: str) -> str:
    body = json.dumps({"prompt": DEMO_PROMPT}, separators=(",", ":"))
    return f"curl -s -X POST {url}/prompt -H 'Content-Type: application/json' -d '{body}'"


async def pool_ready(b: Balancer, timeout: float = 30.0) -> None:
    """Every backend probed and its event channel open, so the printed curl
    line works the moment it appears."""
    for channel in b.channels.channels.values():
        await asyncio.wait_for(channel.connected.wait(), timeout)
    await b.prober.probe_all()
    await b.catalogue_reader.settled()


def demo_sockets(
    host: str, port: int | None, default: int = ListenSettings().port
) -> tuple[list[socket.socket], str | None]:
    """Sockets for the demo's balancer, and a note when it is not on the
    default port. An explicit `--port` that is taken is an error
    (ListenError); without one the next free port is used."""
    if port is not None:
        return bind(host, port), None
    for candidate in range(default, default + PORT_TRIES):
        try:
            sockets = bind(host, candidate)
        except ListenError as exc:
            if not exc.in_use:
                raise
            continue
        note = None if candidate == default else f"port {default} is in use; using {candidate}"
        return sockets, note
    return bind(host, 0), f"ports {default}-{default + PORT_TRIES - 1} are in use; using a free one"


async def run_demo(
    host: str, sockets: Sequence[socket.socket], count: int, mixed: bool = False
) -> None:
    """`mixed`: the uneven pool of `mixed_emulators`, routed by model_affinity."""
    root = Path(tempfile.mkdtemp(prefix="comfyui-balancer-demo-"))
    running: list[Running] = []
    emulators = mixed_emulators(root) if mixed else demo_emulators(max(1, count), root)
    routing = RoutingSettings(policy="model_affinity") if mixed else RoutingSettings()
    try:
        for options in emulators:
            running.append(await start(create_emulator_app(options), "127.0.0.1", 0))
        backends = tuple(
            BackendSettings(name=f"gpu{i}", url=r.url, primary=i == 0)
            for i, r in enumerate(running)
        )
        settings = Settings(
            backends=backends,
            listen=ListenSettings(host=host, port=sockets[0].getsockname()[1]),
            # A demo starts from nothing each time: its backends are new too.
            store=StoreSettings(kind="memory"),
            routing=routing,
            data_dir=str(root / "balancer"),
        )
        app = create_app(settings)
        front = await serve_on(app, host, sockets)
        running.append(front)
        await pool_ready(app[BALANCER])
        print(f"comfyui-balancer demo: {front.url} in front of {len(backends)} emulated backends")
        for backend, options in zip(backends, emulators, strict=True):
            print(
                f"  {backend.name}: {backend.url}" + (f"  ({describe(options)})" if mixed else "")
            )
        print(f"web UI: open {front.url}/ in a browser (needs the `ui` extra)")
        print(f"status page: {front.url}/balancer   metrics: {front.url}/metrics")
        print(f"try:\n{curl_line(front.url)}", flush=True)
        await wait_for_stop()
    finally:
        await stop_all(running)
        shutil.rmtree(root, ignore_errors=True)
