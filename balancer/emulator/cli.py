"""Command line: options from argparse, and serving an emulator until cancelled."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

from aiohttp import web

from .app import create_emulator_app
from .options import DEFAULT_CHECKPOINTS, EmulatorOptions, parse_size


def add_emulator_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = EmulatorOptions()
    parser.add_argument("--name", default=defaults.name)
    parser.add_argument("--base-dir", type=Path, default=None, help="input/ output/ temp/ root")
    parser.add_argument("--time-scale", type=float, default=defaults.time_scale)
    parser.add_argument("--vram-total", type=parse_size, default=defaults.vram_total)
    parser.add_argument("--vram-base-used", type=parse_size, default=defaults.vram_base_used)
    parser.add_argument(
        "--vram-per-checkpoint", type=parse_size, default=defaults.vram_per_checkpoint
    )
    parser.add_argument("--checkpoints", default=",".join(DEFAULT_CHECKPOINTS))
    parser.add_argument("--checkpoint-load-time", type=float, default=defaults.checkpoint_load_time)
    parser.add_argument("--step-time", type=float, default=defaults.step_time)


def options_from_args(args: argparse.Namespace) -> EmulatorOptions:
    checkpoints = tuple(name.strip() for name in args.checkpoints.split(",") if name.strip())
    return EmulatorOptions(
        name=args.name,
        base_dir=args.base_dir,
        time_scale=args.time_scale,
        vram_total=args.vram_total,
        vram_base_used=args.vram_base_used,
        vram_per_checkpoint=args.vram_per_checkpoint,
        checkpoints=checkpoints,
        checkpoint_load_time=args.checkpoint_load_time,
        step_time=args.step_time,
    )


async def serve_emulator(options: EmulatorOptions, host: str, port: int) -> None:
    runner = web.AppRunner(create_emulator_app(options), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A ComfyUI 0.3.64 emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8188)
    add_emulator_arguments(parser)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_emulator(options_from_args(args), args.host, args.port))
